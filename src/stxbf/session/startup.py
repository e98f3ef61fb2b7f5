"""A backfill session's first moments: did the run hear from the API, or did its pane end?

`stxbf tmux start` waits here so that a wrong URL, port or key shows at once, with the runner's
last lines, instead of in a pane nobody is looking at.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stxbf import snapshot
from stxbf.codes import StrEnum
from stxbf.paths import DataPaths
from stxbf.session.supervise import api_has_answered
from stxbf.session.tmux import capture, pane_exit

if TYPE_CHECKING:
    from libtmux import Server

STARTUP_TIMEOUT = 120.0
LAST_LINES = 15


class StartupState(StrEnum):
    PROGRESSING = "progressing"  # the API answered and the run is backfilling
    FINISHED = "finished"  # it ended at once with exit 0: the target was already reached
    DIED = "died"  # it ended with an error before any progress
    STARTING = "starting"  # still trying to reach the API when the wait ran out


@dataclass
class Startup:
    """How the runner's first moments went: it made progress, ended, or is still starting."""

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
    """Wait until the run has heard from the API (a snapshot past its preflight) or its pane ended.

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
    """The pane's last non-blank lines, without tmux's own "Pane is dead" banner."""
    text = capture(server, pane_id, lines=500)
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("Pane is dead")]
    return lines[-count:]
