"""A restart keeps what was started: `stxbf tmux stop && stxbf tmux start`, and `restart`, run the
same session on the same tmux server with the same options; a start that cannot write its data
directory fails before any tmux server exists; a stop with nothing to stop says so.

Real tmux on a private socket (libtmux's `server` fixture), the real runner, the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stxbf import snapshot
from stxbf.session import tmux as session_tmux
from stxbf.simulator import SimConfig, SimServer, run_in_thread
from tests.helpers import stxbf

pytestmark = pytest.mark.tmux

KEY = "sim-key-restart-31c07d"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    # slow enough that a 3-day run is still fetching when each start returns
    config = SimConfig(
        seed=21, days=4, tx_per_day=1500, latency_ms=150, require_key=True, api_keys=(KEY,)
    )
    with run_in_thread(config) as server:
        yield server


@pytest.fixture
def env(isolated_env: Path) -> Iterator[dict[str, str]]:
    """No STXBF_TMUX_SOCKET: the socket is given as a flag once, then must be remembered.

    A start that forgets it lands on tmux's default server: the session it made there for this
    test's database (and no other) is closed afterwards.
    """
    yield {**os.environ, "STXBF_API_KEY": KEY}
    db = str(isolated_env / "stxbf.duckdb")
    shown = subprocess.run(
        ["tmux", "show-options", "-t", "stx-backfill", "@stxbf_db"],
        capture_output=True,
        text=True,
    )
    if shown.returncode == 0 and shown.stdout.split(maxsplit=1)[1:] == [db + "\n"]:
        subprocess.run(["tmux", "kill-session", "-t", "stx-backfill"], capture_output=True)


def snapshot_after(isolated_env: Path, since: float) -> snapshot.ProgressSnapshot:
    """The progress the runner started by the last `start` published (it returns after one)."""
    snap = snapshot.read(isolated_env / "stxbf.duckdb.progress.json")
    assert snap is not None and snap.started_at >= since - 1, "no progress from the new runner"
    return snap


def started_at(isolated_env: Path) -> float:
    return float(json.loads((isolated_env / "stxbf.duckdb.tmux.json").read_text())["started_at"])


def test_stop_then_start_with_no_flags_runs_the_same_session_with_the_same_options(
    server: Any, sim: SimServer, env: dict[str, str], isolated_env: Path
) -> None:
    socket = str(server.socket_name)
    first = stxbf(
        "tmux", "start", "--socket-name", socket, "--api-url", sim.url, "--target-days", "3",
        "--concurrency", "1", "--inhibit", "none", env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_after(isolated_env, started_at(isolated_env)).target_days == 3

    stopped = stxbf("tmux", "stop", env=env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert session_tmux.find_session(server, "stx-backfill") is None

    again = stxbf("tmux", "start", env=env)  # the recipe's second half: no flags at all
    assert again.returncode == 0, again.stdout + again.stderr
    said = again.stdout
    assert "Restarting with the options of the last start:" in said
    for words in (f"--socket-name {socket}", "--target-days 3", f"--api-url {sim.url}"):
        assert words in said
    assert session_tmux.find_session(server, "stx-backfill") is not None  # on the private server
    snap = snapshot_after(isolated_env, started_at(isolated_env))
    assert (snap.target_days, snap.api_url) == (3, sim.url)
    assert KEY not in said + again.stderr
    record = json.loads((isolated_env / "stxbf.duckdb.tmux.json").read_text())
    assert record["api_key_given"] is True and KEY not in json.dumps(record)

    # restart: stop and start in one; a flag given overrides that one option only
    restarted = stxbf("tmux", "restart", "--target-days", "2", env=env)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "Stopping the runner so it checkpoints" in restarted.stdout
    assert "--target-days" not in restarted.stdout.split("last start:")[1].split("\n")[0]
    snap = snapshot_after(isolated_env, started_at(isolated_env))
    assert (snap.target_days, snap.api_url) == (2, sim.url)

    assert stxbf("tmux", "stop", env=env).returncode == 0
    repeated = stxbf("tmux", env=env)  # bare, no terminal: creates it as `start` would
    assert repeated.returncode == 0, repeated.stdout + repeated.stderr
    assert "--target-days 2" in repeated.stdout  # the override is the last start's option now
    assert snapshot_after(isolated_env, started_at(isolated_env)).target_days == 2
    assert stxbf("tmux", "stop", env=env).returncode == 0

    keyless = {name: value for name, value in env.items() if name != "STXBF_API_KEY"}
    unkeyed = stxbf("tmux", "start", env=keyless)  # the key is never recorded: it is missed
    assert "warning: the last start passed an API key; none is set now" in unkeyed.stderr
    assert unkeyed.returncode == 1  # the simulator requires the key: the runner ends at once
    assert stxbf("tmux", "stop", env=keyless).returncode == 0


def test_a_start_whose_data_directory_cannot_be_written_leaves_no_tmux_server(
    tmp_path: Path, env: dict[str, str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    socket = f"stxbf-test-{os.getpid()}-unwritable"
    try:
        done = stxbf(
            "tmux", "start", "--detach", "--socket-name", socket, "--home", str(blocker / "sub"),
            "--api-url", "http://127.0.0.1:1", "--inhibit", "none", env=env,
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and "data directory" in errors[0], done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        listed = subprocess.run(["tmux", "-L", socket, "ls"], capture_output=True, text=True)
        assert listed.returncode != 0, listed.stdout  # no server was started
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def test_stop_with_nothing_to_stop_says_so_and_succeeds(server: Any, env: dict[str, str]) -> None:
    done = stxbf("tmux", "stop", "--socket-name", str(server.socket_name), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Nothing to stop: no session 'stx-backfill'" in done.stdout
    assert "Stopping the runner" not in done.stdout and done.stderr == ""
