"""The backfill's tmux session as one unit: start it, describe it, find it, stop it.

`stxbf.session.tmux` knows tmux (panes, options, signals); this module knows what a backfill session
is made of. The runner pane runs

    python -m stxbf.session.launch [--key-file F] -- <inhibitor> python -m stxbf.session.supervise
        --home H --db D -- python -m stxbf run <flags>

so the API key travels through a file the launcher deletes at once (stxbf.session.launch), the sleep
inhibitor lasts as long as the supervisor, and the supervisor starts the run again after an outage
(stxbf.session.supervise). `start_backfill` also writes the session record beside the database, so
`attach`, `status`, `stop` and `health` find the socket and session without flags.
`watch_startup` then waits until the run has heard from the API or its pane has ended, so that
`stxbf tmux start` shows a wrong URL, port or key at once, with the runner's last lines, instead
of in a pane that nobody is looking at.

Every function takes the libtmux `Server` and explicit paths, never the Settings object.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stxbf import snapshot
from stxbf.codes import ExitCode, Outcome, StrEnum
from stxbf.errors import LockHeld, OpsError
from stxbf.paths import (
    DataPaths,
    SessionRecord,
    read_session_record,
    write_session_record,
)
from stxbf.process import RunnerProcess, active_supervisor, describe_wait, detect_runner
from stxbf.session.inhibit import Inhibitor
from stxbf.session.launch import remove_stale_key_files, write_key_file
from stxbf.session.supervise import api_has_answered
from stxbf.session.tmux import (
    SessionInfo,
    StopResult,
    capture,
    describe_session,
    find_session,
    pane_exit,
    start_session,
    stop_session,
)

if TYPE_CHECKING:
    from libtmux import Server

logger = logging.getLogger(__name__)

KEY_WAIT_SECONDS = 15.0


def runner_process(paths: DataPaths, *, now: float | None = None) -> RunnerProcess:
    """Tell whether a run holds this database, from its lock, its runner record and its snapshot."""
    return detect_runner(
        paths, snap=snapshot.read(paths.progress), now=time.time() if now is None else now
    )


# -- starting ----------------------------------------------------------------------------------


def runner_argv(
    paths: DataPaths,
    run_flags: Sequence[str],
    *,
    inhibitor: Inhibitor,
    key_file: Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """Build the runner pane's command: launcher (key), inhibitor, supervisor, then `stxbf run`."""
    launch = [python, "-m", "stxbf.session.launch"]
    if key_file is not None:
        launch += ["--key-file", str(key_file)]
    supervise = [python, "-m", "stxbf.session.supervise"]
    supervise += ["--home", str(paths.home.absolute()), "--db", str(paths.db.absolute()), "--"]
    return [*launch, "--", *inhibitor.wrap([*supervise, python, "-m", "stxbf", "run", *run_flags])]


def monitor_argv(
    paths: DataPaths, *, target_days: int, interval: float, python: str = sys.executable
) -> list[str]:
    """Build the monitor pane's command: `stxbf status --watch` on the same database and target."""
    return [
        python, "-m", "stxbf", "status", "--watch", "--interval", f"{interval:g}",
        "--home", str(paths.home.absolute()), "--db", str(paths.db.absolute()),
        "--target-days", str(target_days),
    ]  # fmt: skip


@dataclass
class Started:
    """Say how `start_backfill` went: the session, its runner pane, whether the key was taken."""

    session_name: str
    runner_pane: str
    started_at: float
    inhibitor: Inhibitor
    key_picked_up: bool | None  # None: there was no key to hand over


