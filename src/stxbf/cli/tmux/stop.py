"""`stxbf tmux stop`: stop the runner so it checkpoints, then close the session."""

from __future__ import annotations

from pathlib import Path

import typer

from stxbf.cli.common import err_console
from stxbf.cli.options import Db, Home, SessionName, SocketName
from stxbf.cli.tmux.common import locate, say

Timeout = typer.Option(
    60, "--timeout", min=0, help="Seconds to let the runner checkpoint before SIGTERM."
)


def stop(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    timeout: float = Timeout,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Stop cleanly: signal the runner (it checkpoints; no restart follows), close the session.

    Exit code 0 when it stopped, and also when there was nothing to stop (it says so), so that
    `stxbf tmux stop && stxbf tmux start` works whether or not the session still runs.
    """
    from stxbf.session.backfill import stop_backfill
    from stxbf.session.tmux import find_session

    settings, name, socket, server = locate(ctx, session_name, socket_name, home, db)
    if find_session(server, name) is None:
        where = f"tmux server '{socket}'" if socket else "the default tmux server"
        say(f"Nothing to stop: no session '{name}' on {where}.")
        return
    say("Stopping the runner so it checkpoints…")
    result = stop_backfill(server, session_name=name, paths=settings.paths, timeout=timeout)
    for note in result.notes:
        err_console.print(f"note: {note}", soft_wrap=True, markup=False)
    how = f"exited with code {result.runner_exit}" if result.runner_exit is not None else "stopped"
    pid = f" (pid {result.runner_pid})" if result.runner_pid is not None else ""
    say(f"Runner{pid} {how}. Session '{name}' closed.")
