"""The chain's compact storage and every read over it: lookups, burn-time ranges, ground truth,
and the page query behind `/extended/v1/tx`.

Only what ordering and filtering need is stored, as flat `array`s: per tenure its burn time and
first block/tx, per block its time, tenure and first tx, per tx its kind and fee bucket (2 bytes).
Everything else a transaction shows (tx_id, sender, amounts, status) is derived from (seed,
index) when it is rendered (see `render.py`).

Global tx index order is (block_height, tx_index) order, and while no anomaly has happened
burn_block_time never decreases along it, so a burn-time range is one contiguous index range found
by bisecting tenures. Once an anomaly broke that order, reads answer from a (burn_block_time,
index) index of the canonical transactions instead.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from stxbf.simulator.paging import page_segments

TOKEN_TRANSFER, CONTRACT_CALL, SMART_CONTRACT, COINBASE, TENURE_CHANGE = range(5)
KINDS: tuple[str, ...] = (
    "token_transfer",
    "contract_call",
    "smart_contract",
    "coinbase",
    "tenure_change",
)
# Valid `type` filter values of the real API; poison_microblock never occurs post-Nakamoto.
API_TX_TYPES: tuple[str, ...] = (*KINDS, "poison_microblock")
SORT_KEYS: tuple[str, ...] = ("block_height", "burn_block_time", "fee")

GENESIS_BLOCK_HEIGHT = 1_200_000
GENESIS_BURN_HEIGHT = 860_000

# Distinct fee rates (µSTX), ascending. Discrete on purpose: `sort_by=fee` then needs no global
# sort, only one index list per (kind, fee) that appends in chain order.
FEE_LADDER: tuple[int, ...] = tuple(
    sorted(
        {0}
        | {
            round(m * 10**e)
            for e in range(2, 7)
            for m in (1, 1.2, 1.5, 1.8, 2, 2.5, 3, 4, 5, 6, 7.5)
        }
    )
)


GENESIS_BLOCK_HEIGHT = 1_200_000
GENESIS_BURN_HEIGHT = 860_000


class Ledger:
    """The arrays of one chain and the queries over them; `Chain` appends to them."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.key = hashlib.blake2b(f"stxbf-sim:{seed}".encode(), digest_size=16).digest()
        self._lock = threading.RLock()
        # tenures
        self.tenure_burn_time = array("q")
        self.tenure_first_block = array("I")
        self.tenure_first_tx = array("I")
        # blocks
        self.block_time = array("q")
        self.block_first_tx = array("I")
        self.block_tenure = array("I")
        # transactions
        self.tx_kind = array("B")
        self.tx_fee = array("B")
        # lazy secondary indexes (built on the first `type` filter or `sort_by=fee`)
        self._by_kind: list[array[int]] | None = None
        self._by_kind_fee: dict[tuple[int, int], array[int]] = {}
        self.version = 0  # bumped whenever blocks are appended (cache key)
        # anomalies: non-canonical txs, and the burn-time index used once order is broken
        self.orphaned: set[int] = set()
        self.anomalies: list[str] = []
        self._by_burn: tuple[int, list[int], list[int]] | None = None  # (version, times, idx)

    # ---- size and lookup --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.tx_kind)

    @property
    def n_blocks(self) -> int:
        return len(self.block_time)

    @property
    def n_tenures(self) -> int:
        return len(self.tenure_burn_time)

    def block_of(self, i: int) -> int:
        return bisect_right(self.block_first_tx, i) - 1

    def tx_digest(self, i: int) -> bytes:
        """64 seeded bytes for tx `i`: the first 32 are its tx_id, the rest feed its fields."""
        return hashlib.blake2b(i.to_bytes(6, "big"), digest_size=64, key=self.key).digest()

    def tx_id(self, i: int) -> str:
        return "0x" + self.tx_digest(i)[:32].hex()

    def burn_time_of(self, i: int) -> int:
        return self.tenure_burn_time[self.block_tenure[self.block_of(i)]]

    # ---- ground truth -----------------------------------------------------------------------

    @property
    def ordered(self) -> bool:
        """Whether burn_block_time still never decreases along canonical index order."""
        return not self.anomalies

    def tx_range(self, start_time: int | None = None, end_time: int | None = None) -> range:
        """Indices of txs with start_time <= burn_block_time <= end_time (0/None = unbounded).

        Only while the chain is `ordered`; otherwise use `tx_indices`.
        """
        assert self.ordered, "burn-time order is broken: use tx_indices"
        with self._lock:
            n, times, firsts = len(self.tx_kind), self.tenure_burn_time, self.tenure_first_tx
            lo_t = bisect_left(times, start_time) if start_time else 0
            hi_t = bisect_right(times, end_time) if end_time else len(times)
            lo = firsts[lo_t] if lo_t < len(times) else n
            hi = firsts[hi_t] if hi_t < len(times) else n
            return range(lo, max(lo, hi))

    def tx_indices(
        self, start_time: int | None = None, end_time: int | None = None
    ) -> Sequence[int]:
        """Canonical txs with start_time <= burn_block_time <= end_time, in chain order."""
        if self.ordered:
            return self.tx_range(start_time, end_time)
        with self._lock:
            _, times, idx = self._burn_index()
            lo = bisect_left(times, start_time) if start_time else 0
            hi = bisect_right(times, end_time) if end_time else len(times)
            return sorted(idx[lo:hi])

    def _burn_index(self) -> tuple[int, list[int], list[int]]:
        """Canonical txs sorted by (burn_block_time, index); rebuilt when the chain changed."""
        cached = self._by_burn
        if cached is not None and cached[0] == self.version:
            return cached
        pairs: list[tuple[int, int]] = []
        n, firsts, orphaned = len(self.tx_kind), self.block_first_tx, self.orphaned
        for b in range(len(firsts)):
            burn = self.tenure_burn_time[self.block_tenure[b]]
            stop = firsts[b + 1] if b + 1 < len(firsts) else n
            pairs.extend((burn, i) for i in range(firsts[b], stop) if i not in orphaned)
        pairs.sort()
        self._by_burn = (self.version, [t for t, _ in pairs], [i for _, i in pairs])
        return self._by_burn

    def tx_ids(self, start_time: int | None = None, end_time: int | None = None) -> list[str]:
        """Every canonical tx_id whose burn_block_time is within the inclusive range, in chain
        order."""
        return [self.tx_id(i) for i in self.tx_indices(start_time, end_time)]

    def count(self, start_time: int | None = None, end_time: int | None = None) -> int:
        return len(self.tx_indices(start_time, end_time))

    def digest(self, start_time: int | None = None, end_time: int | None = None) -> str:
        """sha256 hex of the range's tx_ids, sorted, one per line (newline-terminated)."""
        ids = sorted(self.tx_ids(start_time, end_time))
        return hashlib.sha256("".join(f"{tx_id}\n" for tx_id in ids).encode()).hexdigest()

    # ---- the query behind /extended/v1/tx ---------------------------------------------------

    def _index(self, i: int, kind: int, fee: int) -> None:
        assert self._by_kind is not None
        self._by_kind[kind].append(i)
        bucket = self._by_kind_fee.get((kind, fee))
        if bucket is None:
            bucket = self._by_kind_fee[(kind, fee)] = array("I")
        bucket.append(i)

    def _ensure_indexes(self) -> None:
        if self._by_kind is not None:
            return
        with self._lock:
            if self._by_kind is not None:
                return
            self._by_kind = [array("I") for _ in KINDS]
            for i, (kind, fee) in enumerate(zip(self.tx_kind, self.tx_fee, strict=True)):
                self._index(i, kind, fee)

    def select(
        self,
        *,
        start_time: int | None,
        end_time: int | None,
        sort_by: str = "block_height",
        descending: bool = True,
        kinds: Iterable[int] | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[int, list[int]]:
        """(total, tx indices of the page) for one list query; O(log n) plus the page."""
        if not self.ordered:
            return self._select_unordered(
                start_time, end_time, sort_by, descending, kinds, offset, limit
            )
        span = self.tx_range(start_time, end_time)
        lo, hi = span.start, span.stop
        kind_set = None if kinds is None else sorted(set(kinds))
        if sort_by != "fee" and kind_set is None:
            total = hi - lo
            if descending:
                top = hi - 1 - offset
                return total, list(range(top, max(lo - 1, top - limit), -1))
            return total, list(range(lo + offset, min(hi, lo + offset + limit)))
        self._ensure_indexes()
        assert self._by_kind is not None
        wanted = range(len(KINDS)) if kind_set is None else kind_set
        segments: list[list[array[int]]]
        if sort_by != "fee":
            segments = [[self._by_kind[k] for k in wanted]]
        else:
            segments = [
                [self._by_kind_fee[(k, f)] for k in wanted if (k, f) in self._by_kind_fee]
                for f in range(len(FEE_LADDER))
            ]
        if descending:
            segments.reverse()
        return page_segments(segments, lo, hi, descending, offset, limit)

    def _select_unordered(
        self,
        start_time: int | None,
        end_time: int | None,
        sort_by: str,
        descending: bool,
        kinds: Iterable[int] | None,
        offset: int,
        limit: int,
    ) -> tuple[int, list[int]]:
        """`select` once burn-time order is broken: filter, then sort by the API's keys (the
        sort key, then block_height and tx_index: pg-store.ts getTxList)."""
        indices: Sequence[int] = self.tx_indices(start_time, end_time)
        if kinds is not None:
            wanted = set(kinds)
            indices = [i for i in indices if self.tx_kind[i] in wanted]
        if sort_by == "fee":
            ordered = sorted(indices, key=lambda i: (self.tx_fee[i], i), reverse=descending)
        elif sort_by == "burn_block_time":
            ordered = sorted(indices, key=lambda i: (self.burn_time_of(i), i), reverse=descending)
        else:
            ordered = list(reversed(indices)) if descending else list(indices)
        return len(ordered), ordered[offset : offset + limit]
