"""Stopping the backfill's session: let the runner checkpoint, wait for it, close the session."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stxbf.errors import OpsError
from stxbf.process import is_descendant, pid_alive
from stxbf.session.tmux.panes import PaneInfo, describe_session, pane_exit
from stxbf.session.tmux.server import find_session

if TYPE_CHECKING:
    from libtmux import Server


@dataclass
class StopResult:
    session_name: str
    runner_pid: int | None = None
    signalled: str | None = None  # SIGINT | keys (Ctrl+C sent to the pane) | None (nothing to stop)
    runner_exit: int | None = None  # the runner pane's exit status, when it ended in time
    forced: bool = False  # SIGTERM after the grace period
    waited: float = 0.0
    notes: list[str] = field(default_factory=list)


def stop_session(
    server: Server,
    session_name: str,
    *,
    runner_pid: int | None,
    timeout: float = 60.0,
    term_grace: float = 10.0,
    poll: float = 0.2,
) -> StopResult:
    """Stop the runner so it checkpoints (SIGINT, as Ctrl+C would), wait, then kill the session.

    `runner_pid` (from the runner's pid file) is signalled only if it runs inside this session's
    runner pane: a run on the same data started elsewhere is left alone.
    """
    info = describe_session(server, session_name)
    if info is None:
        raise OpsError(f"Session '{session_name}' does not exist. Nothing to stop.")
    result = StopResult(session_name=session_name)
    pane = info.runner_pane()
    started = time.monotonic()
    if pane is not None and not pane.dead:
        _interrupt(server, pane, runner_pid, result)
        _await_exit(server, pane.pane_id, result, timeout=timeout, term_grace=term_grace, poll=poll)
    elif pane is not None:
        result.runner_exit = pane.dead_status
    result.waited = time.monotonic() - started
    session = find_session(server, session_name)
    if session is not None:
        session.kill()
    return result


def _interrupt(server: Server, pane: PaneInfo, runner_pid: int | None, result: StopResult) -> None:
    """SIGINT to the runner when it runs in this pane, else Ctrl+C typed into the pane."""
    from libtmux import Pane

    if runner_pid is not None and pid_alive(runner_pid):
        if pane.pid is not None and is_descendant(runner_pid, pane.pid):
            result.runner_pid = runner_pid
            os.kill(runner_pid, signal.SIGINT)
            result.signalled = "SIGINT"
            return
        result.notes.append(
            f"a run on this database (pid {runner_pid}) is not in this session: left alone"
        )
    Pane.from_pane_id(server=server, pane_id=pane.pane_id).send_keys("C-c", enter=False)
    result.signalled = "keys"


def _await_exit(
    server: Server,
    pane_id: str,
    result: StopResult,
    *,
    timeout: float,
    term_grace: float,
    poll: float,
) -> None:
    """Wait for the pane to end; SIGTERM our runner after `timeout`; give up after `term_grace`."""
    if not _ended_within(server, pane_id, timeout, poll) and result.runner_pid is not None:
        result.forced = True
        result.notes.append(f"runner did not stop within {timeout:.0f} s: sent SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.kill(result.runner_pid, signal.SIGTERM)
        _ended_within(server, pane_id, term_grace, poll)
    finished, code = pane_exit(server, pane_id)
    if finished:
        result.runner_exit = code
    else:
        result.forced = True
        result.notes.append("runner still running: closing the session anyway (SIGHUP)")


def _ended_within(server: Server, pane_id: str, seconds: float, poll: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pane_exit(server, pane_id)[0]:
            return True
        time.sleep(poll)
    return pane_exit(server, pane_id)[0]
