"""The tmux session against a real, throwaway tmux server (libtmux's `server` fixture).

The runner pane runs tests/fake_runner.py (same lock, pid file and progress snapshot as
`stxbf run`), the monitor pane runs the real `stxbf status --watch`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stxbf.errors import ConfigError, OpsError, TmuxMissing
from stxbf.paths import DataPaths, RunnerRecord, read_runner_record
from stxbf.session import tmux as session_tmux
from stxbf.session.launch import write_key_file
from tests.helpers import retry_until

pytestmark = pytest.mark.tmux

FAKE_RUNNER = Path(__file__).resolve().parents[1] / "fake_runner.py"
KEY = "sk-test-7f3c1d9e-secret"


def start(
    server: Any,
    tmp_path: Path,
    *,
    name: str = "stx-backfill",
    seconds: float = 30.0,
    key_file: Path | None = None,
    db_dir: str = "data",
) -> tuple[Path, Any]:
    db = tmp_path / db_dir / "stxbf.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    launch = [sys.executable, "-m", "stxbf.session.launch"]
    if key_file is not None:
        launch += ["--key-file", str(key_file)]
    runner = [*launch, "--", sys.executable, str(FAKE_RUNNER), "--db", str(db)]
    runner += ["--target-days", "10", "--seconds", str(seconds)]
    monitor = [sys.executable, "-m", "stxbf", "status", "--watch", "--interval", "0.5"]
    monitor += ["--db", str(db), "--home", str(tmp_path / "home"), "--target-days", "10"]
    session = session_tmux.start_session(
        server,
        session_name=name,
        runner_argv=runner,
        monitor_argv=monitor,
        start_directory=tmp_path,
        tags={"db": str(db), "inhibitor": "none"},
    )
    return db, session


def runner_record(db: Path) -> RunnerRecord | None:
    """The record the runner of `db` writes while it holds the lock."""
    return read_runner_record(DataPaths.of(db.parent, db).runner_record)


def test_start_lays_out_runner_and_monitor(server: Any, tmp_path: Path) -> None:
    db, _session = start(server, tmp_path)
    info = session_tmux.describe_session(server, "stx-backfill")
    assert info is not None
    runner, monitor = info.pane("runner"), info.pane("monitor")
    assert runner is not None and monitor is not None
    assert (runner.index, monitor.index) == (0, 1)
    total = runner.height + monitor.height + 1  # one separator line
    assert abs(monitor.height / total - 0.40) < 0.03
    assert abs(runner.height / total - 0.60) < 0.03
    assert info.tags["db"] == str(db) and info.tags["inhibitor"] == "none"
    retry_until(lambda: runner_record(db))
    text = retry_until(
        lambda: (
            (t := session_tmux.capture(server, monitor.pane_id)) and "Status: Running" in t and t
        )
    )
    assert "stxbf monitor" in text and "/10 days" in text
    assert "fake runner pid" in session_tmux.capture(server, runner.pane_id)


def test_start_when_exists_and_attach_when_missing(server: Any, tmp_path: Path) -> None:
    with pytest.raises(OpsError, match=r"Session 'stx-backfill' does not exist\. Use 'start'"):
        session_tmux.attach(server, "stx-backfill", environ={})
    start(server, tmp_path)
    with pytest.raises(OpsError, match=r"Session 'stx-backfill' already exists\. Use 'attach'"):
        start(server, tmp_path)


def test_runner_pane_stays_readable_with_its_exit_code(server: Any, tmp_path: Path) -> None:
    db, _ = start(server, tmp_path, seconds=0.5)
    info = retry_until(
        lambda: (
            (i := session_tmux.describe_session(server, "stx-backfill"))
            and i.pane("runner")
            and i.pane("runner").dead  # type: ignore[union-attr]
            and i
        )
    )
    runner = info.pane("runner")
    assert runner.dead_status == 0
    text = session_tmux.capture(server, runner.pane_id)
    assert "fake runner done: exit 0" in text
    assert "[stxbf run exited with code 0" in text
    assert session_tmux.find_session(server, "stx-backfill") is not None
    assert not DataPaths.of(db.parent, db).runner_record.exists()


def test_stop_lets_the_runner_checkpoint(server: Any, tmp_path: Path) -> None:
    db, _ = start(server, tmp_path)
    info = retry_until(lambda: runner_record(db))
    result = session_tmux.stop_session(server, "stx-backfill", runner_pid=info.pid, timeout=10)
    assert result.signalled == "SIGINT"
    assert result.runner_pid == info.pid
    assert result.runner_exit == 130
    assert not result.forced
    assert db.with_name(db.name + ".checkpointed").read_text() == "SIGINT"
    assert session_tmux.find_session(server, "stx-backfill") is None
    with pytest.raises(OpsError, match="does not exist"):
        session_tmux.stop_session(server, "stx-backfill", runner_pid=None)


def test_stop_leaves_a_runner_outside_the_session_alone(server: Any, tmp_path: Path) -> None:
    db, _ = start(server, tmp_path)
    retry_until(lambda: runner_record(db))  # its signal handlers are set
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        result = session_tmux.stop_session(
            server, "stx-backfill", runner_pid=outsider.pid, timeout=10
        )
        assert outsider.poll() is None
        assert result.signalled == "keys"  # Ctrl+C to the pane instead
        assert result.runner_exit == 130
        assert any("not in this session" in note for note in result.notes)
    finally:
        outsider.kill()
        outsider.wait()


HOSTILE = {
    "space": ("stx backfill", "data dir"),
    "quote-semicolon": ("it's; touch pwned", "it's; touch pwned"),
    "dollar-paren": ('"$(touch pwned)"', '"$(touch pwned)"'),
    "backtick": ("back`touch pwned`", "back`touch pwned`"),
    "tmux-format": ("fmt", "#(touch pwned)#{pane_id}"),
}


@pytest.mark.parametrize(("name", "directory"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_names_and_paths_stay_data(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, directory: str
) -> None:
    workdir = tmp_path / directory
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    db, _ = start(server, workdir, name=name, db_dir=directory)
    retry_until(lambda: runner_record(db))
    info = session_tmux.describe_session(server, name)
    assert info is not None and info.name == name
    path = server.cmd("display-message", "-p", "-t", info.panes[0].pane_id, "#{pane_current_path}")
    assert path.stdout == [str(workdir)]
    assert not list(tmp_path.rglob("pwned"))
    assert not (Path("/") / "pwned").exists()


@pytest.mark.parametrize(
    "name",
    ["a:b", "a.b", "", "tab\there", "#(touch pwned)"],
    ids=["colon", "dot", "empty", "tab", "format"],
)
def test_session_names_tmux_rejects_fail_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        session_tmux.validate_session_name(name)
    assert "\n" not in caught.value.message


def test_api_key_reaches_the_runner_only_through_its_environment(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STXBF_API_KEY", KEY)  # a server we start must not inherit it
    key_file = write_key_file(tmp_path / "home" / "run", KEY)
    assert key_file.stat().st_mode & 0o777 == 0o600
    db, _ = start(server, tmp_path, key_file=key_file)
    retry_until(lambda: runner_record(db))
    assert not key_file.exists(), "the launcher deletes the key file as it reads it"
    keyhash = db.with_name(db.name + ".keyhash").read_text()
    assert keyhash == hashlib.sha256(KEY.encode()).hexdigest()
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert KEY not in ps
    info = session_tmux.describe_session(server, "stx-backfill")
    assert info is not None
    for pane in info.panes:
        assert KEY not in session_tmux.capture(server, pane.pane_id, lines=1000)
    env = "\n".join(server.cmd("show-environment", "-g").stdout)
    assert KEY not in env


def test_tmux_missing_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def which(tool: str) -> str | None:
        return "/usr/bin/apt-get" if tool == "apt-get" else None

    with pytest.raises(TmuxMissing) as caught:
        session_tmux.ensure_tmux(which=which)
    assert caught.value.message == "tmux is not installed. Install with: sudo apt-get install tmux"


@pytest.mark.parametrize(
    ("platform", "tools", "expected"),
    [
        ("darwin", set(), "brew install tmux"),
        ("linux", {"apt-get"}, "sudo apt-get install tmux"),
        ("linux", {"dnf"}, "sudo dnf install tmux"),
        ("linux", {"pacman"}, "sudo pacman -S tmux"),
    ],
    ids=["macos", "debian", "fedora", "arch"],
)
def test_install_command_per_os(platform: str, tools: set[str], expected: str) -> None:
    assert session_tmux.install_command(
        platform=platform, which=lambda t: t if t in tools else None
    ) == (expected)


def test_attach_inside_another_tmux_server_refuses_to_nest(server: Any, tmp_path: Path) -> None:
    start(server, tmp_path)
    environ = {"TMUX": "/tmp/tmux-0/some-other-server,123,0"}
    with pytest.raises(OpsError, match="inside another tmux server"):
        session_tmux.attach(server, "stx-backfill", environ=environ)


def test_attach_inside_the_same_server_switches_the_client(
    server: Any, session: Any, control_mode: Any, tmp_path: Path
) -> None:
    start(server, tmp_path)
    environ = {"TMUX": f"{session_tmux.socket_path(server.socket_name)},1,0"}
    with control_mode():
        assert session_tmux.attach(server, "stx-backfill", environ=environ) == 0
        clients = server.cmd("list-clients", "-F", "#{client_session}").stdout
    assert clients == ["stx-backfill"]
