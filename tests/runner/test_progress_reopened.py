"""Progress shown never goes backwards without a word why: a new run reopens the last run's `open`
windows (the head and the settle period) to fetch them again, and their days stay counted.

"Days verified went from 8/30 to 6/30 across a stop and start 4 minutes apart": the run loaded
only the verified windows, so the last 24 h (stored, and counted by `stxbf status` from the
database) dropped out of its snapshot until fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from stxbf.codes import ExitCode
from stxbf.paths import DataPaths
from stxbf.report.status import build_status
from stxbf.runner import Runner
from stxbf.runner.commits import load_coverage
from stxbf.runner.coverage import Coverage, Span
from stxbf.runner.plan import RangePlan
from stxbf.runner.state import RunState
from stxbf.runner.storethread import StoreThread
from stxbf.simulator import SimApi, SimConfig
from stxbf.simulator.transport import SimTransport
from tests.fakes import params

HOUR = 3600
DAYS = 3


@pytest.mark.slow  # a whole run over the simulator
def test_a_new_run_counts_the_settle_windows_it_reopens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    api = SimApi(SimConfig(seed=5, days=DAYS + 1, tx_per_day=1500, end_time=now - HOUR))
    p = params(tmp_path, target_days=DAYS, settle_hours=24.0)
    runner = Runner(p, transport=SimTransport(api, sleep=False), clock=lambda: now)
    assert asyncio.run(runner.run()).exit_code == ExitCode.OK
    shown = build_status(
        DataPaths.of(p.db_path.parent, p.db_path),
        target_days=DAYS,
        now=now,
    )
    assert shown.days_verified == DAYS

    with caplog.at_level(logging.INFO, logger="stxbf.runner"):
        state = RunState(plan=RangePlan(DAYS, 24.0))
        state.plan.advance(now)  # the same range: nothing new to fetch yet

        async def load() -> None:
            db = await StoreThread.open(p.db_path)
            try:
                await load_coverage(db, state)
            finally:
                await db.close(checkpoint=False)

        asyncio.run(load())
    plan = state.plan
    days = state.coverage.days(plan.range_start, plan.range_end)
    assert sum(1 for share in days if share >= 1.0) == shown.days_verified
    assert state.coverage.gaps(plan.range_start, plan.range_end)  # yet fetched again
    reopened = [r for r in caplog.records if r.getMessage().startswith("reopened ")]
    assert len(reopened) == 1 and "24 h settle period" in reopened[0].getMessage()


def test_a_reopened_window_counts_until_the_window_fetched_again_replaces_it() -> None:
    coverage = Coverage([Span(0, 99, 5)], reopened=[Span(100, 199)])
    assert coverage.gaps(0, 199) == [(100, 199)]
    assert coverage.days(0, 199) == [1.0]
    coverage.commit(150, 199, None)  # fetched again, found incomplete: that part is no longer
    assert coverage.gaps(0, 199) == [(100, 199)]
    assert coverage.days(0, 199) == [0.75]  # the rest of the reopened window still counts
    assert coverage.uncovered_seconds(0, 199) == 100
    coverage.commit(100, 149, Span(100, 149, 2))
    assert coverage.gaps(0, 199) == [(150, 199)]
    assert coverage.api_total_within(0, 199) == 7
