"""The v1 successor routes, served from the same chain: `/extended/v3/transactions` and the
`/extended/v2` block and burn-block routes a v3 backfill needs to size and verify its walks.

Written to hirosystems/stacks-blockchain-api (v9, read at its newest commit). The route table
checks the parameters first: `limit` 1..50 for transactions (default 20, `src/api/pagination.ts`
ResourceType.Tx), at most 30 for blocks and burn blocks, `offset` >= 0, `cursor` as `H:M:I`, and
`:height_or_hash` as `latest`, a height or a hash. Bad input answers 400 in Fastify's validation
shape, and a missing thing 404 in its error shape. `TxView` then builds the transaction pages and
`BlockView` the block and burn-block answers.

`/extended/v3/transactions` (`src/api/routes/v3/transactions.ts`, the query in
`src/datastore/v3/pg-store-v3.ts` getTransactionSummaries) pages canonical transactions ordered by
`(block_height, microblock_sequence, tx_index)` descending, with LIMIT limit+1 to know whether a
next page exists. `cursor=H:M:I` is resolved by `resolveTransactionCursor`
(`src/datastore/v3/helpers.ts`): it is used as it is unless M and I are both 0 and no transaction
sits exactly there, and then it becomes `(H, I32_MAX, 0x7fff)`; the page holds the transactions
at or below the resolved key. `cursor.current` is the first result's key, `next` the (limit+1)-th
result's, `previous` the key `limit` places above the first (or the newest, if fewer). `total` is
the chain tip's transaction count, 0 on an empty page. Every field is read from the v1 rendering of
the same transaction, so both routes always agree on a transaction, which is what a client that
switches routes relies on.

The block routes are `GET /extended/v2/blocks`, `/:height_or_hash` and
`/by-block-time/:timestamp` (`src/api/routes/v2/blocks.ts`: getBlocks, getBlock,
getBlockAtTimestamp) with `tx_count`, and `GET /extended/v2/burn-blocks` and `/:height_or_hash`
(`src/api/routes/v2/burn-blocks.ts`, `src/datastore/pg-store-v2.ts` getBurnBlocks and
getBurnBlock): burn blocks that have Stacks blocks, newest first, their `stacks_blocks` newest
first, `total_tx_count` the sum of their `tx_count`, and the list's `total` the chain tip's Stacks
block count, as the real one says. Block `b` is height GENESIS_BLOCK_HEIGHT + b, and tenure `t`
(one per Bitcoin block here) is burn height GENESIS_BURN_HEIGHT + t.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

import orjson

from stxbf.simulator.chain import GENESIS_BLOCK_HEIGHT, GENESIS_BURN_HEIGHT, Chain
from stxbf.simulator.render import Renderer, iso
from stxbf.simulator.responses import (
    BadRequest,
    DatabaseError,
    Missing,
    Response,
    RouteError,
    fastify_error,
    json_response,
)

V3_TX_LIST = "/extended/v3/transactions"
I32_MAX = 2_147_483_647  # PostgreSQL `integer`: block_height and microblock_sequence
MAX_TX_INDEX = 0x7FFF  # PostgreSQL `smallint`: tx_index
TX_LIMITS = (20, 50)  # (default, max): pagination.ts ResourceType.Tx
BLOCK_LIMITS = (20, 30)  # ResourceType.Block and ResourceType.BurnBlock
_CURSOR = re.compile(r"^[0-9]+:[0-9]+:[0-9]+$")
_HASH = re.compile(r"^(0x)?[a-fA-F0-9]{64}$")
_INTEGER = re.compile(r"^-?[0-9]+$")


def handles(path: str) -> bool:
    """Tell whether a path is one of the v2 or v3 routes this module answers."""
    return path.startswith(("/extended/v3/", "/extended/v2/"))


def _check_column_ranges(cursor: str) -> None:
    """Fail as PostgreSQL does when a cursor's part overflows its column.

    The parts go to the database as they are: block_height and microblock_sequence are
    `integer`, tx_index is `smallint`, and a larger value fails the query (a 500, as seen
    on v9).
    """
    height, micro, index = (int(part) for part in cursor.split(":"))
    for value, kind, top in ((height, "integer", I32_MAX), (micro, "integer", I32_MAX)):
        if value > top:
            raise DatabaseError("22003", f'value "{value}" is out of range for type {kind}')
    if index > MAX_TX_INDEX:
        raise DatabaseError("22003", f'value "{index}" is out of range for type smallint')


def route(
    chain: Chain, renderer: Renderer, method: str, path: str, params: Mapping[str, str]
) -> Response:
    """Answer one v2 or v3 request.

    The caller holds the API's lock and has applied the limits and faults.
    """
    if method not in ("GET", "HEAD"):  # Fastify: no such route for that method
        message = f"Route {method}:{path} not found"
        return fastify_error(404, {"error": "Not Found", "message": message})
    path = path.rstrip("/") or path
    try:
        payload = _dispatch(chain, renderer, path, params)
    except RouteError as exc:
        return exc.response()
    response = json_response(200, payload)
    if path == V3_TX_LIST:
        response.page_results = len(payload["results"])
    return response


def _dispatch(
    chain: Chain, renderer: Renderer, path: str, params: Mapping[str, str]
) -> dict[str, Any]:
    if path == V3_TX_LIST:
        limit = _limit(params, TX_LIMITS)
        cursor = params.get("cursor")
        if cursor is not None and not _CURSOR.match(cursor):
            raise BadRequest('querystring/cursor must match pattern "^[0-9]+:[0-9]+:[0-9]+$"')
        if cursor is not None:
            _check_column_ranges(cursor)
        return TxView(chain, renderer).transactions(limit, cursor)
    view = BlockView(chain, renderer)
    parts = path.split("/")[3:]  # after "", "extended", "v2"
    if parts == ["burn-blocks"]:
        return view.burn_blocks(_limit(params, BLOCK_LIMITS, zero_ok=True), _offset(params))
    if len(parts) == 2 and parts[0] == "burn-blocks":
        return view.burn_block(_height_or_hash(parts[1]))
    if parts == ["blocks"]:
        return view.blocks(_limit(params, BLOCK_LIMITS), _offset(params), params.get("cursor"))
    if len(parts) == 3 and parts[:2] == ["blocks", "by-block-time"]:
        if not _INTEGER.match(parts[2]):
            raise BadRequest("params/timestamp must be integer")
        return view.block_at(int(parts[2]))
    if len(parts) == 2 and parts[0] == "blocks":
        return view.block(_height_or_hash(parts[1]))
    raise Missing(f"Route GET:{path} not found")


def _limit(params: Mapping[str, str], limits: tuple[int, int], *, zero_ok: bool = False) -> int:
    default, maximum = limits
    raw = params.get("limit")
    if raw is None:
        return default
    if not _INTEGER.match(raw.strip() or "x"):
        raise BadRequest("querystring/limit must be integer")
    value = int(raw)
    if value > maximum:
        raise BadRequest(f"querystring/limit must be <= {maximum}")
    if value < (0 if zero_ok else 1):
        raise BadRequest(f"querystring/limit must be >= {0 if zero_ok else 1}")
    return value


def _offset(params: Mapping[str, str]) -> int:
    raw = params.get("offset")
    if raw is None:
        return 0
    if not _INTEGER.match(raw.strip() or "x"):
        raise BadRequest("querystring/offset must be integer")
    if int(raw) < 0:
        raise BadRequest("querystring/offset must be >= 0")
    return int(raw)


def _height_or_hash(raw: str) -> int | str:
    """Read a `:height_or_hash` parameter: `latest`, a height, or a 64-hex hash.

    The checks are `src/api/routes/v2/schemas.ts` parseBlockParam's.
    """
    if raw == "latest":
        return raw
    if _INTEGER.match(raw) and int(raw) >= 0:
        return int(raw)
    if _HASH.match(raw):
        return "0x" + raw.lower().removeprefix("0x")
    raise BadRequest(
        "params/height_or_hash must be equal to constant, params/height_or_hash must match "
        'pattern "^(0x)?[a-fA-F0-9]{64}$", params/height_or_hash must be integer, '
        "params/height_or_hash must match a schema in anyOf"
    )


# ---- /extended/v3/transactions ----------------------------------------------------------


class TxView:
    """Key the chain's transactions as the v3 route keys them.

    Every transaction here has microblock_sequence I32_MAX: there are no microblocks
    after Nakamoto.
    """

    def __init__(self, chain: Chain, renderer: Renderer) -> None:
        self.chain = chain
        self.renderer = renderer

    def _key(self, i: int, b: int | None = None) -> str:
        chain = self.chain
        if b is None:
            b = chain.block_of(i)
        return f"{GENESIS_BLOCK_HEIGHT + b}:{I32_MAX}:{i - chain.block_first_tx[b]}"

    def _position(self, height: int, micro: int, index: int) -> int:
        """Count the transactions whose key is at or below (height, micro, index)."""
        b = height - GENESIS_BLOCK_HEIGHT
        if b < 0:
            return 0
        if b >= self.chain.n_blocks:
            return len(self.chain)
        first, end = self.chain.block_first_tx[b], block_end(self.chain, b)
        if micro < I32_MAX:
            return first
        if micro > I32_MAX:
            return end
        return min(end, first + index + 1)

    def _exists(self, height: int, micro: int, index: int) -> bool:
        b = height - GENESIS_BLOCK_HEIGHT
        if micro != I32_MAX or not 0 <= b < self.chain.n_blocks:
            return False
        return self.chain.block_first_tx[b] + index < block_end(self.chain, b)

    def transactions(self, limit: int, cursor: str | None) -> dict[str, Any]:
        n = len(self.chain)
        top = n
        if cursor is not None:
            height, micro, index = (int(part) for part in cursor.split(":"))
            if (micro, index) == (0, 0) and not self._exists(height, micro, index):
                micro, index = I32_MAX, MAX_TX_INDEX  # resolveTransactionCursor
            top = self._position(height, micro, index)
        picked = list(range(top - 1, max(-1, top - 1 - (limit + 1)), -1))
        has_next = len(picked) > limit
        results = picked[:limit]
        previous = None
        if results and results[0] + 1 < n:
            previous = self._key(min(n - 1, results[0] + limit))
        return {
            "limit": limit,
            "total": n if picked else 0,
            "cursor": {
                "next": self._key(picked[-1]) if has_next else None,
                "previous": previous,
                "current": self._key(results[0]) if results else None,
            },
            "results": [self.summary(i) for i in results],
        }

    def summary(self, i: int) -> dict[str, Any]:
        """Render transaction `i` as a TransactionSummary (serializers/v3/transactions.ts)."""
        tx = orjson.loads(self.renderer.render(i))
        b = tx["block_height"] - GENESIS_BLOCK_HEIGHT
        sponsored = tx.get("sponsored") and tx.get("sponsor_address") is not None
        out: dict[str, Any] = {
            "tx_id": tx["tx_id"],
            "sender": {"address": tx["sender_address"], "nonce": tx["nonce"]},
            "sponsor": (
                {"address": tx["sponsor_address"], "nonce": tx["sponsor_nonce"]}
                if sponsored
                else None
            ),
            "fee_rate": tx["fee_rate"],
            "block": {
                "height": tx["block_height"],
                "hash": tx["block_hash"],
                "index_hash": index_hash(self.chain, b),
                "time": tx["block_time"],
                "tx_index": tx["tx_index"],
            },
            "bitcoin_block": {"height": tx["burn_block_height"], "time": tx["burn_block_time"]},
            "status": tx["tx_status"],
        }
        kind = tx["tx_type"]
        out["type"] = kind
        if kind == "token_transfer":
            transfer = tx["token_transfer"]
            memo = transfer.get("memo")
            out["token_transfer"] = {
                "recipient": transfer["recipient_address"],
                "amount": transfer["amount"],
                "memo": {"hex": memo, "repr": _memo_repr(memo)} if memo else None,
            }
        elif kind == "smart_contract":
            contract = tx["smart_contract"]
            out["smart_contract"] = {
                "clarity_version": contract.get("clarity_version"),
                "contract_id": contract["contract_id"],
            }
        elif kind == "contract_call":
            call = tx["contract_call"]
            out["contract_call"] = {
                "contract_id": call["contract_id"],
                "function_name": call["function_name"],
            }
        elif kind == "coinbase":
            out["coinbase"] = {"alt_recipient": tx["coinbase_payload"].get("alt_recipient")}
        elif kind == "tenure_change":
            out["tenure_change"] = {"cause": tx["tenure_change_payload"]["cause"]}
        return out


def _memo_repr(memo: str) -> str:
    """Decode a memo as @stacks/codec memoToString does: without trailing NULs, as UTF-8."""
    raw = bytes.fromhex(memo.removeprefix("0x"))
    return raw.rstrip(b"\x00").decode("utf-8", "replace")


# ---- /extended/v2/blocks and /extended/v2/burn-blocks -------------------------------------

# block hash and index hash → block, per chain, extended as the chain grows
_HASH_INDEX: WeakKeyDictionary[Chain, tuple[int, dict[str, int]]] = WeakKeyDictionary()


def index_hash(chain: Chain, b: int) -> str:
    raw = b"idx" + (b + 1).to_bytes(6, "big")
    return "0x" + hashlib.blake2b(raw, key=chain.key, digest_size=32).hexdigest()


def burn_hash(chain: Chain, tenure: int) -> str:
    raw = b"brn" + (tenure + 1).to_bytes(6, "big")
    return "0x" + hashlib.blake2b(raw, key=chain.key, digest_size=32).hexdigest()


def block_end(chain: Chain, b: int) -> int:
    """Return one past the index of block `b`'s last transaction."""
    return chain.block_first_tx[b + 1] if b + 1 < chain.n_blocks else len(chain)


