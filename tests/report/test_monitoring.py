"""What `status` and `health` tell a monitoring script: one rule for stalled and rate-limited,
exit codes from one registry, usage errors apart from state codes, cron-friendly health.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from filelock import FileLock

from stxbf import snapshot
from stxbf.codes import (
    COMMAND_EXIT_CODES,
    STATUS_STATES,
    VERDICTS,
    ExitCode,
    HealthCode,
    StatusState,
    Verdict,
)
from stxbf.paths import DataPaths
from stxbf.process import proc_stat
from stxbf.report.health import build_health
from stxbf.report.status import build_status
from stxbf.snapshot import DAY, Counters, ProgressSnapshot
from stxbf.store import Store
from tests.fakes import END, day, make_db, paths
from tests.helpers import run_cli

# -- one registry ----------------------------------------------------------------------------------


def test_every_state_and_verdict_has_its_one_entry_in_the_registry() -> None:
    """status and health keep no table of their own: both read codes.py."""
    assert set(STATUS_STATES) == set(StatusState)
    assert set(VERDICTS) == set(Verdict)


def test_no_usage_code_collides_with_a_state_code() -> None:
    status_states = {o.exit_code for o in STATUS_STATES.values()}
    verdicts = {o.exit_code for o in VERDICTS.values()}
    assert ExitCode.MONITOR_USAGE not in status_states | verdicts
    assert ExitCode.USAGE in verdicts  # 2 is "stalled" to health: why usage needs its own code
    assert ExitCode.MONITOR_USAGE in COMMAND_EXIT_CODES["stxbf health"]


def test_state_words_format_as_their_value() -> None:
    assert f"{StatusState.RATE_LIMITED}" == "rate_limited" == str(StatusState.RATE_LIMITED)
    assert json.dumps({"v": Verdict.STALLED}) == '{"v": "stalled"}'


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["health", "--bad-flag"], ExitCode.MONITOR_USAGE),
        (["health", "--stall-seconds", "0"], ExitCode.MONITOR_USAGE),
        (["status", "--bad-flag"], ExitCode.MONITOR_USAGE),
        (["status", "--interval", "nope"], ExitCode.MONITOR_USAGE),
        (["run", "--bad-flag"], ExitCode.USAGE),
        (["logs", "--bad-flag"], ExitCode.USAGE),
    ],
    ids=["health-flag", "health-value", "status-flag", "status-value", "run", "logs"],
)
def test_usage_errors_of_monitors_never_read_as_a_state(  # type: ignore[no-untyped-def]
    capsys, monkeypatch, args: list[str], code: int
) -> None:
    got, _, err = run_cli(args, capsys, monkeypatch)
    assert got == code
    assert "--help" in err


@pytest.mark.parametrize("command", ["status", "health"])
def test_a_usage_error_with_json_still_prints_json(capsys, monkeypatch, command: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli([command, "--json", "--stall-seconds", "-5"], capsys, monkeypatch)
    assert code == ExitCode.MONITOR_USAGE == json.loads(out)["exit_code"]
    assert "stall-seconds" in json.loads(out)["error"] and "stall-seconds" in err


def test_status_json_on_a_bad_setting_is_json_with_the_usage_code(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STXBF_TARGET_DAYS", "0")
    code, out, err = run_cli(["status", "--json"], capsys, monkeypatch)
    assert code == ExitCode.MONITOR_USAGE
    data = json.loads(out)
    assert (data["state"], data["exit_code"]) == ("error", 64)
    assert "target" in err.lower()


# -- one rule for running, stalled, rate-limited ------------------------------------------------


def live_snapshot(now: float, **changes: Any) -> ProgressSnapshot:
    snap = ProgressSnapshot(
        pid=os.getpid(),
        started_at=now - 3600,
        updated_at=now - 1,
        phase="fetching",
        api_url="http://127.0.0.1:1",
        target_days=10,
        range_start=END - 10 * DAY + 1,
        range_end=END,
        counters=Counters(requests=500, pages=400),
        coverage=[1.0] * 4 + [0.0] * 6,
        last_progress_at=now - 2,
    )
    return replace(snap, **changes)


class Live(NamedTuple):
    changes: dict[str, Any]
    state: StatusState
    verdict: Verdict
    reason: str


NOW_OFFSET = 0.0
LIVE_CASES = {
    "making-progress": Live({}, StatusState.RUNNING, Verdict.HEALTHY, "making progress"),
    # the heartbeat is fresh, the API has not answered for 25 s
    "heartbeat-fresh-but-no-page": Live(
        {
            "last_progress_at": -25.0,
            "consecutive_failures": 7,
            "last_error": "timed out (ReadTimeout)",
        },
        StatusState.STALLED,
        Verdict.STALLED,
        "7 failures in a row, last: timed out (ReadTimeout)",
    ),
    "behind-a-retry-after-gate": Live(
        {"last_progress_at": -25.0, "backoff_until": 120.0},
        StatusState.STALLED,
        Verdict.STALLED,
        "a retry-after gate until",
    ),
    "waiting-out-a-stated-quota": Live(
        {
            "last_progress_at": -900.0,
            "rate_limited_until": 3600.0,
            "rate_limited_reason": "the monthly quota",
        },
        StatusState.RATE_LIMITED,
        Verdict.RATE_LIMITED,
        "rate-limited until",
    ),
    "quota-wait-over-but-still-nothing": Live(
        {"last_progress_at": -30.0, "rate_limited_until": -5.0},
        StatusState.STALLED,
        Verdict.STALLED,
        "no page has arrived",
    ),
    "hung-runner-no-heartbeat": Live(
        {"updated_at": -30.0, "last_progress_at": -30.0},
        StatusState.STALLED,
        Verdict.STALLED,
        "heartbeat",
    ),
    "older-snapshot-falls-back-to-heartbeat": Live(
        {"last_progress_at": None}, StatusState.RUNNING, Verdict.HEALTHY, "making progress"
    ),
    "no-page-since-start": Live(
        {"last_progress_at": None, "counters": Counters(requests=9)},
        StatusState.STALLED,
        Verdict.STALLED,
        "no page has arrived",
    ),
}


def hold_runner_lock(p: DataPaths) -> FileLock:
    lock = FileLock(str(p.lock))
    lock.acquire(timeout=0)
    info = {"pid": os.getpid(), "started_at": time.time() - 60, "host": os.uname().nodename}
    p.runner_record.write_text(json.dumps(info))
    return lock


@pytest.mark.parametrize("case", LIVE_CASES.values(), ids=LIVE_CASES.keys())
def test_status_and_health_judge_a_live_runner_alike(tmp_path: Path, case: Live) -> None:
    p = paths(tmp_path)
    now = time.time()
    changes = {
        key: (now + value if key.endswith(("_at", "_until")) and value is not None else value)
        for key, value in case.changes.items()
    }
    snapshot.publish(p.progress, live_snapshot(now, **changes))
    lock = hold_runner_lock(p)
    try:
        status = build_status(p, target_days=10, stall_seconds=15, now=now)
        health = build_health(p, target_days=10, stall_seconds=15, now=now)
    finally:
        lock.release()
    assert status.state == case.state
    assert status.exit_code == STATUS_STATES[case.state].exit_code
    assert health.verdict == case.verdict
    assert health.exit_code == VERDICTS[case.verdict].exit_code
    assert case.reason in (status.reason or "")
    assert any(case.reason in reason for reason in health.reasons)


def test_rate_limited_has_its_own_code_and_label(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "stxbf-home" / "stxbf.duckdb"
    db.parent.mkdir(parents=True)
    p = DataPaths.of(db.parent)
    now = time.time()
    snap = live_snapshot(now, rate_limited_until=now + 600, rate_limited_reason="monthly quota")
    snapshot.publish(p.progress, snap)
    lock = hold_runner_lock(p)
    try:
        code, out, _ = run_cli(["status"], capsys, monkeypatch)
        assert code == ExitCode.RATE_LIMITED
        assert "Status: Rate-limited until " in out
        code, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
    finally:
        lock.release()
    assert code == HealthCode.RATE_LIMITED == json.loads(out)["exit_code"]
    assert json.loads(out)["verdict"] == "rate_limited"


def test_health_takes_the_status_judgement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_health does not re-derive stalled: change the rule, and health follows it."""
    from stxbf.report import status as status_module
    from stxbf.report.status import Activity

    p = paths(tmp_path)
    now = time.time()
    snapshot.publish(p.progress, live_snapshot(now))
    monkeypatch.setattr(
        status_module,
        "judge_activity",
        lambda *a, **k: Activity(StatusState.STALLED, "judged stalled by the one rule"),
    )
    lock = hold_runner_lock(p)
    try:
        health = build_health(p, target_days=10, now=now)
    finally:
        lock.release()
    assert health.verdict == "stalled"
    assert "judged stalled by the one rule" in health.reasons[0]


