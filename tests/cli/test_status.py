"""`stxbf status`, `health` and `logs` through the real entry point: output, JSON and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fakes import END, day, make_db, publish_running
from tests.helpers import run_cli


@pytest.fixture
def db(isolated_env: Path) -> Path:
    return isolated_env / "stxbf.duckdb"


def test_status_not_started(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(["status"], capsys, monkeypatch)
    assert code == 7
    assert out.splitlines()[:2] == ["Progress: 0/365 days (0.0%)", "Status: Not started"]


def test_status_complete_exits_zero(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STXBF_TARGET_DAYS", "10")  # the 10 days of the fake database
    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], END, "verified")])
    code, out, _ = run_cli(["status"], capsys, monkeypatch)
    assert code == 0
    assert out.splitlines()[:2] == ["Progress: 10/10 days (100.0%)", "Status: Complete"]
    assert "Transactions" in out and "Wallets (senders)" in out and "█" * 10 in out


def test_status_gap_is_incomplete_and_shown(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STXBF_TARGET_DAYS", "10")  # the 10 days of the fake database
    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], day(3)[1], "verified"), (day(6)[0], END, "verified")])
    code, out, _ = run_cli(["status", "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == 3 == data["exit_code"]
    assert (data["state"], data["coverage"], data["days_verified"]) == (
        "incomplete",
        "VVVV..VVVV",
        8,
    )
    assert data["schema"] == 1


def test_health_not_running(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], END, "verified")])
    code, out, _ = run_cli(
        ["health", "--json", "--socket-name", "stxbf_no_such_server"], capsys, monkeypatch
    )
    data = json.loads(out)
    assert code == 1
    assert data["verdict"] == "not_running"
    checks = {check["name"]: check["status"] for check in data["checks"]}
    assert checks["database"] == "ok" and checks["process"] == "fail"
    # no session on that socket is a warning; "skip" only where tmux is not installed at all
    assert checks["tmux"] == ("warn" if shutil.which("tmux") else "skip")


@pytest.mark.parametrize(("age", "code", "verdict"), [(1, 0, "healthy"), (900, 2, "stalled")])
def test_health_while_running(  # type: ignore[no-untyped-def]
    db: Path, capsys, monkeypatch, age: float, code: int, verdict: str
) -> None:
    lock = publish_running(db, age=age)
    try:
        got, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
    finally:
        lock.release()
    data = json.loads(out)
    assert (got, data["verdict"], data["runner_alive"]) == (code, verdict, True)


def test_status_while_running_never_opens_the_database(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STXBF_TARGET_DAYS", "10")  # the 10 days of the fake database
    lock = publish_running(db, age=1)
    db.write_bytes(b"garbage: opening this would fail")
    try:
        code, out, _ = run_cli(["status"], capsys, monkeypatch)
    finally:
        lock.release()
    assert code == 5
    assert out.splitlines()[:2] == ["Progress: 4/10 days (40.0%)", "Status: Running"]


def test_health_database_problem(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a duckdb file" * 100)
    code, out, _ = run_cli(["health"], capsys, monkeypatch)
    assert code == 3
    assert "DATABASE PROBLEM" in out


@pytest.mark.parametrize(
    "setup",
    ["db-is-a-directory", "bad-setting"],
)
def test_health_configuration_error(db: Path, capsys, monkeypatch, setup: str) -> None:  # type: ignore[no-untyped-def]
    if setup == "db-is-a-directory":
        db.mkdir(parents=True)
    else:
        monkeypatch.setenv("STXBF_TARGET_DAYS", "0")
    code, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
    assert code == 4
    assert json.loads(out)["verdict"] == "config_error"


def write_log(home: Path) -> Path:
    path = home / "logs" / "stxbf.log"
    path.parent.mkdir(parents=True)
    path.write_text(
        "2026-01-01T00:00:00+0000 INFO    stxbf.runner: started\n"
        "2026-01-01T00:00:01+0000 WARNING stxbf.pacer: 429: backing off\n"
        "2026-01-01T00:00:02+0000 INFO    stxbf.runner: window committed\n"
    )
    return path


def test_logs_tail_and_level(isolated_env: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_log(isolated_env)
    code, out, _ = run_cli(["logs", "-n", "2"], capsys, monkeypatch)
    assert code == 0
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == [
        "429: backing off",
        "window committed",
    ]
    code, out, _ = run_cli(["logs", "--level", "warning"], capsys, monkeypatch)
    assert out.splitlines() == ["2026-01-01T00:00:01+0000 WARNING stxbf.pacer: 429: backing off"]


def test_logs_missing_and_bad_level(isolated_env: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(["logs"], capsys, monkeypatch)
    assert code == 1 and "no log yet" in err
    code, _, err = run_cli(["logs", "--level", "LOUD"], capsys, monkeypatch)
    assert code == 2 and "invalid --level: must be one of debug, info, warning, error" in err


@pytest.mark.parametrize("name", ["a:b", "a.b"])
def test_tmux_rejects_session_names_in_one_line(capsys, monkeypatch, name: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(
        ["tmux", "start", "--detach", "--session-name", name], capsys, monkeypatch
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "invalid session name" in err


def test_tmux_missing_says_how_to_install(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    real = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda tool, *a, **k: None if tool == "tmux" else real(tool)
    )
    code, _, err = run_cli(["tmux", "status"], capsys, monkeypatch)
    assert code == 1
    assert "tmux is not installed. Install with:" in err
    assert len(err.strip().splitlines()) == 1
