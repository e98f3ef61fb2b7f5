"""Shared pieces of the command modules: consoles, the options several commands declare alike,
and which tmux session a command is about."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from stxbf.ops.activity import DEFAULT_STALL_SECONDS

if TYPE_CHECKING:
    from stxbf.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# The options of the commands that read a backfill (status, health, logs).
HomeOption = typer.Option(None, "--home", help="Data directory (env STXBF_HOME).")
DbOption = typer.Option(None, "--db", help="Database file (default: <home>/stxbf.duckdb).")
StallSecondsOption = typer.Option(
    DEFAULT_STALL_SECONDS,
    "--stall-seconds",
    min=1,
    help="A runner that got no page and committed no window for this long is stalled.",
)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def session_target(settings: Settings) -> tuple[str, str | None]:
    """(session name, socket name): flags or env first, else the session record, else defaults."""
    from stxbf.ops.session import locate_session

    return locate_session(
        settings.paths,
        session_name=settings.session_name,
        socket_name=settings.tmux_socket,
        name_given="session_name" in settings.model_fields_set,
        socket_given="tmux_socket" in settings.model_fields_set,
    )
