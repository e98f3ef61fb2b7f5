"""The snapshot of a run, built from its state and published about once a second.

The snapshot goes to the progress file, which `stxbf status`, `health` and the tmux monitor read
while the run holds the database, and to the terminal view. It is built from the run's state,
the fetch counters and the pacer; the ETA comes from the pages left, or, where the range's total
is unknown (v3), from the pace at which the range is being covered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable

from stxbf.codes import Phase
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import FetchStats
from stxbf.models import PAGE_LIMIT
from stxbf.runner.params import ProgressView, RunParams
from stxbf.runner.request_path import RequestPath
from stxbf.runner.state import RunState
from stxbf.snapshot import ProgressSnapshot, publish

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 1.0
COVERAGE_PACE_SECONDS = 30.0  # of fetching before an ETA is told from the range covered alone


class CoveragePace:
    """Tells an ETA where the range's total is unknown (v3 does not ask it up front).

    The ETA is the seconds of the range still uncovered, over the pace this run has been
    covering them at. It is rougher than the pages left at the achieved rate (busy days take
    longer than quiet ones), but every request a window costs is in it: v3's burn-block pages
    and cursor walks alike.
    """

    def __init__(self) -> None:
        self._since: tuple[float, int] | None = None  # (when fetching began, uncovered then)

    def eta(self, uncovered: int, now: float, *, fetching: bool) -> float | None:
        if self._since is None:
            if not fetching:
                return None
            self._since = (now, uncovered)
        began, uncovered_then = self._since
        elapsed, covered = now - began, uncovered_then - uncovered
        if elapsed < COVERAGE_PACE_SECONDS or covered <= 0:
            return None
        return uncovered / (covered / elapsed)


class SnapshotPublisher:
    """Builds the run's snapshot and publishes it, and warns once when the monthly quota will
    not last."""

    def __init__(
        self,
        params: RunParams,
        state: RunState,
        stats: FetchStats,
        *,
        clock: Callable[[], float],
        view: ProgressView | None = None,
    ) -> None:
        self.params = params
        self.state = state
        self.stats = stats
        self.clock = clock
        self.view = view
        self.started_at = clock()
        self.request_path: RequestPath | None = None  # set once the run opens its request path
        self._quota_warned = False
        self._coverage_pace = CoveragePace()

    @property
    def pacer(self) -> Pacer | None:
        return self.request_path.pacer if self.request_path is not None else None

    async def publish_loop(self) -> None:
        while True:
            self.publish()
            self.warn_if_quota_short()
            await asyncio.sleep(PUBLISH_INTERVAL)

    def publish(self) -> None:
        snapshot = self.snapshot()
        try:
            publish(self.params.paths.progress, snapshot)
        except OSError as exc:
            log.debug("cannot publish progress: %s", exc)
        if self.view is not None:
            self.view.update(snapshot)

    def log_plan(self) -> None:
        """Log, at the start, the requests the range needs against the monthly quota left and
        this run's budget.

        A small quota is then seen coming: 150,000 a month is ~3.7 years of backfill, and a
        nightly cron spends it too.
        """
        parts = []
        needed = self.requests_needed()
        if needed is not None:
            parts.append(f"the range needs about {needed:,} requests")
        pacer = self.pacer
        if pacer is not None and pacer.month_remaining is not None:
            of = f" of {int(pacer.month_limit):,}" if pacer.month_limit is not None else ""
            parts.append(f"monthly quota left: {int(pacer.month_remaining):,}{of}")
        if self.params.max_requests is not None:
            parts.append(f"this run may send {self.params.max_requests:,} (--max-requests)")
        if parts:
            log.info("plan: %s", "; ".join(parts))

    def requests_needed(self) -> int | None:
        """Return about how many requests the rest of the range needs (its pages), when the
        range's total is known (v1 asks it)."""
        pages = self._remaining_pages()
        return None if pages is None else math.ceil(pages)

    def warn_if_quota_short(self) -> None:
        """Warn, once a run, when the monthly quota left is smaller than the rest of the range
        needs."""
        pacer = self.pacer
        if self._quota_warned or pacer is None or pacer.month_remaining is None:
            return
        needed = self._remaining_pages()
        if needed is None:
            return
        needed_units = needed * pacer.cost
        if pacer.month_remaining < needed_units:
            self._quota_warned = True
            log.warning(
                "the API's monthly quota has %d request units left, and the rest of the range "
                "needs about %d: the run will stop when the quota runs out",
                int(pacer.month_remaining),
                int(needed_units),
            )

    def snapshot(self) -> ProgressSnapshot:
        state, plan, stats, figures = self.state, self.state.plan, self.stats, self.state.figures
        backoff_until = self._backoff_until()
        phase = state.phase
        if phase == Phase.FETCHING and backoff_until and backoff_until > self.clock():
            phase = Phase.BACKING_OFF
        rate = self.pacer.achieved_rpm() if self.pacer is not None else 0.0
        limit = self.pacer.limit_rpm if self.pacer is not None else None
        limited_until, limited_reason = self._rate_limited()
        return ProgressSnapshot(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self.clock(),
            phase=phase,
            api_url=self.params.api_url,
            target_days=plan.target_days,
            range_start=plan.range_start,
            range_end=plan.range_end,
            chain_start=plan.chain_start,
            iteration=state.iteration,
            counters=stats.counters(
                windows_verified=state.windows_verified,
                windows_refetched=state.windows_refetched,
            ),
            coverage=state.coverage.days(plan.range_start, plan.range_end),
            transactions_stored=figures.transactions,
            wallets=figures.wallets,
            earliest_tx_time=figures.earliest,
            latest_tx_time=figures.latest,
            expected_total=plan.expected_total,
            rate_rpm=round(rate, 1),
            limit_rpm=None if limit is None else round(limit, 1),
            backoff_until=backoff_until,
            last_error=stats.last_error,
            last_error_at=stats.last_error_at,
            last_progress_at=max(
                (t for t in (stats.last_page_at, state.last_commit_at) if t is not None),
                default=None,
            ),
            consecutive_failures=stats.consecutive_failures,
            failing_since=stats.failing_since,
            rate_limited_until=limited_until,
            rate_limited_reason=limited_reason,
            eta_seconds=self._eta(rate),
            db_bytes=figures.db_bytes,
            restarts=self.params.restarts,
            exit_code=None if state.exit_code is None else int(state.exit_code),
            source=self.request_path.source if self.request_path is not None else None,
            window_sources=dict(sorted(figures.window_sources.items())),
            quota_limit=self.pacer.month_limit if self.pacer is not None else None,
            quota_remaining=self.pacer.month_remaining if self.pacer is not None else None,
            requests_needed=self.requests_needed(),
            max_requests=self.params.max_requests,
            in_flight_limit=(
                self.request_path.pages.inflight.limit() if self.request_path is not None else None
            ),
        )

    def _backoff_until(self) -> float | None:
        """Return when the error backoff or the pacer's gate (a stated limit) ends, the later."""
        backoff_until = self.stats.backoff_until
        if self.pacer is not None and self.pacer.gate_remaining() > 0:
            gate = self.clock() + self.pacer.gate_remaining()
            backoff_until = max(backoff_until or 0.0, gate)
        return backoff_until

    def _rate_limited(self) -> tuple[float | None, str | None]:
        """Return until when, and why, the run waits out a limit the API stated (not a stall)."""
        if self.state.quota is not None:
            return self.state.quota.resets_at, self.state.quota.message
        pacer = self.pacer
        if pacer is None or pacer.gate_remaining() <= 0 or pacer.gate_reason is None:
            return None, None
        return self.clock() + pacer.gate_remaining(), pacer.gate_reason

    def _remaining_pages(self) -> float | None:
        plan = self.state.plan
        if plan.expected_total is None:
            return None
        done = self.state.coverage.api_total_within(plan.range_start, plan.range_end)
        return max(0, plan.expected_total - done) / PAGE_LIMIT

    def _eta(self, rate_rpm: float) -> float | None:
        """Return the ETA: the pages left at the achieved rate, or, without the range's total,
        the coverage's pace."""
        remaining_pages = self._remaining_pages()
        if remaining_pages is not None:
            return remaining_pages / (rate_rpm / 60.0) if rate_rpm > 0 else None
        plan = self.state.plan
        uncovered = self.state.coverage.uncovered_seconds(plan.effective_start, plan.range_end)
        fetching = self.state.phase == Phase.FETCHING
        return self._coverage_pace.eta(uncovered, self.clock(), fetching=fetching)
