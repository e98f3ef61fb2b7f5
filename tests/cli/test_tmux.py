"""End to end: `stxbf tmux start` runs the real `stxbf run` against the simulator in a private tmux.

While the run writes, `status`, `health` and `logs` are polled as separate processes: none may hit a
database lock error, and the figures must agree with the database afterwards. The simulator only
accepts the test's API key, so a finished run also proves the key reached the runner, while it
never shows in any process's argv, any pane or tmux's environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stxbf.session import tmux as session_tmux
from stxbf.simulator import SimConfig, SimServer, run_in_thread
from stxbf.store import Store
from tests.fakes import publish_running
from tests.helpers import retry_until, stxbf

pytestmark = pytest.mark.tmux

KEY = "sim-key-4b1e9a77-private"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    config = SimConfig(
        seed=11, days=6, tx_per_day=1500, latency_ms=120, require_key=True, api_keys=(KEY,)
    )
    with run_in_thread(config) as server:
        yield server


@pytest.fixture
def env(server: Any, isolated_env: Path) -> dict[str, str]:
    return {
        **os.environ,
        "STXBF_TMUX_SOCKET": str(server.socket_name),
        "STXBF_API_KEY": KEY,
        "STXBF_LOG_LEVEL": "DEBUG",
    }


def runner_pane(server: Any) -> session_tmux.PaneInfo:
    info = session_tmux.describe_session(server, "stx-backfill")
    assert info is not None
    pane = info.pane("runner")
    assert pane is not None
    return pane


def assert_no_key_anywhere(server: Any) -> None:
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert KEY not in ps
    info = session_tmux.describe_session(server, "stx-backfill")
    assert info is not None
    for pane in info.panes:
        assert KEY not in session_tmux.capture(server, pane.pane_id, lines=2000)
    assert KEY not in "\n".join(server.cmd("show-environment", "-g").stdout)


def test_real_run_in_tmux_while_status_health_logs_poll(
    server: Any, sim: SimServer, env: dict[str, str], isolated_env: Path
) -> None:
    # The readers judge the configured target: set as `start`'s flag. The monitor pane is given
    # `start`'s own (`--target-days 4`), which its "4/4 days" below shows.
    readers = {**env, "STXBF_TARGET_DAYS": "4"}
    started = stxbf(
        # long enough to be polled while it runs: `start` returns once the first pages came
        "tmux", "start", "--api-url", sim.url, "--target-days", "4", "--concurrency", "1",
        "--inhibit", "none", "--interval", "1", env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "Attach with" in started.stdout  # no terminal: started detached
    assert not list((isolated_env / "run").glob("api_key.*")), "the key file is consumed"

    seen_states: set[str] = set()
    polls = 0

    def poll_status_health_logs() -> bool:
        """One round of the three readers while the run writes; True once the run has ended."""
        nonlocal polls
        status = stxbf("status", "--json", env=readers)
        health = stxbf("health", "--json", env=readers)
        logs = stxbf("logs", "-n", "5", env=env)
        polls += 1
        for result in (status, health, logs):
            text = (result.stderr + result.stdout).lower()
            for error in ("could not set lock", "conflicting lock", "held by another process"):
                assert error not in text, result.stderr
            assert "Traceback" not in result.stderr
        report = json.loads(status.stdout)
        seen_states.add(report["state"])
        assert status.returncode == report["exit_code"]
        verdict = json.loads(health.stdout)
        # The run may end between two polls: healthy while the runner is alive or once the
        # backfill is complete (report/health.py, "complete, no runner needed"), not_running
        # between.
        done = verdict["status"] in ("complete", "reached_chain_start")
        expected = "healthy" if verdict["runner_alive"] or done else "not_running"
        assert verdict["verdict"] == expected, verdict
        if polls == 2:
            assert_no_key_anywhere(server)
        return runner_pane(server).dead

    # the bound only catches a run that never ends; a slow machine just polls more often
    retry_until(poll_status_health_logs, timeout=240, interval=0, what="the tmux run to end")
    pane = runner_pane(server)
    assert pane.dead_status == 0
    assert "running" in seen_states and polls >= 2
    text = session_tmux.capture(server, pane.pane_id, lines=200)
    assert "[stxbf run exited with code 0" in text  # the final summary stays readable

    final = stxbf("status", "--json", env=readers)
    report = json.loads(final.stdout)
    assert (final.returncode, report["state"], report["source"]) == (0, "complete", "database")
    db = isolated_env / "stxbf.duckdb"
    with Store.open(db, read_only=True) as store:
        summary = store.summary()
    assert report["transactions"] == summary.transactions > 0
    assert report["wallets"] == summary.wallets
    truth = sim.truth(report["range_start"], report["range_end"])
    assert summary.transactions >= truth["count"]

    monitor = session_tmux.describe_session(server, "stx-backfill").pane("monitor")  # type: ignore[union-attr]
    assert monitor is not None
    screen = retry_until(
        lambda: (
            (t := session_tmux.capture(server, monitor.pane_id)) and "Status: Complete" in t and t
        )
    )
    assert "stxbf monitor" in screen and "4/4 days (100.0%)" in screen

    described = stxbf("tmux", "status", env=env)
    assert described.returncode == 0
    assert "runner" in described.stdout and "monitor" in described.stdout
    assert "Sleep inhibitor: none" in described.stdout
    stopped = stxbf("tmux", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "exited with code 0" in stopped.stdout
    assert session_tmux.find_session(server, "stx-backfill") is None


def test_stop_checkpoints_a_real_run(server: Any, env: dict[str, str], isolated_env: Path) -> None:
    config = SimConfig(seed=5, days=40, tx_per_day=3000, latency_ms=150, require_key=True,
                       api_keys=(KEY,))  # fmt: skip
    with run_in_thread(config) as sim:
        started = stxbf(
            "tmux", "start", "--detach", "--api-url", sim.url, "--target-days", "30",
            "--concurrency", "4", "--inhibit", "none", env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr

        def some_days_verified() -> bool:
            report = json.loads(stxbf("status", "--json", env=env).stdout)
            return report["state"] == "running" and report["days_verified"] >= 1

        retry_until(some_days_verified, interval=0.5)
        attach = stxbf("tmux", "attach", env=env)
        assert attach.returncode == 1 and "needs a terminal" in attach.stderr
        again = stxbf("tmux", "start", "--detach", env=env)
        assert again.returncode == 1
        assert "Session 'stx-backfill' already exists. Use 'attach' to reconnect." in again.stderr
        stopped = stxbf("tmux", "stop", "--timeout", "30", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopping the runner" in stopped.stdout
    assert re.search(r"Runner \(pid \d+\) exited with code 130", stopped.stdout)
    assert session_tmux.find_session(server, "stx-backfill") is None
    with Store.open(isolated_env / "stxbf.duckdb", read_only=True) as store:
        last = store.last_run()
        verified = store.windows(state="verified")
    assert last is not None and last["exit_code"] == 130
    assert verified, "completed windows were committed before the runner exited"
    after = stxbf("status", "--json", env=env)
    assert json.loads(after.stdout)["state"] == "incomplete" and after.returncode == 3
    missing = stxbf("tmux", "attach", env=env)
    assert missing.returncode == 1
    assert "Session 'stx-backfill' does not exist. Use 'start' to create it." in missing.stderr


def test_start_reports_a_runner_that_dies_before_its_first_progress(
    server: Any, env: dict[str, str], isolated_env: Path
) -> None:
    """Nothing listens on port 1: `start` used to say "Started" and exit 0."""
    del env["STXBF_TMUX_SOCKET"]  # given as a flag once; the session record remembers it
    socket = str(server.socket_name)
    args = ("--socket-name", socket, "--api-url", "http://127.0.0.1:1", "--inhibit", "none")
    first = stxbf("tmux", "start", "-d", *args, env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "exited with code 1 before its first progress" in first.stderr
    assert "cannot reach the API" in first.stderr  # the runner's own last lines
    assert f"stxbf tmux attach --socket-name {socket}" in first.stderr

    bare = stxbf("tmux", env=env)  # no terminal, no flags: found through the session record
    assert bare.returncode == 8, bare.stdout + bare.stderr
    assert "runner exited with code 1" in bare.stdout
    assert f"--socket-name {socket}" in bare.stdout
    described = stxbf("tmux", "status", "--json", env=env)
    assert described.returncode == 8
    report = json.loads(described.stdout)
    assert (report["state"], report["runner_exit"], report["socket"]) == (
        "runner_exited", 1, socket,
    )  # fmt: skip
    stopped = stxbf("tmux", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert session_tmux.find_session(server, "stx-backfill") is None
    kept = json.loads((isolated_env / "stxbf.duckdb.tmux.json").read_text())  # for a restart
    assert (kept["socket_name"], kept["options"]["api_url"]) == (socket, "http://127.0.0.1:1")


def test_a_killed_runner_is_reported_with_its_code_not_as_running(
    server: Any, sim: SimServer, env: dict[str, str], isolated_env: Path
) -> None:
    del env["STXBF_TMUX_SOCKET"]
    socket = str(server.socket_name)
    started = stxbf(
        "tmux", "start", "-d", "--socket-name", socket, "--session-name", "bf two",
        "--api-url", sim.url, "--target-days", "6", "--concurrency", "1", "--inhibit", "none",
        env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "The runner is backfilling." in started.stdout
    assert f"stxbf tmux attach --socket-name {socket} --session-name 'bf two'" in started.stdout
    running = stxbf("tmux", "status", "--json", env=env)
    assert running.returncode == 0, running.stderr
    assert json.loads(running.stdout)["state"] == "running"

    record = json.loads((isolated_env / "stxbf.duckdb.runner.json").read_text())
    assert record["tmux"].split(",")[0].endswith(socket)  # the runner knows its tmux server
    assert record["tmux_pane"].startswith("%")
    os.kill(record["pid"], 9)
    retry_until(lambda: runner_pane_named(server, "bf two").dead)
    bare = stxbf("tmux", env=env)
    assert bare.returncode == 8, bare.stdout + bare.stderr
    assert "runner exited with code 137" in bare.stdout
    described = stxbf("tmux", "status", env=env)
    assert described.returncode == 8
    assert "State: runner exited with code 137" in described.stdout
    assert stxbf("tmux", "stop", env=env).returncode == 0


def runner_pane_named(server: Any, name: str) -> session_tmux.PaneInfo:
    info = session_tmux.describe_session(server, name)
    assert info is not None
    pane = info.pane("runner")
    assert pane is not None
    return pane


def test_start_refuses_while_another_run_holds_the_data(
    server: Any, env: dict[str, str], isolated_env: Path
) -> None:
    lock = publish_running(isolated_env / "stxbf.duckdb", age=1)
    try:
        result = stxbf("tmux", "start", "--detach", "--inhibit", "none", env=env)
    finally:
        lock.release()
    assert result.returncode == 4
    assert f"another stxbf run (pid {os.getpid()}) is already backfilling" in result.stderr
    assert session_tmux.find_session(server, "stx-backfill") is None


def test_health_finds_the_recorded_session_without_flags(
    server: Any, env: dict[str, str], isolated_env: Path
) -> None:
    from stxbf.paths import DataPaths, SessionRecord, write_session_record

    del env["STXBF_TMUX_SOCKET"]
    server.new_session(session_name="nightly", attach=False)
    isolated_env.mkdir(parents=True, exist_ok=True)
    write_session_record(
        DataPaths.of(isolated_env).session_record,
        SessionRecord(socket_name=str(server.socket_name), session_name="nightly", started_at=0),
    )
    report = json.loads(stxbf("health", "--json", env=env).stdout)
    tmux_check = next(check for check in report["checks"] if check["name"] == "tmux")
    assert tmux_check["status"] == "ok", tmux_check