def start_backfill(
    server: Server,
    *,
    session_name: str,
    socket_name: str | None,
    paths: DataPaths,
    run_flags: Sequence[str],
    monitor: Sequence[str],
    inhibitor: Inhibitor,
    api_key: str | None,
    start_directory: Path,
    options: Mapping[str, Any] | None = None,
) -> Started:
    """Create the session (runner on top, monitor below) and record where it is.

    The session record also keeps the `options` (see SessionRecord) that this start was given, so
    that a later start with no flags repeats it.
    """
    if find_session(server, session_name) is not None:
        raise OpsError(f"Session '{session_name}' already exists. Use 'attach' to reconnect.")
    runner = runner_process(paths)
    if runner.alive:
        raise LockHeld(
            f"another stxbf run (pid {runner.pid}) is already backfilling into {paths.db}; "
            "watch it with `stxbf status`",
            pid=runner.pid,
        )
    key_file = None
    if api_key:
        remove_stale_key_files(paths.run_dir)
        key_file = write_key_file(paths.run_dir, api_key)
    started_at = time.time()
    try:
        session = start_session(
            server,
            session_name=session_name,
            runner_argv=runner_argv(paths, run_flags, inhibitor=inhibitor, key_file=key_file),
            monitor_argv=monitor,
            start_directory=start_directory,
            runner_notes=[f"stxbf: {inhibitor.note}"] if inhibitor.note else [],
            tags={"db": str(paths.db.absolute()), "inhibitor": inhibitor.name},
        )
    except BaseException:
        if key_file is not None:
            key_file.unlink(missing_ok=True)
        raise
    write_session_record(
        paths.session_record,
        SessionRecord(
            socket_name=socket_name,
            session_name=session_name,
            started_at=started_at,
            options=dict(options or {}),
            api_key_given=bool(api_key),
        ),
    )
    picked_up = None if key_file is None else wait_for_key_pickup(key_file)
    pane = session.active_window.active_pane
    return Started(
        session_name=session_name,
        runner_pane=str(pane.pane_id) if pane is not None else "",
        started_at=started_at,
        inhibitor=inhibitor,
        key_picked_up=picked_up,
    )


def wait_for_key_pickup(key_file: Path, *, timeout: float = KEY_WAIT_SECONDS) -> bool:
    """Wait until the launcher has read and deleted the key file; never leave the file behind."""
    deadline = time.monotonic() + timeout
    while key_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if key_file.exists():
        key_file.unlink(missing_ok=True)
        return False
    return True


# -- describing --------------------------------------------------------------------------------


class TmuxState(StrEnum):
    """Name the states of `stxbf tmux status`, each with its label and exit code in TMUX_STATES."""

    RUNNING = "running"
    FINISHED = "finished"
    NO_SESSION = "no_session"
    RUNNER_EXITED = "runner_exited"


# Label and exit code of `stxbf tmux status` (and of bare `stxbf tmux` without a terminal).
TMUX_STATES: dict[TmuxState, Outcome] = {
    TmuxState.RUNNING: Outcome("running", ExitCode.OK),
    TmuxState.FINISHED: Outcome("finished: target reached", ExitCode.OK),
    TmuxState.NO_SESSION: Outcome("no session", ExitCode.ERROR),
    TmuxState.RUNNER_EXITED: Outcome("runner exited", ExitCode.RUNNER_EXITED),
}


@dataclass
class TmuxStatus:
    """Hold `stxbf tmux status` as data: `--json` dumps it, and the CLI draws it."""

    state: str
    label: str
    exit_code: int
    session_name: str
    socket: str
    db_path: str
    checked_at: float
    session: SessionInfo | None
    runner: RunnerProcess
    runner_exit: int | None = None  # the runner pane's exit code, once it has ended
    runner_uptime: float | None = None
    restarts: int = 0
    inhibitor: str | None = None
    schema: int = 1  # as `status --json` and `health --json`: the field names are an interface

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_tmux_status(
    server: Server,
    *,
    session_name: str,
    socket_name: str | None,
    paths: DataPaths,
    now: float | None = None,
) -> TmuxStatus:
    """Describe the session and the runner's real state; an ended runner pane is never "running"."""
    now = time.time() if now is None else now
    info = describe_session(server, session_name)
    db = Path(info.tags["db"]) if info and info.tags.get("db") else paths.db
    paths = DataPaths.of(paths.home, db)
    runner = runner_process(paths, now=now)
    snap = snapshot.read(paths.progress)
    pane = info.runner_pane() if info is not None else None
    if info is None:
        key = TmuxState.NO_SESSION
    elif pane is not None and pane.dead:
        key = TmuxState.FINISHED if pane.dead_status == 0 else TmuxState.RUNNER_EXITED
    else:
        key = TmuxState.RUNNING
    label = TMUX_STATES[key].label
    if key == TmuxState.RUNNER_EXITED:
        label += f" with code {pane.dead_status}" if pane and pane.dead_status is not None else ""
    supervisor = active_supervisor(paths) if key == TmuxState.RUNNING else None
    if supervisor is not None and supervisor.failing_since is not None and not runner.alive:
        label = "waiting to restart the run: " + describe_wait(supervisor, now)
    return TmuxStatus(
        state=str(key),
        label=label,
        exit_code=int(TMUX_STATES[key].exit_code),
        session_name=session_name,
        socket=socket_name or "default",
        db_path=str(db),
        checked_at=now,
        session=info,
        runner=runner,
        runner_exit=pane.dead_status if pane is not None and pane.dead else None,
        runner_uptime=now - runner.started_at if runner.alive and runner.started_at else None,
        restarts=snap.restarts if snap is not None else 0,
        inhibitor=info.tags.get("inhibitor") if info else None,
    )


