"""The runner's parts on their own: coverage, the range plan, the stop signal, the store thread,
the progress snapshot, and the committer's bookkeeping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stxbf.codes import Phase, WindowState
from stxbf.fetch.pages import FetchStats
from stxbf.fetch.windows import CompletedWindow
from stxbf.models import BURN_TIME_INDEX
from stxbf.runner.commits import Committer, forget_duplicated, record_before_chain_start
from stxbf.runner.coverage import Coverage, Span, gaps_between
from stxbf.runner.plan import HEAD_SETTLE_SECONDS, RangePlan
from stxbf.runner.publisher import CoveragePace, SnapshotPublisher
from stxbf.runner.state import RunState, StopSignal
from stxbf.runner.storethread import StoreThread
from stxbf.snapshot import DAY
from stxbf.store import Store
from tests.fakes import params, recent_chain

NOW = 1_800_000_000


def test_gaps_are_what_the_covered_spans_leave() -> None:
    assert gaps_between(0, 99, [(10, 19), (15, 29), (50, 59)]) == [(0, 9), (30, 49), (60, 99)]
    assert gaps_between(0, 9, [(0, 9)]) == []
    assert gaps_between(5, 9, [(0, 3), (20, 30)]) == [(5, 9)]


def test_a_committed_window_replaces_every_span_it_overlaps() -> None:
    coverage = Coverage([Span(0, 9, 5), Span(10, 19, 7), Span(30, 39, 1)])
    coverage.commit(5, 14, Span(5, 14, 9))
    assert sorted(coverage.bounds()) == [(5, 14), (30, 39)]
    coverage.commit(30, 39, None)  # stored short: incomplete, so no longer covered
    assert coverage.bounds() == [(5, 14)]
    assert coverage.gaps(0, 20) == [(0, 4), (15, 20)]


def test_coverage_counts_the_api_totals_inside_the_range_only() -> None:
    coverage = Coverage([Span(0, 9, 5), Span(10, 19, 7), Span(100, 109, 50)])
    assert coverage.api_total_within(5, 50) == 12
    coverage.forget([(0, 9)])
    assert coverage.api_total_within(5, 50) == 7


def test_the_plan_follows_the_clock_and_starts_at_the_chain_start_inside_it() -> None:
    plan = RangePlan(target_days=2, settle_hours=24)
    plan.advance(NOW)
    assert (plan.range_start, plan.range_end) == (NOW - 2 * DAY + 1, NOW)
    assert plan.effective_start == plan.range_start
    assert plan.head_start == NOW - HEAD_SETTLE_SECONDS + 1
    assert plan.settle_start == NOW - DAY + 1
    plan.chain_start = NOW - DAY
    assert plan.effective_start == NOW - DAY
    assert plan.before_chain_start() == (plan.range_start, NOW - DAY - 1)
    plan.chain_start = plan.range_start - 10  # older than the range: nothing to record
    assert plan.effective_start == plan.range_start
    assert plan.before_chain_start() is None


def test_no_settle_period_leaves_only_the_head_open() -> None:
    plan = RangePlan(target_days=1, settle_hours=0)
    plan.advance(NOW)
    assert plan.settle_start is None


class FakeEngine:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_a_stop_reaches_every_engine_at_work_and_those_started_after_it() -> None:
    signal = StopSignal()
    first, second = FakeEngine(), FakeEngine()
    with signal.watching(first), signal.watching(second):
        signal.request("test")
        assert first.stopped and second.stopped
    late = FakeEngine()
    with signal.watching(late):
        assert late.stopped
    signal.request("again")  # said once: a second request is a no-op


def test_a_stop_with_no_engine_at_work_cancels_the_task() -> None:
    async def main() -> bool:
        signal = StopSignal()
        signal.task = asyncio.current_task()
        signal.request("test")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(main())


def window(start: int, end: int, rows: list[tuple[Any, ...]], state: str) -> CompletedWindow:
    return CompletedWindow(
        start=start, end=end, total=len(rows), rows=rows, pages=1, state=WindowState(state)
    )


def test_the_committer_stores_windows_and_keeps_the_books(tmp_path: Path) -> None:

    rows = recent_chain().rows[:3]
    low = min(row[BURN_TIME_INDEX] for row in rows)
    high = max(row[BURN_TIME_INDEX] for row in rows)

    async def main() -> RunState:
        db = await StoreThread.open(tmp_path / "t.duckdb")
        state = RunState(plan=RangePlan(target_days=1, settle_hours=0))
        committer = Committer(db, state, clock=lambda: float(NOW))
        try:
            await committer.on_window("v1")(window(low, high, rows, "verified"))
            await committer.on_window("v3")(window(high + 1, high + 100, [], "open"))
            await committer.drain()
        finally:
            await committer.close()
            await db.close(checkpoint=True)
        return state

    state = asyncio.run(main())
    assert sorted(state.coverage.bounds()) == [(low, high), (high + 1, high + 100)]
    assert state.windows_verified == 1  # the open one is fetched again: not final
    assert state.figures.transactions == 3
    assert state.figures.window_sources == {"v1": 1, "v3": 1}
    assert state.last_commit_at == NOW
    with Store.open(tmp_path / "t.duckdb", read_only=True) as store:
        assert store.tx_ids() == {row[0] for row in rows}


def test_the_empty_stretch_before_the_chain_start_is_recorded_once(tmp_path: Path) -> None:
    async def main() -> tuple[RunState, bool]:
        db = await StoreThread.open(tmp_path / "t.duckdb")
        plan = RangePlan(target_days=2, settle_hours=0)
        plan.advance(NOW)
        plan.chain_start = NOW - DAY
        state = RunState(plan=plan)
        await record_before_chain_start(db, state, "v1")
        await record_before_chain_start(db, state, "v1")  # covered now: nothing more
        forgot = await forget_duplicated(db, state)
        windows = await db.call(Store.windows)
        await db.close(checkpoint=True)
        assert len(windows) == 1 and windows[0].state == WindowState.VERIFIED
        return state, forgot

    state, forgot = asyncio.run(main())
    assert state.coverage.bounds() == [(NOW - 2 * DAY + 1, NOW - DAY - 1)]
    assert not forgot


def test_the_snapshot_says_backing_off_and_gives_no_eta_without_a_total(tmp_path: Path) -> None:
    stats = FetchStats()
    stats.backoff_until = NOW + 30
    state = RunState(plan=RangePlan(target_days=1, settle_hours=0), phase=Phase.FETCHING)
    state.plan.advance(NOW)
    progress = SnapshotPublisher(params(tmp_path), state, stats, clock=lambda: float(NOW))
    snapshot = progress.snapshot()
    assert snapshot.phase == "backing_off"
    assert snapshot.eta_seconds is None and snapshot.backoff_until == NOW + 30
    state.plan.expected_total = 1000
    state.coverage.add(Span(state.plan.range_start, state.plan.range_end, 500))
    assert progress._remaining_pages() == pytest.approx(10.0)  # 500 left, 50 a page


def test_without_a_total_the_eta_is_the_uncovered_range_at_the_pace_it_is_covered(
    tmp_path: Path,
) -> None:
    """v3 asks no total up front: the ETA is told from the range covered, once it moves."""
    clock = [float(NOW)]
    state = RunState(plan=RangePlan(target_days=10, settle_hours=0), phase=Phase.FETCHING)
    state.plan.advance(NOW)
    progress = SnapshotPublisher(params(tmp_path), state, FetchStats(), clock=lambda: clock[0])
    plan = state.plan
    assert progress.snapshot().eta_seconds is None  # fetching begins: nothing to go by yet
    clock[0] += 60
    state.coverage.add(Span(plan.range_end - DAY + 1, plan.range_end, 7000))  # a day a minute
    snapshot = progress.snapshot()
    assert snapshot.eta_seconds == pytest.approx(9 * 60)  # nine days left
    clock[0] += 60
    state.coverage.add(Span(plan.range_end - 5 * DAY + 1, plan.range_end - DAY, 28000))
    assert progress.snapshot().eta_seconds == pytest.approx(120)  # 5 days left, 5 done in 120 s


def test_the_coverage_pace_waits_for_fetching_and_for_half_a_minute_of_it() -> None:
    pace = CoveragePace()
    assert pace.eta(1000, 0.0, fetching=False) is None  # the preflight is not the pace
    assert pace.eta(1000, 10.0, fetching=True) is None
    assert pace.eta(900, 20.0, fetching=True) is None  # 10 s is too short to tell
    assert pace.eta(500, 60.0, fetching=False) == pytest.approx(500 / (500 / 50))
