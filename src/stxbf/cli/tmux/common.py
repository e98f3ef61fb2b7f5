"""Pieces that the `stxbf tmux` commands share: their options, the settings and the session
they are about, and the hints they print."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from stxbf.cli.common import console, session_target

if TYPE_CHECKING:
    from libtmux import Server

    from stxbf.settings import Settings

InhibitChoice = Literal["auto", "caffeinate", "systemd", "none"]  # session.inhibit.MODES
Inhibit = typer.Option(
    "auto",
    "--inhibit",
    case_sensitive=False,
    help="Sleep inhibitor: auto (caffeinate on macOS, systemd-inhibit on Linux when usable), "
    "caffeinate, systemd or none.",
)
Interval = typer.Option(10, "--interval", min=0.5, help="Seconds between monitor redraws.")
StartupTimeout = typer.Option(
    120,
    "--startup-timeout",
    min=0,
    help="Seconds to wait for the runner's first answer from the API before returning.",
)


def tmux_settings(ctx: typer.Context, **given: Any) -> Settings:
    """Load the settings with the session and socket given here or to `stxbf tmux` itself."""
    from stxbf.settings import load_settings

    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    given["session_name"] = given.get("session_name") or parent.get("session_name")
    given["tmux_socket"] = given.get("tmux_socket") or parent.get("tmux_socket")
    return load_settings(**given)


def locate(
    ctx: typer.Context,
    session_name: str | None,
    socket_name: str | None,
    home: Path | None,
    db: Path | None,
) -> tuple[Settings, str, str | None, Server]:
    """Return the settings and the session this command is about (see `session_target`)."""
    settings = tmux_settings(
        ctx, session_name=session_name, tmux_socket=socket_name, home=home, db=db
    )
    name, socket = session_target(settings)
    return settings, name, socket, server_for(socket, name)


def server_for(socket: str | None, session_name: str) -> Server:
    """Return the tmux server, once the session name is known to be one that tmux accepts."""
    from stxbf.session.tmux import get_server, validate_session_name

    validate_session_name(session_name)
    return get_server(socket)


def stxbf_hint(settings: Settings, command: str, name: str, socket: str | None) -> str:
    """Return `stxbf tmux <command>` with every option needed to reach this session and data."""
    from stxbf.settings import Settings as Defaults
    from stxbf.settings import default_home

    words = ["stxbf", "tmux", command]
    if socket:
        words += ["--socket-name", socket]
    if name != Defaults.model_fields["session_name"].default:
        words += ["--session-name", name]
    if settings.home.absolute() != default_home().absolute():
        words += ["--home", str(settings.home.absolute())]
    if settings.db is not None:
        words += ["--db", str(settings.db.absolute())]
    return shlex.join(words)


def say(text: str) -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)