# -- health for a finished or cron-fed backfill ------------------------------------------------


def record_run(db: Path, exit_code: int, *, target_days: int = 10) -> None:
    with Store.open(db) as store:
        run_id = store.start_run(pid=1, started_at=END - 60, target_days=target_days)
        store.end_run(run_id, ended_at=END, exit_code=exit_code)


class Idle(NamedTuple):
    complete: bool
    last_exit: int | None
    expect_running: bool
    verdict: str
    code: int


IDLE_CASES = {
    "complete-last-run-ok": Idle(True, 0, False, "healthy", 0),
    "complete-but-expect-running": Idle(True, 0, True, "not_running", 1),
    "complete-last-run-failed": Idle(True, 1, False, "not_running", 1),
    "complete-no-run-record": Idle(True, None, False, "not_running", 1),
    "incomplete-last-run-ok": Idle(False, 0, False, "not_running", 1),
}


@pytest.mark.parametrize("case", IDLE_CASES.values(), ids=IDLE_CASES.keys())
def test_health_with_no_runner(tmp_path: Path, case: Idle) -> None:
    p = paths(tmp_path)
    windows = [(day(0)[0], END, "verified")] if case.complete else [(day(5)[0], END, "verified")]
    make_db(p.db, windows)
    if case.last_exit is not None:
        record_run(p.db, case.last_exit)
    report = build_health(p, target_days=10, expect_running=case.expect_running)
    assert (report.verdict, report.exit_code) == (case.verdict, case.code)
    if case.verdict == "healthy":
        assert report.reasons == ["complete, no runner needed"]