# -- finding and stopping ----------------------------------------------------------------------


def recorded_session(paths: DataPaths) -> SessionRecord | None:
    """Return the socket and session that `stxbf tmux start` recorded for this database, if any."""
    return read_session_record(paths.session_record)


def locate_session(
    paths: DataPaths,
    *,
    session_name: str,
    socket_name: str | None,
    name_given: bool,
    socket_given: bool,
) -> tuple[str, str | None]:
    """Return (session, socket): as given, else as `start` recorded them, else the defaults."""
    record = recorded_session(paths)
    if record is not None:
        session_name = session_name if name_given else record.session_name
        socket_name = socket_name if socket_given else record.socket_name
    return session_name, socket_name


def stop_backfill(
    server: Server, *, session_name: str, paths: DataPaths, timeout: float
) -> StopResult:
    """Stop the run so that it checkpoints (the supervisor then ends too), and close the session.

    The session record stays, so a later `stxbf tmux start` (or `restart`) finds the socket and the
    options of this session there.
    """
    info = describe_session(server, session_name)
    if info is not None and info.tags.get("db"):
        paths = DataPaths.of(paths.home, Path(info.tags["db"]))
    runner = runner_process(paths)
    result = stop_session(
        server, session_name, runner_pid=runner.pid if runner.alive else None, timeout=timeout
    )
    remove_stale_key_files(paths.run_dir)
    return result


# -- watching it start --------------------------------------------------------------------------

STARTUP_TIMEOUT = 120.0
LAST_LINES = 15


class StartupState(StrEnum):
    """Name the ways a runner's first moments can go."""

    PROGRESSING = "progressing"  # the API answered and the run is backfilling
    FINISHED = "finished"  # it ended at once with exit 0: the target was already reached
    DIED = "died"  # it ended with an error before any progress
    STARTING = "starting"  # still trying to reach the API when the wait ran out


@dataclass
class Startup:
    """Say how the runner's first moments went: it made progress, ended, or is still starting."""

    state: StartupState
    exit_code: int | None = None
    last_lines: list[str] = field(default_factory=list)


def watch_startup(
    server: Server,
    pane_id: str,
    paths: DataPaths,
    *,
    since: float,
    timeout: float = STARTUP_TIMEOUT,
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> Startup:
    """Wait until the run has heard from the API (its snapshot is past preflight) or has ended.

    A snapshot alone is not enough: a run publishes one while it still tries to reach the API.
    """
    deadline = clock() + timeout
    while True:
        finished, code = pane_exit(server, pane_id)
        if finished:
            if code == 0:
                return Startup(StartupState.FINISHED, 0)
            return Startup(StartupState.DIED, code, last_lines(server, pane_id))
        snap = snapshot.read(paths.progress)
        if snap is not None and snap.started_at >= since - 1 and api_has_answered(snap):
            return Startup(StartupState.PROGRESSING)
        if clock() >= deadline:
            return Startup(StartupState.STARTING)
        time.sleep(poll)


def last_lines(server: Server, pane_id: str, count: int = LAST_LINES) -> list[str]:
    """Return the pane's last non-blank lines, without tmux's own "Pane is dead" banner."""
    text = capture(server, pane_id, lines=500)
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("Pane is dead")]
    return lines[-count:]
