"""The runner over an in-process transport: lock, checkpoints, resume, chain start, exit codes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from stxbf.codes import ExitCode
from stxbf.errors import LockHeld, QuotaExhausted
from stxbf.models import BURN_TIME_INDEX
from stxbf.runner import Runner, VerifyReport, gaps_between, run_lock
from stxbf.snapshot import read
from stxbf.store import Store
from tests.fakes import params, recent_chain, transport_for


def test_a_run_stores_exactly_the_chain_and_reports_the_chain_start(tmp_path: Path) -> None:
    chain = recent_chain()
    p = params(tmp_path)
    report = asyncio.run(Runner(p, transport=transport_for(chain)).run())
    assert report.exit_code == ExitCode.OK, report.message
    assert "chain's start" in report.message
    with Store.open(p.db_path, read_only=True) as store:
        assert store.tx_ids() == {row[0] for row in chain.rows}
        assert store.get_meta("chain_start") == str(chain.rows[0][BURN_TIME_INDEX])
    snapshot = read(p.paths.progress)
    assert snapshot is not None and snapshot.exit_code == 0
    assert snapshot.days_verified == 3
    assert not p.paths.runner_record.exists()


def test_a_second_run_resumes_and_fetches_only_the_head(tmp_path: Path) -> None:
    chain = recent_chain(seed=2)
    p = params(tmp_path, settle_hours=0)  # no settle period: only the 2 h head window is open
    asyncio.run(Runner(p, transport=transport_for(chain)).run())
    chain.grow(25)
    runner = Runner(p, transport=transport_for(chain))
    report = asyncio.run(runner.run())
    assert report.exit_code == ExitCode.OK
    with Store.open(p.db_path, read_only=True) as store:
        assert store.tx_ids() == {row[0] for row in chain.rows}
    assert runner.stats.pages < 10  # only the head window was fetched again


def test_budget_and_iterations_end_with_incomplete(tmp_path: Path) -> None:
    chain = recent_chain(seed=3)
    p = params(tmp_path, max_pages=1, max_iterations=1)
    report = asyncio.run(Runner(p, transport=transport_for(chain)).run())
    assert report.exit_code == ExitCode.INCOMPLETE


def test_the_lock_admits_one_writer(tmp_path: Path) -> None:
    p = params(tmp_path)
    with (
        run_lock(p.paths),
        pytest.raises(LockHeld) as caught,
        run_lock(p.paths),
    ):
        pass
    assert "pid" in caught.value.message


@pytest.mark.parametrize(
    ("covered", "expected"),
    [
        ([], [(0, 99)]),
        ([(0, 99)], []),
        ([(10, 19), (50, 59)], [(0, 9), (20, 49), (60, 99)]),
        ([(-5, 5), (95, 200)], [(6, 94)]),
        ([(10, 30), (20, 40)], [(0, 9), (41, 99)]),
    ],
    ids=["empty", "full", "holes", "overhang", "overlap"],
)
def test_gaps(covered: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    assert gaps_between(0, 99, covered) == expected


def test_an_api_that_cannot_sort_by_burn_time_still_backfills(tmp_path: Path) -> None:
    chain = recent_chain(seed=4)
    inner = transport_for(chain)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("sort_by") == "burn_block_time":
            return httpx.Response(400, json={"error": "sort_by must be block_height"})
        return inner.handle_request(request)

    p = params(tmp_path)
    report = asyncio.run(Runner(p, transport=httpx.MockTransport(handler)).run())
    assert report.exit_code == ExitCode.OK
    with Store.open(p.db_path, read_only=True) as store:
        assert store.tx_ids() == {row[0] for row in chain.rows}


def test_a_used_up_monthly_quota_ends_the_run_at_once_with_its_own_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = recent_chain(seed=5)
    inner = transport_for(chain)
    quota = {"left": 12, "refused": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if quota["left"] <= 0:
            quota["refused"] += 1
            return httpx.Response(
                429,
                headers={
                    "retry-after": "7200",
                    "x-ratelimit-limit-stacks-month": "1000",
                    "x-ratelimit-remaining-stacks-month": "0",
                },
            )
        quota["left"] -= 1
        response = inner.handle_request(request)
        response.headers["x-ratelimit-limit-stacks-month"] = "1000"
        response.headers["x-ratelimit-remaining-stacks-month"] = str(quota["left"])
        return response

    p = params(tmp_path, max_pages=2)  # small passes, so some windows commit before the end
    runner = Runner(p, transport=httpx.MockTransport(handler))
    with caplog.at_level("WARNING"), pytest.raises(QuotaExhausted) as caught:
        asyncio.run(runner.run())
    # It did not wait out the two-hour retry-after (such a wait would end only at the suite's
    # timeout): once the quota is reported gone, a request already in flight may still meet a
    # refusal, but none is asked again.
    assert 1 <= quota["refused"] <= p.concurrency
    assert caught.value.exit_code == ExitCode.RATE_LIMITED
    assert "monthly request quota" in caught.value.message and "resets at" in caught.value.message
    warned = [r for r in caplog.records if "monthly quota has" in r.getMessage()]
    assert len(warned) == 1  # before the range is fetched, and once
    snapshot = read(p.paths.progress)
    assert snapshot is not None and snapshot.exit_code == int(ExitCode.RATE_LIMITED)
    assert snapshot.rate_limited_until is not None and snapshot.rate_limited_until > time.time()
    assert "monthly" in (snapshot.rate_limited_reason or "")


def test_the_snapshot_says_when_progress_was_last_made(tmp_path: Path) -> None:
    chain = recent_chain(seed=6)
    p = params(tmp_path)
    before = time.time()
    asyncio.run(Runner(p, transport=transport_for(chain)).run())
    snapshot = read(p.paths.progress)
    assert snapshot is not None and snapshot.last_progress_at is not None
    assert before <= snapshot.last_progress_at <= time.time()
    assert snapshot.consecutive_failures == 0 and snapshot.rate_limited_until is None


@pytest.mark.parametrize("step", ["refuse_damaged_file", "load_coverage"])
def test_a_stop_while_the_database_is_read_ends_the_run_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A Ctrl-C in the first second, while the run reads the database before any request, ends
    it with 130 and a report, not with a CancelledError traceback and exit 1."""
    import stxbf.runner.core as core

    chain = recent_chain(seed=4)
    p = params(tmp_path)
    asyncio.run(Runner(p, transport=transport_for(chain)).run())  # a database to read
    reading = getattr(core, step)

    async def stopped_while_reading(*args: object) -> None:
        runner.request_stop("SIGINT")
        await reading(*args)

    monkeypatch.setattr(core, step, stopped_while_reading)
    runner = Runner(p, transport=transport_for(chain))
    report = asyncio.run(runner.run())
    assert report.exit_code == ExitCode.INTERRUPTED
    assert "before the backfill started" in report.message
    snapshot = read(p.paths.progress)
    assert snapshot is not None and snapshot.exit_code == ExitCode.INTERRUPTED
    assert not p.paths.runner_record.exists()


def test_a_stop_while_verify_reads_every_block_ends_it_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for `stxbf verify`, stopped while it reads every block of the file."""
    import stxbf.runner.core as core

    chain = recent_chain(seed=5)
    p = params(tmp_path)
    asyncio.run(Runner(p, transport=transport_for(chain)).run())
    find_damage = core.find_damage

    loops: list[asyncio.AbstractEventLoop] = []

    def stopped_while_scanning(store: Store) -> object:
        # on the store's thread: the signal handler runs on the loop, as it does in the CLI
        loops[0].call_soon_threadsafe(runner.request_stop, "SIGINT")
        time.sleep(0.05)
        return find_damage(store)

    async def verify() -> VerifyReport:
        loops.append(asyncio.get_running_loop())
        return await runner.verify()

    monkeypatch.setattr(core, "find_damage", stopped_while_scanning)
    runner = Runner(p, transport=transport_for(chain))
    report = asyncio.run(verify())
    assert report.exit_code == ExitCode.INTERRUPTED
    assert report.windows_checked == 0