def test_health_cli_expect_running(isolated_env: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = isolated_env / "stxbf.duckdb"
    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], END, "verified")])
    record_run(db, 0)
    monkeypatch.setenv("STXBF_TARGET_DAYS", "10")  # the database's 10 days
    code, out, _ = run_cli(["health"], capsys, monkeypatch)
    assert code == 0 and "complete, no runner needed" in out
    code, _, _ = run_cli(["health", "--expect-running"], capsys, monkeypatch)
    assert code == 1


def test_missing_database_is_not_running_not_a_database_problem(  # type: ignore[no-untyped-def]
    isolated_env: Path, capsys, monkeypatch
) -> None:
    """Before the first run (a monitor set up first, cron not fired yet): nothing is broken."""
    code, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert (code, data["verdict"]) == (1, "not_running")
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["database"]["status"] == "skip"
    code, _, _ = run_cli(["status"], capsys, monkeypatch)
    assert code == ExitCode.NOT_STARTED


# -- /proc/<pid>/stat, parsed once -------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
def test_proc_stat_reads_our_own_process() -> None:
    stat = proc_stat(os.getpid())
    assert stat is not None
    assert stat.ppid == os.getppid()
    assert stat.state == "R"  # a process reading its own stat is running at that moment
    assert proc_stat(2**22 + 12345) is None


# -- idle status/health read a saved summary, not every row -----------------------------------


def test_a_saved_summary_is_used_until_the_data_changes(tmp_path: Path) -> None:
    from stxbf.store import WindowRecord
    from tests.fakes import tx_row

    db = tmp_path / "s.duckdb"
    make_db(db, [(day(0)[0], day(4)[1], "verified")])
    with Store.open(db) as store:
        assert store.saved_summary() is None  # an older file: nothing saved
        saved = store.save_summary()
        assert store.saved_summary() == replace(saved, db_bytes=store.file_bytes())
        start = day(5)[0]
        rows = [tx_row("late", start + 5, "SPNEW")]
        store.commit_window(WindowRecord(start, END, 1, 1, "verified", 1), rows)
        assert store.saved_summary() is None  # stale: a window was committed since
        assert store.save_summary().wallets == saved.wallets + 1


