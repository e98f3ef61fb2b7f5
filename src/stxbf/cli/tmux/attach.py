"""`stxbf tmux attach`: attach this terminal to the running session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from stxbf.cli.options import Db, Home, SessionName, SocketName
from stxbf.cli.tmux.common import locate
from stxbf.errors import OpsError


def attach(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Attach to the running session (fails if it does not exist)."""
    from stxbf.session.tmux import attach as attach_to
    from stxbf.session.tmux import attach_hint, find_session

    _, name, _, server = locate(ctx, session_name, socket_name, home, db)
    if find_session(server, name) is None:
        raise OpsError(f"Session '{name}' does not exist. Use 'start' to create it.")
    if not sys.stdin.isatty() and not os.environ.get("TMUX"):
        raise OpsError("attach needs a terminal; from one, run: " + attach_hint(server, name))
    raise typer.Exit(attach_to(server, name))
