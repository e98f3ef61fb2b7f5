"""Shared pieces of the command modules: the consoles, and which tmux session a command is about."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from stxbf.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


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