def test_idle_status_does_not_count_senders_when_a_summary_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = paths(tmp_path)
    make_db(p.db, [(day(0)[0], END, "verified")])
    with Store.open(p.db) as store:
        store.save_summary()

    def no_counting(self: Store, **_: Any) -> Any:
        raise AssertionError("summary() recomputed over every row")

    monkeypatch.setattr(Store, "summary", no_counting)
    report = build_status(p, target_days=10, now=END + 100)
    assert (report.state, report.transactions, report.wallets) == ("complete", 2, 2)


def test_the_summary_file_spares_later_calls_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stxbf.report.database import DatabaseCache

    p = paths(tmp_path)
    make_db(p.db, [(day(0)[0], END, "verified")])
    cache_file = p.summary
    first = build_status(p, target_days=10, cache=DatabaseCache(path=cache_file))
    assert cache_file.exists()
    real_open = Store.open
    opened: list[str] = []

    def counting_open(path: Any, **kwargs: Any) -> Store:
        opened.append(str(path))
        return real_open(path, **kwargs)

    monkeypatch.setattr(Store, "open", counting_open)
    again = build_status(p, target_days=10, cache=DatabaseCache(path=cache_file))
    assert opened == []  # a new process (a new cache object) read the file only
    assert (again.state, again.coverage, again.wallets) == (first.state, first.coverage, 2)
    with real_open(p.db) as store:  # any write changes the key: read again
        store.set_meta("note", "changed")
        store.checkpoint()
    build_status(p, target_days=10, cache=DatabaseCache(path=cache_file))
    assert opened == [str(p.db)]


def test_a_stopped_run_is_terminal_and_named_in_the_reason(tmp_path: Path) -> None:
    """`stopped` (budget or iterations ran out) is a terminal phase like the others."""
    p = paths(tmp_path)
    make_db(p.db, [(day(5)[0], END, "verified")])
    now = time.time()
    snap = live_snapshot(now, phase="stopped", exit_code=3, pid=os.getpid())
    snapshot.publish(p.progress, snap)
    report = build_health(p, target_days=10, now=now)
    assert (report.verdict, report.runner_alive) == ("not_running", False)
    assert "last run stopped with exit code 3" in report.reasons[0]


# -- the target the operator set, not the last run's -------------------------------------------


class Target(NamedTuple):
    flag: int | None  # --target-days
    env: int | None  # STXBF_TARGET_DAYS
    config: str | None  # "explicit": the file STXBF_CONFIG names; "default": ~/.config/stxbf
    target: int  # what status and health judge against
    complete: bool


TARGETS = {
    "default-365": Target(None, None, None, 365, False),
    "flag": Target(10, None, None, 10, False),
    "env": Target(None, 10, None, 10, False),
    "config-file-named-by-STXBF_CONFIG": Target(None, None, "explicit", 10, False),
    "default-config-file": Target(None, None, "default", 10, False),
    "flag-beats-env": Target(3, 10, None, 3, True),
    "env-beats-config": Target(None, 3, "default", 3, True),
}


@pytest.fixture(scope="module")
def three_day_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database a `run --target-days 3` completed, built once for the module's 14 cases."""
    db = tmp_path_factory.mktemp("three-day-run") / "stxbf.duckdb"
    make_db(db, [(day(7)[0], END, "verified")], target_days=3)
    record_run(db, 0, target_days=3)
    assert [path.name for path in db.parent.iterdir()] == [db.name]  # one closed file, no WAL
    return db


def three_day_run(
    home: Path, monkeypatch: pytest.MonkeyPatch, case: Target, database: Path
) -> list[str]:
    """A copy of `database` (three_day_database) in `home`, and the target set as `case` says;
    returns the flags to pass."""
    import shutil

    db = home / "stxbf.duckdb"
    db.parent.mkdir(parents=True)
    shutil.copyfile(database, db)
    if case.env is not None:
        monkeypatch.setenv("STXBF_TARGET_DAYS", str(case.env))
    if case.config is not None:
        config = home.parent / "home" / ".config" / "stxbf" / "config.toml"
        if case.config == "explicit":
            config = home.parent / "ops.toml"
            monkeypatch.setenv("STXBF_CONFIG", str(config))
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("target_days = 10\n")
    return [] if case.flag is None else ["--target-days", str(case.flag)]


