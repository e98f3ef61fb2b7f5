"""The `/extended/v2` block and burn-block routes' answers, read from the chain.

Written to hirosystems/stacks-blockchain-api (v9): `GET /extended/v2/blocks`, `/:height_or_hash`,
`/by-block-time/:timestamp` (`src/api/routes/v2/blocks.ts`, getBlocks/getBlock/
getBlockAtTimestamp) with `tx_count`; `GET /extended/v2/burn-blocks` and `/:height_or_hash`
(`src/api/routes/v2/burn-blocks.ts`, `src/datastore/pg-store-v2.ts` getBurnBlocks/getBurnBlock):
burn blocks that have Stacks blocks, newest first; `stacks_blocks` newest first,
`total_tx_count` the sum of their `tx_count`; the list's `total` is the chain tip's *Stacks
block* count (as the real one says).

Block `b` is height GENESIS_BLOCK_HEIGHT + b, and tenure `t` (one per Bitcoin block here) is
burn height GENESIS_BURN_HEIGHT + t.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from typing import Any
from weakref import WeakKeyDictionary

from stxbf.simulator.chain import GENESIS_BLOCK_HEIGHT, GENESIS_BURN_HEIGHT, Chain
from stxbf.simulator.render import Renderer
from stxbf.simulator.responses import Missing
from stxbf.simulator.tx_parts import iso

# block hash and index hash → block, per chain, extended as the chain grows
_HASH_INDEX: WeakKeyDictionary[Chain, tuple[int, dict[str, int]]] = WeakKeyDictionary()


def index_hash(chain: Chain, b: int) -> str:
    raw = b"idx" + (b + 1).to_bytes(6, "big")
    return "0x" + hashlib.blake2b(raw, key=chain.key, digest_size=32).hexdigest()


def burn_hash(chain: Chain, tenure: int) -> str:
    raw = b"brn" + (tenure + 1).to_bytes(6, "big")
    return "0x" + hashlib.blake2b(raw, key=chain.key, digest_size=32).hexdigest()


def block_end(chain: Chain, b: int) -> int:
    """One past block `b`'s last tx index."""
    return chain.block_first_tx[b + 1] if b + 1 < chain.n_blocks else len(chain)


class BlockView:
    """The chain's blocks and burn blocks as the v2 routes show them."""

    def __init__(self, chain: Chain, renderer: Renderer) -> None:
        self.chain = chain
        self.renderer = renderer

    # ---- blocks -----------------------------------------------------------------------------

    def _tx_count(self, b: int) -> int:
        return block_end(self.chain, b) - self.chain.block_first_tx[b]

    def _burn_fields(self, tenure: int) -> dict[str, Any]:
        """The fields a block and a burn block share: the tenure's Bitcoin block."""
        burn_time = self.chain.tenure_burn_time[tenure]
        return {
            "burn_block_time": burn_time,
            "burn_block_time_iso": iso(burn_time),
            "burn_block_hash": burn_hash(self.chain, tenure),
            "burn_block_height": GENESIS_BURN_HEIGHT + tenure,
        }

    def block_json(self, b: int) -> dict[str, Any]:
        """A NakamotoBlock (`src/api/routes/v2/helpers.ts` parseDbNakamotoBlock)."""
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
        """Block by hash or index hash, from an index kept per chain and extended as it grows."""
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
        """The newest block with block_time <= timestamp (block_time never decreases here)."""
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
        """Tenures that hold a Stacks block (the newest may have opened without one yet)."""
        chain = self.chain
        return chain.block_tenure[-1] + 1 if chain.n_blocks else 0

    def burn_block_json(self, tenure: int) -> dict[str, Any]:
        """A BurnBlock (`src/api/routes/v2/helpers.ts` parseDbBurnBlock)."""
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
