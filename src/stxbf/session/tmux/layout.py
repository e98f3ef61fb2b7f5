"""Creating the backfill's session: runner pane on top, monitor below, and the tags that say so.

The window has `remain-on-exit on`, set before the commands start, so a finished (or failed)
runner's last screen stays readable and tmux records its exit status (`#{pane_dead_status}`).
The session's tags (tmux user options `@stxbf_*`) are written and read only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stxbf.defaults import API_KEY_ENV_NAMES
from stxbf.errors import OpsError
from stxbf.session.tmux.server import find_session, tmux, validate_session_name

if TYPE_CHECKING:
    from libtmux import Server, Session

logger = logging.getLogger(__name__)

MONITOR_PERCENT = 40
DETACHED_SIZE = (200, 50)  # a detached session's size until a client attaches and resizes it
TAG_PREFIX = "@stxbf_"  # session user options: db, inhibitor, runner_pane, monitor_pane, started_at


def runner_script(argv: Sequence[str], *, notes: Sequence[str] = ()) -> str:
    """The runner pane's /bin/sh script: run, then print the exit code under the final summary.

    `trap : INT` lets Ctrl+C reach the runner (which checkpoints) while the shell survives to say
    how it ended; a no-op trap, unlike an ignored signal, is not inherited by the runner.
    """
    lines = ["trap : INT"]
    lines += [f"printf '%s\\n' {shlex.quote(note)}" for note in notes]
    lines += [
        shlex.join(argv),
        "rc=$?",
        "printf '\\n[stxbf run exited with code %s at %s]\\n' \"$rc\" "
        "\"$(date '+%Y-%m-%d %H:%M:%S')\"",
        "printf '%s\\n' 'This pane stays open so you can read it. Detach: Ctrl+B D. "
        "Close the session: stxbf tmux stop'",
        'exit "$rc"',
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _environ_without_secrets() -> Iterator[None]:
    """Hide the API key from the tmux client we spawn: a server it starts copies it to all panes."""
    saved = {name: os.environ.pop(name) for name in API_KEY_ENV_NAMES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _format_literal(text: str) -> str:
    """Escape `#` for tmux arguments it expands as formats (`-c DIR`): `#(cmd)` would run cmd."""
    return text.replace("#", "##")


def tag_session(server: Server, session: Session, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        tmux(server, "set-option", "-t", str(session.session_id), TAG_PREFIX + key, value)


def session_tags(server: Server, session: Session) -> dict[str, str]:
    lines = server.cmd("show-options", "-t", str(session.session_id)).stdout
    tags: dict[str, str] = {}
    for line in lines:
        if line.startswith(TAG_PREFIX):
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                value = shlex.split(value)[0] if value else ""
            tags[key[len(TAG_PREFIX) :]] = value
    return tags


def start_session(
    server: Server,
    *,
    session_name: str,
    runner_argv: Sequence[str],
    monitor_argv: Sequence[str],
    start_directory: Path,
    runner_notes: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    size: tuple[int, int] = DETACHED_SIZE,
) -> Session:
    """Create the session detached: runner on top (60%), monitor below (40%).

    The panes start with the default shell, the window gets `remain-on-exit`, and only then are
    both panes respawned with their commands, so even a runner that fails at once stays readable.
    Raises OpsError when a session of that name exists.
    """
    from libtmux.constants import PaneDirection
    from libtmux.exc import LibTmuxException

    validate_session_name(session_name)
    if find_session(server, session_name) is not None:
        raise OpsError(f"Session '{session_name}' already exists. Use 'attach' to reconnect.")
    directory = _format_literal(str(start_directory))
    with _environ_without_secrets():
        try:
            session = server.new_session(
                session_name=session_name,
                attach=False,
                start_directory=directory,
                x=size[0],
                y=size[1],
            )
            window = session.active_window
            window.set_option("remain-on-exit", "on")
            runner_pane = window.active_pane
            assert runner_pane is not None
            monitor_pane = runner_pane.split(
                direction=PaneDirection.Below,
                size=f"{MONITOR_PERCENT}%",
                start_directory=directory,
            )
        except LibTmuxException as exc:
            raise OpsError(f"cannot create tmux session {session_name!r}: {exc}") from None
        own_tags = {
            "runner_pane": str(runner_pane.pane_id),
            "monitor_pane": str(monitor_pane.pane_id),
            "started_at": f"{time.time():.0f}",
        }
        tag_session(server, session, {**own_tags, **(tags or {})})
        script = runner_script(runner_argv, notes=runner_notes)
        tmux(server, "respawn-pane", "-k", "-t", str(runner_pane.pane_id), "/bin/sh", "-c", script)
        tmux(server, "respawn-pane", "-k", "-t", str(monitor_pane.pane_id), *monitor_argv)
        runner_pane.select()
    logger.info("started tmux session %s (runner %s)", session_name, runner_pane.pane_id)
    return session