def last_run(case: Target) -> str:
    """How the views name the last run's own target beside the one judged."""
    return "as the last run" if case.target == 3 else "last run: 3 days"


@pytest.mark.parametrize("case", TARGETS.values(), ids=TARGETS.keys())
def test_status_judges_the_configured_target(  # type: ignore[no-untyped-def]
    isolated_env: Path, capsys, monkeypatch, case: Target, three_day_database: Path
) -> None:
    flags = three_day_run(isolated_env, monkeypatch, case, three_day_database)
    code, out, _ = run_cli(["status", "--json", *flags], capsys, monkeypatch)
    data = json.loads(out)
    assert (data["target_days"], data["days_verified"]) == (case.target, min(3, case.target))
    assert (data["run_target_days"], data["source"]) == (3, "database")
    wanted = StatusState.COMPLETE if case.complete else StatusState.INCOMPLETE
    assert (data["state"], code) == (wanted, STATUS_STATES[wanted].exit_code)
    code, out, _ = run_cli(["status", *flags], capsys, monkeypatch)
    assert out.splitlines()[0] == f"Progress: 3/{case.target} days ({data['percent']:.1f}%)"
    assert re.search(rf"Target +{case.target} days \({last_run(case)}\)", out), out


@pytest.mark.parametrize("case", TARGETS.values(), ids=TARGETS.keys())
def test_health_judges_the_configured_target(  # type: ignore[no-untyped-def]
    isolated_env: Path, capsys, monkeypatch, case: Target, three_day_database: Path
) -> None:
    """A year left half done, then topped up by `run --target-days 7`, is not healthy forever."""
    flags = three_day_run(isolated_env, monkeypatch, case, three_day_database)
    code, out, _ = run_cli(["health", "--json", *flags], capsys, monkeypatch)
    data = json.loads(out)
    assert (data["target_days"], data["run_target_days"]) == (case.target, 3)
    if case.complete:
        assert (data["verdict"], code) == ("healthy", HealthCode.HEALTHY)
        assert data["reasons"] == ["complete, no runner needed"]
    else:
        assert (data["verdict"], code) == ("not_running", HealthCode.NOT_RUNNING)
        assert f"backfill incomplete, 3/{case.target} days" in data["reasons"][0]
    code, out, _ = run_cli(["health", *flags], capsys, monkeypatch)
    assert f"Target: {case.target} days ({last_run(case)})" in out


@pytest.mark.parametrize(
    ("target", "run_target", "running", "text"),
    [
        (365, 7, False, "365 days (last run: 7 days)"),
        (20, 20, True, "20 days (as this run)"),
        (10, 10, False, "10 days (as the last run)"),
        (1, None, False, "1 day"),
    ],
)
def test_the_target_line_names_the_runs_own(
    target: int, run_target: int | None, running: bool, text: str
) -> None:
    from stxbf.cli.render import target_text

    assert target_text(target, run_target, running=running) == text


def test_a_live_run_is_judged_against_the_configured_target_and_shows_its_own(
    tmp_path: Path,
) -> None:
    p = paths(tmp_path)
    now = time.time()
    snapshot.publish(p.progress, live_snapshot(now))  # a run targeting 10 days, 4 done
    lock = hold_runner_lock(p)
    try:
        status = build_status(p, target_days=20, now=now)
        health = build_health(p, target_days=20, now=now)
    finally:
        lock.release()
    assert (status.state, status.target_days, status.run_target_days) == ("running", 20, 10)
    assert (status.days_verified, len(status.coverage)) == (4, 20)
    assert any("running backfill targeted 10 days" in note for note in status.notes)
    assert (health.verdict, health.target_days, health.run_target_days) == ("healthy", 20, 10)


# -- an outage is degraded, long before it is a stall ------------------------------------------


