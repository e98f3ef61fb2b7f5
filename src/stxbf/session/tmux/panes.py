"""Reading the session back: its panes and tags, a pane's text, and how a pane's command ended."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stxbf.session.tmux.layout import session_tags
from stxbf.session.tmux.server import find_session

if TYPE_CHECKING:
    from libtmux import Server

EXIT_LINE = re.compile(r"\[stxbf run exited with code (\d+)")


@dataclass
class PaneInfo:
    index: int
    role: str  # runner | monitor | other
    pane_id: str
    width: int
    height: int
    pid: int | None
    command: str  # what runs in it now
    dead: bool  # its command has finished (and tmux knows how)
    dead_status: int | None  # the exit code of a finished pane (128 + n when killed by signal n)


@dataclass
class SessionInfo:
    name: str
    session_id: str
    created: float | None
    attached: bool
    panes: list[PaneInfo] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def pane(self, role: str) -> PaneInfo | None:
        return next((p for p in self.panes if p.role == role), None)

    def runner_pane(self) -> PaneInfo | None:
        """The runner's pane: the tagged one, else the first (a session whose tags are lost)."""
        return self.pane("runner") or (self.panes[0] if self.panes else None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def describe_session(server: Server, session_name: str) -> SessionInfo | None:
    session = find_session(server, session_name)
    if session is None:
        return None
    tags = session_tags(server, session)
    roles = {tags.get("runner_pane"): "runner", tags.get("monitor_pane"): "monitor"}
    panes = []
    for pane in session.panes:
        finished, code = pane_exit(server, str(pane.pane_id))
        panes.append(
            PaneInfo(
                index=_int(pane.pane_index) or 0,
                role=roles.get(pane.pane_id) or "other",
                pane_id=str(pane.pane_id),
                width=_int(pane.pane_width) or 0,
                height=_int(pane.pane_height) or 0,
                pid=_int(pane.pane_pid),
                command=str(pane.pane_current_command or ""),
                dead=finished,
                dead_status=code,
            )
        )
    created = _int(session.session_created)
    return SessionInfo(
        name=session_name,
        session_id=str(session.session_id),
        created=float(created) if created is not None else None,
        attached=(_int(session.session_attached) or 0) > 0,
        panes=panes,
        tags=tags,
    )


def capture(server: Server, pane_id: str, *, lines: int = 0) -> str:
    """The pane's visible text (plus `lines` of scrollback)."""
    args = ["capture-pane", "-p", "-J", "-t", pane_id]
    if lines:
        args += ["-S", f"-{lines}"]
    return "\n".join(server.cmd(*args).stdout)


def pane_exit(server: Server, pane_id: str, *, settle: float = 0.5) -> tuple[bool, int | None]:
    """(finished, exit code) of a pane; a pane that is gone counts as finished with no code.

    tmux marks a pane dead when its terminal closes and learns the exit status when it reaps the
    process; tmux 3.3 can leave that status unknown for a long while (the reaping races the close).
    So a dead pane is finished at once, and its code comes from tmux when it has it (a killing
    signal n reads as 128 + n, like a shell), else from the runner script's last line.
    """
    deadline = time.monotonic() + settle
    while True:
        result = server.cmd(
            "display-message", "-p", "-t", pane_id,
            "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}",
        )  # fmt: skip
        if result.stderr or not result.stdout:
            return True, None
        dead, status, signum = [*result.stdout[0].split("|"), "", ""][:3]
        if dead != "1":
            return False, None
        if status.strip():
            return True, _int(status)
        if signum.strip():
            code = _int(signum)
            return True, None if code is None else 128 + code
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    found = EXIT_LINE.findall(capture(server, pane_id, lines=200))
    return True, int(found[-1]) if found else None
