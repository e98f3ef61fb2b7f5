"""`GET /extended/v3/transactions`'s page and its TransactionSummary rows, read from the chain.

Written to hirosystems/stacks-blockchain-api (v9): `src/api/routes/v3/transactions.ts`, the query
in `src/datastore/v3/pg-store-v3.ts` getTransactionSummaries: canonical txs, ordered by
`(block_height, microblock_sequence, tx_index)` descending, LIMIT limit+1 to know whether a next
page exists. `cursor=H:M:I` is resolved by `resolveTransactionCursor`
(`src/datastore/v3/helpers.ts`): used as it is unless M and I are both 0 and no tx sits exactly
there, then `(H, I32_MAX, 0x7fff)`; the page holds the txs `<=` the resolved key.
`cursor.current` is the first result's key, `next` the (limit+1)-th result's, `previous` the key
`limit` places above the first (or the newest, if fewer). `total` is the chain tip's tx count, 0
on an empty page. Every field is read from the v1 rendering of the same tx, so both routes always
agree on a transaction (that is what a client switching routes relies on).
"""

from __future__ import annotations

from typing import Any

import orjson

from stxbf.simulator.chain import GENESIS_BLOCK_HEIGHT, Chain
from stxbf.simulator.render import Renderer
from stxbf.simulator.v2_blocks import block_end, index_hash

I32_MAX = 2_147_483_647
MAX_TX_INDEX = 0x7FFF


class TxView:
    """The chain's transactions keyed as the v3 route keys them: every tx here has
    microblock_sequence I32_MAX (no microblocks after Nakamoto)."""

    def __init__(self, chain: Chain, renderer: Renderer) -> None:
        self.chain = chain
        self.renderer = renderer

    def _key(self, i: int, b: int | None = None) -> str:
        chain = self.chain
        if b is None:
            b = chain.block_of(i)
        return f"{GENESIS_BLOCK_HEIGHT + b}:{I32_MAX}:{i - chain.block_first_tx[b]}"

    def _position(self, height: int, micro: int, index: int) -> int:
        """How many txs have a key <= (height, micro, index); every tx here has micro I32_MAX."""
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

    # ---- /extended/v3/transactions ----------------------------------------------------------

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
        """Tx `i` as a TransactionSummary (`src/api/serializers/v3/transactions.ts`)."""
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
    """@stacks/codec memoToString: the bytes without trailing NULs, as UTF-8."""
    raw = bytes.fromhex(memo.removeprefix("0x"))
    return raw.rstrip(b"\x00").decode("utf-8", "replace")
