"""The range a run backfills: it moves with the clock, and may start later than asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stxbf.runner.params import RunParams
from stxbf.snapshot import DAY

HEAD_SETTLE_SECONDS = 2 * 3600  # a tenure can keep adding blocks under one burn time this long


@dataclass
class RangePlan:
    """The range [range_start, range_end]: the last `target_days` up to now, planned again each
    iteration.

    It is made once per run from the run's parameters (`of`), and every part of the run reads
    `target_days` and `settle_hours` from it. `chain_start` is the API's oldest transaction when
    it lies inside the range (nothing older exists, so the target is reached there);
    `expected_total` is the API's count for the range (v1 only; it feeds the ETA and the quota
    warning).
    """

    target_days: int
    settle_hours: float
    range_start: int = 0
    range_end: int = 0
    chain_start: int | None = None
    expected_total: int | None = None

    @classmethod
    def of(cls, params: RunParams, now: float) -> RangePlan:
        """Return the plan of a run asked for `params`: empty at `now` until the preflight."""
        start = int(now)
        return cls(params.target_days, params.settle_hours, range_start=start, range_end=start)

    def advance(self, now: float) -> None:
        """Move the range's end to `now`, keeping its length."""
        self.range_end = int(now)
        self.range_start = self.range_end - self.target_days * DAY + 1

    @property
    def effective_start(self) -> int:
        """Where fetching starts: the range's start, or the chain's start inside it."""
        if self.chain_start is not None and self.chain_start > self.range_start:
            return self.chain_start
        return self.range_start

    @property
    def head_start(self) -> int:
        """The newest stretch, always stored `open`: its tenure may still be growing."""
        return self.range_end - HEAD_SETTLE_SECONDS + 1

    @property
    def settle_start(self) -> int | None:
        """Windows ending at or after this time stay `open` (fetched again by the next run)."""
        settle = int(self.settle_hours * 3600)
        return self.range_end - settle + 1 if settle > 0 else None

    def before_chain_start(self) -> tuple[int, int] | None:
        """The stretch of the range older than the chain's first transaction (empty, provably)."""
        if self.chain_start is None:
            return None
        start, end = self.range_start, min(self.chain_start - 1, self.range_end)
        return (start, end) if start <= end else None

    def meta(self, api_url: str) -> dict[str, Any]:
        """What the database's meta table records of the plan (status reads it back)."""
        return {
            "range_start": self.range_start,
            "range_end": self.range_end,
            "target_days": self.target_days,
            "api_url": api_url,
            "chain_start": self.chain_start,
            "expected_total": self.expected_total,
        }
