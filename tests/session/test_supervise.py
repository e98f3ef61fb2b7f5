"""The runner pane's supervisor: which endings are retried, the backoff, restarts, stops.

The loop runs with a fake `spawn` (a scripted series of run endings) and a fake clock, so nothing
waits; one subprocess test checks that a real `stxbf run` writes the ending the loop reads and
publishes the restart count it is given.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from stxbf import snapshot
from stxbf.errors import (
    ApiGone,
    ApiNotStacks,
    ApiRejected,
    ApiUnreachable,
    ConfigError,
    DatabaseCorrupt,
    FetchError,
    LockHeld,
    QuotaExhausted,
    StoreError,
)
from stxbf.paths import DataPaths
from stxbf.session.supervise import (
    MAX_DELAY,
    RESTARTS_ENV,
    RUN_ENDING_ENV,
    RunEnding,
    Supervisor,
    backoff,
    decide,
    read_run_ending,
    write_run_ending,
)
from stxbf.snapshot import Counters, ProgressSnapshot
from tests.helpers import retry_until, stxbf

# -- which endings are retried -----------------------------------------------------------------


class Case(NamedTuple):
    error: Exception
    retried: bool


CASES = {
    "unreachable": Case(ApiUnreachable("cannot reach the API"), True),
    "5xx-give-up": Case(FetchError("500 for 600 s"), True),
    "quota": Case(QuotaExhausted("monthly quota", quota="month", resets_at=2e9), True),
    "401": Case(ApiRejected("unauthorized", status=401), False),
    "410-gone": Case(ApiGone("gone", status=410), False),
    "not-stacks": Case(ApiNotStacks("not the Stacks API"), False),
    "database": Case(StoreError("disk full"), False),
    "corrupt": Case(DatabaseCorrupt("checksum"), False),
    "lock": Case(LockHeld("held", pid=1), False),
    "usage": Case(ConfigError("bad flag"), False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide_retries_only_what_a_later_try_can_fix(case: Case) -> None:
    assert isinstance(case.error, Exception)
    ending = RunEnding.of_error(case.error)  # type: ignore[arg-type]
    decision = decide(ending.exit_code, ending, answered=True, snap=None)
    assert decision.retry is case.retried, decision.reason


@pytest.mark.parametrize(
    ("code", "ending"),
    [(0, RunEnding(0)), (130, RunEnding(130)), (137, None), (1, None), (3, RunEnding(3))],
    ids=["target-reached", "stopped", "killed", "crash-no-ending", "iterations-used"],
)
def test_decide_never_retries_these_endings(code: int, ending: RunEnding | None) -> None:
    assert not decide(code, ending, answered=True, snap=None).retry


def test_a_run_that_never_heard_from_the_api_is_not_retried() -> None:
    ending = RunEnding.of_error(ApiUnreachable("refused"))
    decision = decide(1, ending, answered=False, snap=None)
    assert not decision.retry and "never answered" in decision.reason


def test_quota_waits_for_the_reset() -> None:
    ending = RunEnding.of_error(QuotaExhausted("q", quota="month", resets_at=5000.0))
    assert decide(75, ending, answered=True, snap=None).wait_until == 5000.0


def test_backoff_doubles_from_10_s_to_a_5_min_cap_with_jitter() -> None:
    middle = [backoff(step, rng=lambda: 0.5) for step in range(8)]
    assert middle[:5] == [10.0, 20.0, 40.0, 80.0, 160.0]
    assert middle[5:] == [MAX_DELAY] * 3
    assert backoff(0, rng=lambda: 0.0) < 10.0 < backoff(0, rng=lambda: 0.999)


def test_run_ending_file_round_trip(tmp_path: Path) -> None:
    ending = RunEnding.of_error(QuotaExhausted("q", quota="month", resets_at=123.0))
    write_run_ending(tmp_path / "o.json", ending)
    assert read_run_ending(tmp_path / "o.json") == ending
    assert read_run_ending(tmp_path / "missing.json") is None


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class Ending:
    code: int
    error: Exception | None = None
    answered: bool = True


@dataclass
class FakeRuns:
    """Plays one scripted ending per spawn, writing a RunEnding and snapshot as `stxbf run` does."""

    paths: DataPaths
    endings: list[Ending]
    envs: list[dict[str, str]] = field(default_factory=list)
    on_spawn: Any = None

    def __call__(self, argv: list[str], *, env: dict[str, str]) -> Any:
        self.envs.append(env)
        ending = self.endings[len(self.envs) - 1]
        pid = 40_000 + len(self.envs)
        written = (
            RunEnding.of_error(ending.error) if ending.error else RunEnding(ending.code)  # type: ignore[arg-type]
        )
        if ending.code not in (137,):
            write_run_ending(Path(env[RUN_ENDING_ENV]), written)
        snap = ProgressSnapshot(
            pid=pid, started_at=0, updated_at=0, phase="failed", api_url="x", target_days=1,
            range_start=0, range_end=1, counters=Counters(pages=3 if ending.answered else 0),
            restarts=int(env[RESTARTS_ENV]),
        )  # fmt: skip
        snapshot.publish(self.paths.progress, snap)
        if self.on_spawn is not None:
            self.on_spawn(len(self.envs))
        return FakeChild(pid, ending.code)


class FakeChild:
    def __init__(self, pid: int, code: int) -> None:
        self.pid, self.code = pid, code

    def wait(self) -> int:
        return self.code

    def send_signal(self, signum: int) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def supervisor(tmp_path: Path, endings: list[Ending]) -> tuple[Supervisor, FakeRuns, FakeClock]:
    paths = DataPaths.of(tmp_path / "data")
    paths.home.mkdir(parents=True)
    runs = FakeRuns(paths, endings)
    clock = FakeClock()
    sup = Supervisor(
        ["stxbf", "run"], paths, spawn=runs, clock=clock.time, sleep=clock.sleep, rng=lambda: 0.5
    )
    return sup, runs, clock


def test_outages_are_survived_and_each_restart_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="stxbf.session.supervise")
    outage = ApiUnreachable("cannot reach the API")
    sup, runs, clock = supervisor(
        tmp_path, [Ending(1, outage), Ending(1, outage), Ending(1, outage), Ending(0)]
    )
    assert sup.run() == 0
    assert [env[RESTARTS_ENV] for env in runs.envs] == ["0", "1", "2", "3"]
    assert sum(clock.slept) == pytest.approx(10 + 20 + 40)
    restarts = [r for r in caplog.records if "restart" in r.getMessage()]
    assert len(restarts) == 3 and all(r.levelname == "WARNING" for r in restarts)
    assert snapshot.read(runs.paths.progress).restarts == 3  # type: ignore[union-attr]


def test_the_first_failure_before_any_answer_ends_the_pane(tmp_path: Path) -> None:
    sup, runs, _ = supervisor(tmp_path, [Ending(1, ApiUnreachable("refused"), answered=False)])
    assert sup.run() == 1
    assert len(runs.envs) == 1


def test_an_outage_after_the_api_answered_once_is_retried_even_in_preflight(
    tmp_path: Path,
) -> None:
    down = ApiUnreachable("refused")
    sup, runs, _ = supervisor(
        tmp_path, [Ending(1, down), Ending(1, down, answered=False), Ending(0)]
    )
    assert sup.run() == 0 and len(runs.envs) == 3


@pytest.mark.parametrize(
    "ending",
    [Ending(1, StoreError("disk full")), Ending(1, ApiGone("gone", status=410)), Ending(4),
     Ending(2), Ending(137), Ending(130)],
    ids=["database", "410", "lock", "usage", "killed", "stopped"],
)  # fmt: skip
def test_not_retried_endings_end_the_pane_with_their_code(tmp_path: Path, ending: Ending) -> None:
    sup, runs, clock = supervisor(tmp_path, [ending])
    assert sup.run() == ending.code
    assert len(runs.envs) == 1 and clock.slept == []


def test_quota_waits_until_the_reset(tmp_path: Path) -> None:
    quota = QuotaExhausted("monthly quota", quota="month", resets_at=1000.0 + 3600)
    sup, runs, clock = supervisor(tmp_path, [Ending(75, quota), Ending(0)])
    assert sup.run() == 0
    assert len(runs.envs) == 2 and sum(clock.slept) >= 3600


def test_a_stop_while_waiting_ends_the_loop_without_a_restart(tmp_path: Path) -> None:
    outage = ApiUnreachable("down")
    sup, runs, clock = supervisor(tmp_path, [Ending(1, outage), Ending(0)])
    real_sleep = clock.sleep

    def sleep_then_stop(seconds: float) -> None:
        real_sleep(seconds)
        sup.request_stop(signal.SIGINT)  # `stxbf tmux stop` during the backoff

    sup.sleep = sleep_then_stop
    assert sup.run() == 130
    assert len(runs.envs) == 1


def test_a_stop_during_a_run_is_not_followed_by_a_restart(tmp_path: Path) -> None:
    sup, runs, _ = supervisor(tmp_path, [Ending(1, ApiUnreachable("down")), Ending(0)])
    runs.on_spawn = lambda n: sup.request_stop(signal.SIGINT)
    assert sup.run() == 1
    assert len(runs.envs) == 1


# -- the real `stxbf run` side ------------------------------------------------------------------


@pytest.mark.slow  # `python -m stxbf run`
def test_stxbf_run_leaves_how_it_ended_and_publishes_the_restart_count(tmp_path: Path) -> None:
    ending_file = tmp_path / "ending.json"
    env = {
        **os.environ,
        "STXBF_HOME": str(tmp_path / "data"),
        RUN_ENDING_ENV: str(ending_file),
        RESTARTS_ENV: "4",
    }
    done = stxbf(
        "run", "--api-url", "http://127.0.0.1:1", "--target-days", "1", "--give-up-after", "1",
        env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    ending = json.loads(ending_file.read_text())
    assert ending == {
        "exit_code": 1, "error": "ApiUnreachable", "retryable": True, "resets_at": None,
    }  # fmt: skip
    snap = snapshot.read(DataPaths.of(tmp_path / "data").progress)
    assert snap is not None and snap.restarts == 4


CHILD = """
import json, os, sys, time
from stxbf import snapshot
from stxbf.snapshot import Counters, ProgressSnapshot
home = sys.argv[1]
snap = ProgressSnapshot(pid=os.getpid(), started_at=time.time(), updated_at=time.time(),
    phase="failed", api_url="x", target_days=1, range_start=0, range_end=1,
    counters=Counters(pages=1), restarts=int(os.environ["STXBF_SUPERVISOR_RESTARTS"]))
