"""A seeded model of the post-Nakamoto Stacks chain, compact enough for millions of transactions.

The chain is tenures (one per Bitcoin block, about 600 s apart), Stacks blocks (every 5 to 10 s,
and only when they hold transactions) and transactions. `Chain` generates the history up to
`end_time` when it is built, then grows as its clock advances, and answers every read the routes
make: lookups, burn-time ranges, the ground truth a backfill is checked against, and the page
query behind `/extended/v1/tx`.

Only what ordering and filtering need is stored, as flat `array`s: per tenure its burn time and
first block and transaction, per block its time, tenure and first transaction, per transaction its
kind and fee bucket (2 bytes). Everything else a transaction shows (tx_id, sender, amounts,
status) is derived from (seed, index) when it is rendered (`render.py`).

The global transaction index follows (block_height, tx_index) order, and while no anomaly has
happened burn_block_time never decreases along it, so a burn-time range is one contiguous index
range found by bisecting tenures. The real chain does not always keep burn_block_time in block
order, and the anomaly methods model how: `extend_tenure` (blocks for hours under the tenure's
first burn time), `stamp_earlier` (a Bitcoin block stamped before its predecessor), `reorg` (the
last blocks become non-canonical and others replace them) and `late_insert` (a block under an old
burn time). Once one has happened, reads answer from a (burn_block_time, index) index of the
canonical transactions instead.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
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


def _fee_span(lo: int, hi: int) -> tuple[int, int]:
    return bisect_left(FEE_LADDER, lo), bisect_right(FEE_LADDER, hi)


_FEE_SPANS = {
    TOKEN_TRANSFER: _fee_span(180, 20_000),
    CONTRACT_CALL: _fee_span(1_000, 600_000),
    SMART_CONTRACT: _fee_span(20_000, 7_500_000),
}
_REGULAR_KINDS = (CONTRACT_CALL, TOKEN_TRANSFER, SMART_CONTRACT)
_REGULAR_CUM_WEIGHTS = (0.62, 0.98, 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Chain:
    """Hold the simulated chain's arrays, grow them, break their order, and answer reads.

    `end_time` is the chain's "now" at build time (default: wall time), and the history
    starts `days` before it. After that, regular transactions arrive at `growth` a second
    (0 keeps the chain frozen) whenever `advance(now)` is called. `tenures_at` lists burn
    times that get a Bitcoin block (a tenure) of their own, deterministically.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        days: float = 30.0,
        tx_per_day: int = 6000,
        end_time: float | None = None,
        growth: float = 0.0,
        tenure_seconds: float = 600.0,
        block_seconds: tuple[float, float] = (5.0, 10.0),
        extended_tenure_hours: float = 0.0,
        tenures_at: tuple[int, ...] = (),
    ) -> None:
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
        # Bitcoin blocks at these burn times besides the drawn ones: a test puts one on the
        # last second of a window, which a client that asks `end_time - 1` misses
        self._tenures_at = sorted(int(t) for t in tenures_at)
        self.days = days
        self.tx_per_day = tx_per_day
        self.end_time = float(time.time() if end_time is None else end_time)
        self.genesis_time = self.end_time - days * 86400.0
        self.growth = growth
        self.tenure_seconds = tenure_seconds
        self.block_seconds = block_seconds
        self._rng = random.Random(f"chain:{seed}")
        self._anomaly_rng = random.Random(f"anomaly:{seed}")
        # the generator's state
        self._rate = max(0.0, self._base_rate())
        self._next_tenure_at = self.genesis_time
        self._next_block_at = math.inf
        self._tenure_pending = False
        self._last_tenure_change = self.genesis_time  # a long tenure is extended every so often
        self.clock = self.genesis_time
        self._build_history(max(0.0, extended_tenure_hours * 3600.0))
        self._rate = growth
        self.version = 0

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
        """Return 64 seeded bytes for transaction `i`: its tx_id, then the bytes its fields use."""
        return hashlib.blake2b(i.to_bytes(6, "big"), digest_size=64, key=self.key).digest()

    def tx_id(self, i: int) -> str:
        return "0x" + self.tx_digest(i)[:32].hex()

    def burn_time_of(self, i: int) -> int:
        return self.tenure_burn_time[self.block_tenure[self.block_of(i)]]

    # ---- ground truth -----------------------------------------------------------------------

    @property
    def ordered(self) -> bool:
        """Tell whether burn_block_time still never decreases along canonical order."""
        return not self.anomalies

    def tx_range(self, start_time: int | None = None, end_time: int | None = None) -> range:
        """Return the indices of the transactions from `start_time` to `end_time`, inclusive.

        A bound of 0 or None leaves that side open. This works only while the chain is
        `ordered`; `tx_indices` works always.
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
        """Return the canonical transactions from `start_time` to `end_time`, in chain order."""
        if self.ordered:
            return self.tx_range(start_time, end_time)
        with self._lock:
            _, times, idx = self._burn_index()
            lo = bisect_left(times, start_time) if start_time else 0
            hi = bisect_right(times, end_time) if end_time else len(times)
            return sorted(idx[lo:hi])

    def _burn_index(self) -> tuple[int, list[int], list[int]]:
        """Sort the canonical transactions by (burn_block_time, index), once per chain version."""
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
        """Return every canonical tx_id whose burn_block_time is in the range, in chain order."""
        return [self.tx_id(i) for i in self.tx_indices(start_time, end_time)]

    def count(self, start_time: int | None = None, end_time: int | None = None) -> int:
        return len(self.tx_indices(start_time, end_time))

    def digest(self, start_time: int | None = None, end_time: int | None = None) -> str:
        """Return the sha256 of the range's tx_ids, sorted, each followed by a newline."""
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
        """Return the total and the page's transaction indices for one list query.

        While the chain is ordered this costs O(log n) plus the page, whatever the offset.
        """
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
        """Select a page once burn-time order is broken: filter, then sort by the API's keys.

        The keys are the sort key, then block_height and tx_index (pg-store.ts getTxList).
        """
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

    def _base_rate(self) -> float:
        """Return the regular transactions a second that make `tx_per_day` with the system ones."""
        system_per_day = 2 * 86400.0 / self.tenure_seconds
        return (self.tx_per_day - system_per_day) / 86400.0

    def _build_history(self, extended: float) -> None:
        """Generate the chain from genesis to `end_time`.

        With `extended` seconds, the head tenure was elected that long ago and has been
        extended ever since.
        """
        if extended:
            self._advance(self.end_time - extended)
            self._next_tenure_at = math.inf
            self._advance(self.end_time)
            self._next_tenure_at = self.end_time + self.tenure_seconds
        else:
            self._advance(self.end_time)

    # ---- growth -----------------------------------------------------------------------------

    @property
    def growing(self) -> bool:
        return self.growth > 0

    def advance(self, now: float) -> int:
        """Append every block due by `now` (chain time), and return how many transactions came."""
        if not self.growing or (now < self._next_block_at and now < self._next_tenure_at):
            return 0
        with self._lock:
            before = len(self.tx_kind)
            self._advance(now)
            return len(self.tx_kind) - before

    def _advance(self, now: float) -> None:
        rng = self._rng
        lo, hi = self.block_seconds
        while True:
            next_tenure, next_block = self._next_tenure_at, self._next_block_at
            if next_tenure <= next_block and next_tenure <= now:
                self._open_tenure(next_tenure)
                continue
            if next_block > now:
                break
            self._emit_block(next_block, _poisson(rng, self._rate * (lo + hi) / 2.0))
            self._next_block_at = next_block + rng.uniform(lo, hi)
        self.clock = max(self.clock, now)

    def _open_tenure(self, at: float) -> None:
        rng = self._rng
        self.tenure_burn_time.append(int(at))
        self.tenure_first_block.append(len(self.block_time))
        self.tenure_first_tx.append(len(self.tx_kind))
        self._tenure_pending = True
        self._last_tenure_change = at
        gap = rng.expovariate(1.0 / self.tenure_seconds)
        gap = min(max(gap, 0.1 * self.tenure_seconds, 1.0), 6.0 * self.tenure_seconds)
        self._next_tenure_at = at + gap
        placed = next((t for t in self._tenures_at if t > at), None)
        if placed is not None and placed < self._next_tenure_at:
            self._next_tenure_at = placed
        self._next_block_at = at + rng.uniform(0.2, 1.0) * self.block_seconds[0]

    def _emit_block(self, at: float, regular: int) -> None:
        if regular == 0 and not self._tenure_pending:
            return  # Nakamoto signers do not bother with empty blocks here
        rng = self._rng
        first = len(self.tx_kind)
        self.block_time.append(int(at))
        self.block_first_tx.append(first)
        self.block_tenure.append(len(self.tenure_burn_time) - 1)
        kinds: list[int] = []
        fees: list[int] = []
        if self._tenure_pending:
            kinds += (TENURE_CHANGE, COINBASE)
            fees += (0, 0)
            self._tenure_pending = False
        elif at - self._last_tenure_change >= self.tenure_seconds:
            # a tenure extend: the miner's tenure_change with an `extended*` cause (render.py)
            kinds.append(TENURE_CHANGE)
            fees.append(0)
            self._last_tenure_change = at
        if regular:
            drawn = rng.choices(_REGULAR_KINDS, cum_weights=_REGULAR_CUM_WEIGHTS, k=regular)
            kinds += drawn
            rand = rng.random
            for kind in drawn:
                lo, hi = _FEE_SPANS[kind]
                fees.append(lo + int((hi - lo) * rand() ** 2))
        self.tx_kind.extend(kinds)
        self.tx_fee.extend(fees)
        if self._by_kind is not None:
            for offset, (kind, fee) in enumerate(zip(kinds, fees, strict=True)):
                self._index(first + offset, kind, fee)
        self.version += 1

    # ---- anomalies (the module docstring) ----------------------------------------------------

    def extend_tenure(self, seconds: float) -> int:
        """Extend the current tenure by `seconds`: its new blocks keep its first burn time.

        Since Nakamoto a block's burn_block_time is the time of the Bitcoin block that elected
        its tenure (stacks-core passes the tenure's `burn_header_timestamp` to
        `append_block`), so when Bitcoin is slow or sortitions are empty, hours of blocks share
        one old time. A growing chain postpones its next tenure; a frozen one gets the blocks
        at once, at the chain's base rate. Order is kept (the newest tenure has the latest burn
        time), unless an earlier anomaly broke it. Returns the transactions added.
        """
        with self._lock:
            if self.growing:
                self._next_tenure_at = max(self._next_tenure_at, self.clock + seconds)
                self._note("extend_tenure", keeps_order=True)
                return 0
            added = self._emit_blocks(self.clock, self.clock + seconds)
            self._note("extend_tenure", keeps_order=True)
            return added

    def stamp_earlier(self, seconds_before: float, duration: float = 600.0) -> int:
        """Open a tenure whose Bitcoin block is stamped `seconds_before` its predecessor's.

        Bitcoin only requires a block's time to exceed the median of the previous 11 (about an
        hour back), so a tenure can carry an earlier burn_block_time than the one before it:
        its transactions land in a window that may already be verified. Returns the
        transactions added.
        """
        with self._lock:
            previous = self.tenure_burn_time[-1] if self.n_tenures else int(self.clock)
            self.tenure_burn_time.append(int(previous - seconds_before))
            self.tenure_first_block.append(len(self.block_time))
            self.tenure_first_tx.append(len(self.tx_kind))
            self._tenure_pending = True
            added = self._emit_blocks(self.clock, self.clock + duration)
            self._note("stamp_earlier")
            return added

    def reorg(self, blocks: int, replacement_txs: int | None = None) -> tuple[int, int]:
        """Make the last `blocks` blocks non-canonical, and replace them with blocks of new txs.

        The API's lists and totals count canonical transactions only (stacks-blockchain-api
        src/datastore/pg-store.ts getTxList filters `canonical = true`), so the orphaned ones
        disappear from every answer. The replacement blocks keep the orphaned blocks' tenures
        (the same burn_block_time) and get new heights (this model never reuses a height).
        Returns (transactions orphaned, transactions added).
        """
        with self._lock:
            first_block = max(0, self.n_blocks - blocks)
            tenures = list(self.block_tenure[first_block:])
            orphaned = range(
                self.block_first_tx[first_block] if first_block < self.n_blocks else len(self),
                len(self),
            )
            self.orphaned.update(orphaned)
            total = len(orphaned) if replacement_txs is None else replacement_txs
            rng = self._anomaly_rng
            added = 0
            for k, tenure in enumerate(tenures):
                share = total // len(tenures) + (1 if k < total % len(tenures) else 0)
                at = self.clock + rng.uniform(*self.block_seconds)
                added += self._emit_regular_block(at, share, tenure)
            self._note("reorg")
            return len(orphaned), added

    def late_insert(self, burn_time: int, transactions: int) -> int:
        """Add a block of `transactions` under an old burn_block_time, into an old window.

        The block joins the tenure whose burn time is the latest at or before `burn_time`.
        """
        with self._lock:
            candidates = [(t, k) for k, t in enumerate(self.tenure_burn_time) if t <= burn_time]
            tenure = max(candidates)[1] if candidates else 0
            at = self.clock + self._anomaly_rng.uniform(*self.block_seconds)
            added = self._emit_regular_block(at, transactions, tenure)
            self._note("late_insert")
            return added

    def _note(self, kind: str, *, keeps_order: bool = False) -> None:
        if not keeps_order or self.anomalies:
            self.anomalies.append(kind)
        self._by_burn = None
        self.version += 1

    def _emit_blocks(self, start: float, end: float) -> int:
        """Emit blocks from `start` to `end` in the current tenure, at the chain's base rate."""
        rng = self._anomaly_rng
        lo, hi = self.block_seconds
        rate = max(self._rate, self._base_rate())
        before = len(self)
        at = start + rng.uniform(lo, hi)
        while at <= end:
            self._emit_block(at, _poisson(rng, rate * (lo + hi) / 2.0))
            at += rng.uniform(lo, hi)
        self.clock = max(self.clock, end)
        return len(self) - before

    def _emit_regular_block(self, at: float, count: int, tenure: int) -> int:
        """Emit one block of `count` regular transactions in `tenure`, which may be an old one."""
        if count <= 0:
            return 0
        pending = self._tenure_pending
        self._tenure_pending = False
        before = len(self)
        self._emit_block(at, count)  # may add a tenure extend of the miner's too
        self._tenure_pending = pending
        self.block_tenure[-1] = tenure
        self.clock = max(self.clock, at)
        return len(self) - before

    def summary(self) -> dict[str, object]:
        with self._lock:
            n = len(self.tx_kind)
            return {
                "seed": self.seed,
                "transactions": n,
                "blocks": len(self.block_time),
                "tenures": len(self.tenure_burn_time),
                "genesis_time": int(self.genesis_time),
                "end_time": int(self.end_time),
                "clock": int(self.clock),
                "growth": self.growth,
                "first_burn_block_time": min(self.tenure_burn_time) if n else None,
                "last_burn_block_time": max(self.tenure_burn_time) if n else None,
                "anomalies": list(self.anomalies),
                "orphaned": len(self.orphaned),
                "tip_block_height": GENESIS_BLOCK_HEIGHT + len(self.block_time) - 1,
                "tip_burn_block_height": GENESIS_BURN_HEIGHT + len(self.tenure_burn_time) - 1,
            }