class Outage(NamedTuple):
    changes: dict[str, Any]  # times relative to now
    state: StatusState
    reason: str


OUTAGES = {
    "twenty-failures-in-a-row": Outage(
        {
            "consecutive_failures": 111,
            "failing_since": -41.0,
            "last_progress_at": -31.0,
            "last_error": "connection refused",
            "phase": "backing_off",
            "backoff_until": 3.0,
        },
        StatusState.DEGRADED,
        "backing off: 111 failures in a row for 41 s, last page 31 s ago, "
        "last error: connection refused",
    ),
    "few-requests-failing-for-15-s": Outage(
        {
            "consecutive_failures": 4,
            "failing_since": -16.0,
            "last_progress_at": -17.0,
            "last_error": "timed out (ReadTimeout)",
        },
        StatusState.DEGRADED,
        "requests failing: 4 failures in a row for 16 s, last page 17 s ago",
    ),
    "one-failed-wave-mended-at-once": Outage(
        {"consecutive_failures": 16, "failing_since": -1.0, "last_error": "HTTP 503"},
        StatusState.RUNNING,
        "runner alive and making progress",
    ),
    "the-outage-outlasts-the-stall-limit": Outage(
        {"consecutive_failures": 900, "failing_since": -700.0, "last_progress_at": -700.0},
        StatusState.STALLED,
        "no page has arrived and no window was committed for 700 s",
    ),
}


@pytest.mark.parametrize("case", OUTAGES.values(), ids=OUTAGES.keys())
def test_an_outage_is_degraded_before_it_is_stalled(tmp_path: Path, case: Outage) -> None:
    p = paths(tmp_path)
    now = time.time()
    changes = {
        key: (now + value if key.endswith(("_at", "_until", "_since")) else value)
        for key, value in case.changes.items()
    }
    snap = live_snapshot(now, rate_rpm=291.0, eta_seconds=280.0, **changes)
    snapshot.publish(p.progress, snap)
    lock = hold_runner_lock(p)
    try:
        status = build_status(p, target_days=10, stall_seconds=600, now=now)
        health = build_health(p, target_days=10, stall_seconds=600, now=now)
    finally:
        lock.release()
    verdict = {
        StatusState.DEGRADED: Verdict.DEGRADED,
        StatusState.RUNNING: Verdict.HEALTHY,
        StatusState.STALLED: Verdict.STALLED,
    }[case.state]
    assert (status.state, status.exit_code) == (case.state, STATUS_STATES[case.state].exit_code)
    assert (health.verdict, health.exit_code) == (verdict, VERDICTS[verdict].exit_code)
    assert case.reason in (status.reason or "")
    assert case.reason in health.reasons[0]
    if case.state is StatusState.RUNNING:
        assert (status.rate_rpm, status.eta_seconds) == (291.0, 280.0)
    else:  # nothing arrives: no rate, no ETA, in the JSON as on screen
        assert (status.rate_rpm, status.eta_seconds) == (None, None)


def test_degraded_has_its_own_code_in_status_and_health(
    tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "stxbf-home"
    home.mkdir()
    p = paths(home)
    now = time.time()
    snap = live_snapshot(
        now,
        consecutive_failures=40,
        failing_since=now - 20,
        last_error="connection refused",
        rate_rpm=291.0,
        eta_seconds=280.0,
    )
    snapshot.publish(p.progress, snap)
    lock = hold_runner_lock(p)
    try:
        code, out, _ = run_cli(["status"], capsys, monkeypatch)
        assert code == ExitCode.DEGRADED == 69
        assert "Status: Degraded" in out and "— (degraded)" in out
        code, out, _ = run_cli(["status", "--json"], capsys, monkeypatch)
        data = json.loads(out)
        assert (code, data["state"], data["rate_rpm"], data["eta_seconds"]) == (
            69, "degraded", None, None
        )  # fmt: skip
        code, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
        data = json.loads(out)
        assert (code, data["verdict"]) == (HealthCode.DEGRADED, "degraded")
        assert "40 failures in a row" in data["reasons"][0]
        code, out, _ = run_cli(["health"], capsys, monkeypatch)
        assert code == 69 and "Health: DEGRADED" in out
    finally:
        lock.release()