snapshot.publish(__import__("pathlib").Path(home) / "stxbf.duckdb.progress.json", snap)
with open(os.environ["STXBF_SUPERVISOR_OUTCOME"], "w") as f:
    json.dump({"exit_code": 1, "error": "ApiUnreachable", "retryable": True}, f)
with open(os.path.join(home, "starts"), "a") as f:
    f.write("x")
sys.exit(1)
"""


@pytest.mark.slow  # the supervisor as a process
def test_sigint_during_the_backoff_ends_the_supervisor_process(tmp_path: Path) -> None:
    """What `stxbf tmux stop` does when no run is alive: Ctrl+C to the pane, and no restart."""
    home = tmp_path / "data"
    home.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stxbf.session.supervise", "--home", str(home),
         "--db", str(home / "stxbf.duckdb"), "--", sys.executable, "-c", CHILD, str(home)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        log = home / "logs" / "stxbf.log"
        retry_until(lambda: log.exists() and "restart 1 in" in log.read_text())
        proc.send_signal(signal.SIGINT)
        # a bound for a hang only: a restart after the 8 s backoff would show in `starts` below
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert (home / "starts").read_text() == "x"  # started once, never again
    assert "restart 1 in" in err
    assert "stopped while waiting to restart" in log.read_text()


# -- what the others see while the supervisor waits ----------------------------------------------


def test_the_wait_is_recorded_and_the_record_removed_at_the_end(tmp_path: Path) -> None:
    from stxbf.process import active_supervisor

    sup, runs, clock = supervisor(tmp_path, [Ending(1, ApiUnreachable("down")), Ending(0)])
    seen: list[Any] = []
    real_sleep = clock.sleep

    def sleep_and_look(seconds: float) -> None:
        seen.append(active_supervisor(runs.paths))
        real_sleep(seconds)

    sup.sleep = sleep_and_look
    assert sup.run() == 0
    record = seen[0]
    assert record is not None and record.state == "waiting" and record.restarts == 1
    assert record.failing_since == 1000.0 and record.restart_at == pytest.approx(1010.0)
    assert "ApiUnreachable" in (record.reason or "")
    assert not runs.paths.supervisor_record.exists()


def test_health_calls_an_outage_between_tries_stalled_not_stopped(tmp_path: Path) -> None:
    """Between two tries no run is alive: health used to say "not running" (1), as if left alone."""
    from stxbf.paths import SupervisorRecord, write_supervisor_record
    from stxbf.report.health import build_health

    paths = DataPaths.of(tmp_path)
    write_supervisor_record(
        paths.supervisor_record,
        SupervisorRecord(
            pid=os.getpid(), state="waiting", restarts=3, failing_since=1000.0,
            restart_at=1300.0, reason="ApiUnreachable",
        ),
    )  # fmt: skip
    report = build_health(paths, target_days=3, now=1200.0)
    assert (report.verdict, report.exit_code) == ("stalled", 2)
    assert "failing since" in report.reasons[0] and "restart 3 in 100 s" in report.reasons[0]


def test_status_json_shows_the_restart_count(tmp_path: Path) -> None:
    from stxbf.report.status import build_status

    paths = DataPaths.of(tmp_path)
    snap = ProgressSnapshot(
        pid=999_999, started_at=0, updated_at=0, phase="failed", api_url="x", target_days=1,
        range_start=0, range_end=1, restarts=5,
    )  # fmt: skip
    snapshot.publish(paths.progress, snap)
    report = build_status(paths, target_days=1)
    assert report.to_dict()["restarts"] == 5


def test_quota_without_a_stated_reset_uses_the_one_the_run_published() -> None:
    ending = RunEnding(exit_code=75, error="QuotaExhausted", retryable=True)
    snap = ProgressSnapshot(
        pid=1, started_at=0, updated_at=0, phase="failed", api_url="x", target_days=1,
        range_start=0, range_end=1, rate_limited_until=7200.0,
    )  # fmt: skip
    assert decide(75, ending, answered=True, snap=snap).wait_until == 7200.0
