"""The status model: from the database when nothing runs, from the snapshot while a runner does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from filelock import FileLock

from stxbf import snapshot as progress_file
from stxbf.codes import STATUS_STATES, StatusState
from stxbf.paths import DataPaths
from stxbf.process import detect_runner, lock_holder, pid_alive
from stxbf.report.days import day_states
from stxbf.report.status import build_status
from stxbf.snapshot import DAY, ProgressSnapshot
from stxbf.store import Store
from tests.fakes import END, NOW, day, make_db, paths


class Case(NamedTuple):
    windows: list[tuple[int, int, str]]
    chain_start: int | None
    state: str
    coverage: str


CASES = {
    "complete": Case([(day(0)[0], END, "verified")], None, "complete", "V" * 10),
    "gap-in-the-middle": Case(
        [(day(0)[0], day(3)[1], "verified"), (day(6)[0], END, "verified")],
        None,
        "incomplete",
        "VVVV..VVVV",
    ),
    "partial-day": Case(
        [(day(0)[0] + DAY // 2, END, "verified")], None, "incomplete", "pVVVVVVVVV"
    ),
    "incomplete-window": Case(
        [(day(0)[0], day(7)[1], "verified"), (day(8)[0], END, "incomplete")],
        None,
        "incomplete",
        "VVVVVVVVpp",
    ),
    "chain-starts-inside": Case(
        [(day(0)[0], day(2)[1], "verified"), (day(3)[0], END, "verified")],
        day(3)[0],
        "reached_chain_start",
        "---VVVVVVV",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_status_from_database(tmp_path: Path, case: Case) -> None:
    p = paths(tmp_path)
    make_db(p.db, case.windows, chain_start=case.chain_start)
    report = build_status(p, target_days=10, now=NOW)
    assert report.source == "database"
    assert (report.target_days, report.run_target_days) == (10, 10)
    assert (report.state, report.coverage) == (case.state, case.coverage)
    assert report.exit_code == STATUS_STATES[StatusState(case.state)].exit_code
    assert report.days_verified == case.coverage.count("V") + case.coverage.count("-")
    assert report.transactions == 2 * len(case.windows)
    assert report.wallets == 2


def test_status_with_no_database_is_not_started(tmp_path: Path) -> None:
    report = build_status(paths(tmp_path), target_days=365, now=NOW)
    assert (report.state, report.label, report.exit_code) == ("not_started", "Not started", 7)
    assert report.coverage == "." * 365


def test_explicit_target_days_measures_against_the_same_range_end(tmp_path: Path) -> None:
    p = paths(tmp_path)
    make_db(p.db, [(day(5)[0], END, "verified")])
    report = build_status(p, target_days=5, now=NOW)
    assert (report.state, report.coverage, report.percent) == ("complete", "VVVVV", 100.0)


def snapshot(pid: int, *, updated_at: float, phase: str = "fetching") -> ProgressSnapshot:
    return ProgressSnapshot(
        pid=pid,
        started_at=updated_at - 60,
        updated_at=updated_at,
        phase=phase,
        api_url="http://127.0.0.1:1",
        target_days=10,
        range_start=END - 10 * DAY + 1,
        range_end=END,
        coverage=[0.0] * 6 + [0.5] + [1.0] * 3,
        transactions_stored=1234,
        wallets=56,
        rate_rpm=400.0,
        limit_rpm=500.0,
        eta_seconds=90.0,
    )


def hold_lock_and_pid_file(p: DataPaths) -> FileLock:
    lock = FileLock(str(p.lock))
    lock.acquire(timeout=0)
    info = {"pid": os.getpid(), "started_at": time.time() - 5, "host": os.uname().nodename}
    p.runner_record.write_text(json.dumps(info))
    return lock


def test_running_reads_the_snapshot_never_the_database(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.db.write_bytes(b"not a database: opening it would fail")
    lock = hold_lock_and_pid_file(p)
    try:
        progress_file.publish(p.progress, snapshot(os.getpid(), updated_at=time.time()))
        report = build_status(p, target_days=10)
    finally:
        lock.release()
    assert (report.state, report.source) == ("running", "progress")
    assert report.runner.alive and report.runner.pid == os.getpid()
    assert report.coverage == "......pVVV"
    assert (report.transactions, report.wallets, report.rate_rpm) == (1234, 56, 400.0)


def test_stale_heartbeat_is_stalled(tmp_path: Path) -> None:
    p = paths(tmp_path)
    lock = hold_lock_and_pid_file(p)
    try:
        progress_file.publish(p.progress, snapshot(os.getpid(), updated_at=time.time() - 900))
        report = build_status(p, target_days=10, stall_seconds=600)
    finally:
        lock.release()
    assert (report.state, report.exit_code) == ("stalled", 6)
    assert any("heartbeat" in note for note in report.notes)


def test_crashed_runner_reads_as_incomplete(tmp_path: Path) -> None:
    p = paths(tmp_path)
    make_db(p.db, [(day(5)[0], END, "verified")])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout  # fmt: skip
    progress_file.publish(p.progress, snapshot(int(dead), updated_at=time.time() - 5))
    report = build_status(p, target_days=10)
    assert (report.state, report.source) == ("incomplete", "database")
    assert not report.runner.alive
    assert any("crashed" in note for note in report.notes)


PROC_LOCKS_READABLE = os.access("/proc/locks", os.R_OK)


def test_lock_holder_reads_proc_locks_without_taking_the_lock(tmp_path: Path) -> None:
    lock_path = tmp_path / "x.lock"
    assert lock_holder(lock_path) is False
    lock = FileLock(str(lock_path))
    with lock:
        holder = lock_holder(lock_path)
        assert holder == (os.getpid() if PROC_LOCKS_READABLE else None)  # None: cannot tell
    assert lock_holder(lock_path) is (False if PROC_LOCKS_READABLE else None)


def test_recycled_pid_in_a_stale_pid_file_is_not_a_runner(tmp_path: Path) -> None:
    p = DataPaths.of(tmp_path, tmp_path / "db")
    # our own (live) pid, but a pid file claiming the runner started long before we did
    p.runner_record.write_text(json.dumps({"pid": os.getpid(), "started_at": 1_000.0, "host": ""}))
    runner = detect_runner(p, snap=None, now=time.time())
    assert not runner.alive
    assert pid_alive(os.getpid())


def test_day_states_marks_days_before_the_chain(tmp_path: Path) -> None:
    codes = day_states(
        [0.0, 0.0, 1.0, 0.3],
        partial_hint=None,
        range_start=END - 4 * DAY + 1,
        range_end=END,
        chain_start=END - 2 * DAY + 1,
    )
    assert codes == "--Vp"


def test_json_fields_are_stable(tmp_path: Path) -> None:
    report = build_status(paths(tmp_path), target_days=3, now=NOW)
    assert set(report.to_dict()) == {
        "schema", "state", "label", "exit_code", "source", "checked_at", "db_path", "target_days",
        "days_verified", "days_partial", "days_missing", "days_before_chain", "percent",
        "range_start", "range_end", "chain_start", "coverage", "transactions", "wallets",
        "earliest_tx_time", "latest_tx_time", "db_bytes", "runner", "rate_rpm", "limit_rpm",
        "eta_seconds", "backoff_until", "last_error", "last_error_at", "counters", "last_run",
        "notes", "last_progress_at", "consecutive_failures", "rate_limited_until",
        "rate_limited_reason", "restarts", "reason", "hint", "oldest_check_at", "sources",
        "run_source", "run_target_days", "quota_remaining", "quota_limit", "quota_at",
    }  # fmt: skip
    assert set(report.to_dict()["runner"]) == {
        "alive", "pid", "found_by", "started_at", "host", "phase", "heartbeat_age", "exit_code",
    }  # fmt: skip


def test_monitor_cache_opens_the_database_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stxbf.report.database import DatabaseCache

    p = paths(tmp_path)
    make_db(p.db, [(day(0)[0], END, "verified")])
    cache = DatabaseCache()
    first = build_status(p, target_days=10, now=NOW, cache=cache)
    opened: list[Path] = []
    real_open = Store.open

    def counting_open(path: Any, **kwargs: Any) -> Store:
        opened.append(Path(path))
        return real_open(path, **kwargs)

    monkeypatch.setattr(Store, "open", counting_open)
    again = build_status(p, target_days=10, now=NOW + 10, cache=cache)
    assert opened == []
    assert (again.state, again.coverage, again.transactions) == (
        first.state,
        first.coverage,
        first.transactions,
    )
    with real_open(p.db) as store:  # a run writes: the next refresh reads again
        store.set_meta("note", "changed")
        store.checkpoint()
    build_status(p, target_days=10, now=NOW + 20, cache=cache)
    assert opened == [p.db]