class BlockView:
    """Show the chain's blocks and burn blocks as the v2 routes do."""

    def __init__(self, chain: Chain, renderer: Renderer) -> None:
        self.chain = chain
        self.renderer = renderer

    # ---- blocks -----------------------------------------------------------------------------

    def _tx_count(self, b: int) -> int:
        return block_end(self.chain, b) - self.chain.block_first_tx[b]

    def _burn_fields(self, tenure: int) -> dict[str, Any]:
        """Return the fields a block and a burn block share: those of the tenure's Bitcoin block."""
        burn_time = self.chain.tenure_burn_time[tenure]
        return {
            "burn_block_time": burn_time,
            "burn_block_time_iso": iso(burn_time),
            "burn_block_hash": burn_hash(self.chain, tenure),
            "burn_block_height": GENESIS_BURN_HEIGHT + tenure,
        }

    def block_json(self, b: int) -> dict[str, Any]:
        """Render block `b` as a NakamotoBlock (`src/api/routes/v2/helpers.ts`
        parseDbNakamotoBlock).
        """
        chain = self.chain
        tenure = chain.block_tenure[b]
        block_time = chain.block_time[b]
        first = chain.block_first_tx[b]
        return {
            "canonical": True,
            "height": GENESIS_BLOCK_HEIGHT + b,
            "hash": self.renderer.block_hash(b),
            "block_time": block_time,
            "block_time_iso": iso(block_time),
            "tenure_height": tenure + 1,
            "index_block_hash": index_hash(self.chain, b),
            "parent_block_hash": self.renderer.block_hash(b - 1),
            "parent_index_block_hash": index_hash(self.chain, b - 1),
            **self._burn_fields(tenure),
            "miner_txid": "0x" + chain.tx_digest(first)[32:64].hex(),
            "tx_count": self._tx_count(b),
            "execution_cost_read_count": 0,
            "execution_cost_read_length": 0,
            "execution_cost_runtime": 0,
            "execution_cost_write_count": 0,
            "execution_cost_write_length": 0,
        }

    def _find_block(self, which: int | str) -> int:
        chain = self.chain
        if which == "latest":
            b = chain.n_blocks - 1
        elif isinstance(which, int):
            b = which - GENESIS_BLOCK_HEIGHT
        else:
            b = self._block_by_hash(which)
        if not 0 <= b < chain.n_blocks:
            raise Missing("Block not found")
        return b

    def _block_by_hash(self, wanted: str) -> int:
        """Find a block by its hash or index hash.

        The index is kept per chain and extended as the chain grows.
        """
        chain = self.chain
        built, index = _HASH_INDEX.get(chain, (0, {}))
        for b in range(built, chain.n_blocks):
            index[self.renderer.block_hash(b)] = b
            index[index_hash(self.chain, b)] = b
        _HASH_INDEX[chain] = (chain.n_blocks, index)
        return index.get(wanted, -1)

    def block(self, which: int | str) -> dict[str, Any]:
        return self.block_json(self._find_block(which))

    def block_at(self, timestamp: int) -> dict[str, Any]:
        """Return the newest block whose block_time is at or before `timestamp`.

        Block times never decrease here, so a bisection finds it.
        """
        b = bisect_right(self.chain.block_time, timestamp) - 1
        if b < 0:
            raise Missing("No block found at or before the given timestamp")
        return self.block_json(b)

    def blocks(self, limit: int, offset: int, cursor: str | None) -> dict[str, Any]:
        n = self.chain.n_blocks
        top = n - 1
        if cursor is not None:
            top = self._block_by_hash("0x" + cursor.lower().removeprefix("0x"))
            if top < 0:
                raise Missing("Cursor not found")
        top -= offset
        picked = list(range(top, max(-1, top - limit), -1)) if top >= 0 else []
        first = picked[0] if picked else None
        return {
            "limit": limit,
            "offset": offset,
            "total": n if picked else 0,
            "next_cursor": (
                index_hash(self.chain, first + limit)
                if first is not None and first + limit < n
                else None
            ),
            "prev_cursor": (
                index_hash(self.chain, first - limit)
                if first is not None and first - limit >= 0
                else None
            ),
            "cursor": index_hash(self.chain, first) if first is not None else None,
            "results": [self.block_json(b) for b in picked],
        }

    # ---- burn blocks ------------------------------------------------------------------------

    def _tenures_with_blocks(self) -> int:
        """Count the tenures that hold a Stacks block; the newest may have opened without one."""
        chain = self.chain
        return chain.block_tenure[-1] + 1 if chain.n_blocks else 0

    def burn_block_json(self, tenure: int) -> dict[str, Any]:
        """Render a tenure as a BurnBlock (`src/api/routes/v2/helpers.ts` parseDbBurnBlock)."""
        chain = self.chain
        first = chain.tenure_first_block[tenure]
        end = (
            chain.tenure_first_block[tenure + 1] if tenure + 1 < chain.n_tenures else chain.n_blocks
        )
        blocks = range(end - 1, first - 1, -1)
        gaps = [chain.block_time[b] - chain.block_time[b - 1] for b in range(first + 1, end)]
        return {
            **self._burn_fields(tenure),
            "stacks_blocks": [self.renderer.block_hash(b) for b in blocks],
            # parseFloat(toFixed(2)) in routes/v2/helpers.ts, but the schema says Type.Integer
            # (schemas/v1/entities/burn-blocks.ts): Fastify's serializer truncates it
            "avg_block_time": int(round(sum(gaps) / len(gaps), 2)) if gaps else 0,
            "total_tx_count": sum(self._tx_count(b) for b in blocks),
        }

    def burn_blocks(self, limit: int, offset: int) -> dict[str, Any]:
        top = self._tenures_with_blocks() - 1 - offset
        picked = list(range(top, max(-1, top - limit), -1)) if top >= 0 else []
        return {
            "limit": limit,
            "offset": offset,
            "total": self.chain.n_blocks if picked else 0,
            "results": [self.burn_block_json(t) for t in picked],
        }

    def burn_block(self, which: int | str) -> dict[str, Any]:
        count = self._tenures_with_blocks()
        if which == "latest":
            tenure = count - 1
        elif isinstance(which, int):
            tenure = which - GENESIS_BURN_HEIGHT
        else:
            tenure = next((t for t in range(count) if burn_hash(self.chain, t) == which), -1)
        if not 0 <= tenure < count:
            raise Missing("Not found")
        return self.burn_block_json(tenure)
