"""A seeded model of the post-Nakamoto Stacks chain, compact enough for millions of transactions.

Structure: tenures (one per Bitcoin block, ~600 s apart) → Stacks blocks (every ~5-10 s, only when
they hold transactions) → transactions. This module generates them: the history up to `end_time`
at construction, then growth as the clock advances. The arrays they land in, and every query over
them, are `ledger.py`'s.

The real chain does not always keep burn_block_time in block order, and the anomaly methods model
how: `extend_tenure` (blocks for hours under the tenure's first burn time), `stamp_earlier` (a
Bitcoin block stamped before its predecessor), `reorg` (the last blocks become non-canonical and
others replace them) and `late_insert` (a block under an old burn time). Once one has happened the
chain answers from a (burn_block_time, index) index of its canonical transactions instead of
bisecting tenures; a chain without anomalies keeps the fast path.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_left, bisect_right

from stxbf.simulator.ledger import (
    COINBASE,
    CONTRACT_CALL,
    FEE_LADDER,
    GENESIS_BLOCK_HEIGHT,
    GENESIS_BURN_HEIGHT,
    SMART_CONTRACT,
    TENURE_CHANGE,
    TOKEN_TRANSFER,
    Ledger,
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


class Chain(Ledger):
    """The simulated chain; `advance(now)` appends the blocks due by `now` when growth is on.

    `end_time` is the chain's "now" at build time (default: wall time); history starts `days`
    before it. After that, regular transactions arrive at `growth` per second (0 = frozen).
    `tenures_at`: burn times that get a Bitcoin block (a tenure) of their own, deterministically.
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
        super().__init__(seed)
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

    def _base_rate(self) -> float:
        """Regular transactions per second that make `tx_per_day` with the system ones."""
        system_per_day = 2 * 86400.0 / self.tenure_seconds
        return (self.tx_per_day - system_per_day) / 86400.0

    def _build_history(self, extended: float) -> None:
        """Generate from genesis to `end_time`; with `extended` seconds, the head tenure was
        elected that long ago and extended ever since."""
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
        """Append every block due by `now` (chain time); return how many txs were added."""
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
        """The current tenure is extended for `seconds`: its blocks keep its first burn time.

        Since Nakamoto a block's burn_block_time is the time of the Bitcoin block that elected
        its tenure (stacks-core passes the tenure's `burn_header_timestamp` to `append_block`),
        so when Bitcoin is slow or sortitions are empty, hours of blocks share one old time.
        A growing chain postpones its next tenure; a frozen one gets the blocks at once, at the
        chain's base rate. Order is kept (the newest tenure has the latest burn time), unless an
        earlier anomaly broke it. Returns the transactions added.
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
        """A new tenure whose Bitcoin block is stamped `seconds_before` its predecessor's.

        Bitcoin only requires a block's time to exceed the median of the previous 11 (about an
        hour back), so a tenure can carry an earlier burn_block_time than the one before it:
        its transactions land in a window that may already be verified. Returns txs added.
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
        """The last `blocks` blocks become non-canonical; new blocks of other txs replace them.

        The API's lists and totals count canonical transactions only (stacks-blockchain-api
        src/datastore/pg-store.ts getTxList filters `canonical = true`), so the orphaned ones
        disappear from every answer. The replacement blocks keep the orphaned blocks' tenures
        (same burn_block_time) and get new heights (this model never reuses a height).
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
        """A new block under an old burn_block_time: `transactions` appear in an old window.

        It joins the tenure whose burn time is the latest at or before `burn_time`.
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
        """Blocks from `start` to `end` in the current tenure at the chain's base rate."""
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
        """One block of `count` regular transactions in `tenure` (which may be an old one)."""
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
