"""`stxbf tmux start`: create the session, wait for the runner's first progress, attach."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import err_console
from stxbf.cli.options import SessionName, SocketName
from stxbf.cli.passthrough import with_run_options
from stxbf.cli.tmux.common import (
    Inhibit,
    InhibitChoice,
    Interval,
    StartupTimeout,
    say,
    server_for,
    stxbf_hint,
    tmux_settings,
)

if TYPE_CHECKING:
    from stxbf.ops.startup import Startup
    from stxbf.settings import Settings

Detach = typer.Option(False, "--detach", "-d", help="Never attach (for scripts and cron).")


@dataclass(frozen=True)
class HowToStart:
    """The options of `start` that are not run options (bare `stxbf tmux` takes them too)."""

    inhibit: str
    interval: float
    startup_timeout: float
    attach_after: bool


@with_run_options
def start(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    inhibit: InhibitChoice = Inhibit,
    interval: float = Interval,
    startup_timeout: float = StartupTimeout,
    detach: bool = Detach,
    **run_options: Any,
) -> None:
    """Create the session (fails if it exists), wait for the runner's first progress, attach.

    Takes every option of `stxbf run`. Attaches only when standard input is a terminal. When the
    runner ends before its first progress, prints its last lines and exits with its code.
    """
    from stxbf.cli.passthrough import split_run_options

    overrides, run_only = split_run_options(run_options)
    settings = tmux_settings(ctx, session_name=session_name, tmux_socket=socket_name, **overrides)
    how = HowToStart(inhibit, interval, startup_timeout, attach_after=not detach)
    start_backfill_here(settings, run_only, how)


def start_backfill_here(settings: Settings, run_only: dict[str, Any], how: HowToStart) -> None:
    """Start the session for `settings`; attach, or else report how the runner's start went."""
    from stxbf.cli.passthrough import run_flags
    from stxbf.ops.inhibit import choose_inhibitor
    from stxbf.ops.session import monitor_argv, start_backfill
    from stxbf.ops.startup import watch_startup
    from stxbf.ops.tmux import attach, attach_hint

    name, socket, paths = settings.session_name, settings.tmux_socket, settings.paths
    server = server_for(socket, name)
    inhibitor = choose_inhibitor(how.inhibit)
    started = start_backfill(
        server,
        session_name=name,
        socket_name=socket,
        paths=paths,
        run_flags=run_flags(settings, run_only),
        monitor=monitor_argv(paths, target_days=settings.target_days, interval=how.interval),
        inhibitor=inhibitor,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        start_directory=Path.cwd(),
    )
    if started.key_picked_up is False:
        err_console.print(
            "warning: the runner did not pick up the API key; it runs without one", soft_wrap=True
        )
    if inhibitor.note:
        err_console.print(f"note: {inhibitor.note}", soft_wrap=True, markup=False)
    say(
        f"Started tmux session '{name}': runner on top, monitor below "
        f"(sleep inhibitor: {inhibitor.name})."
    )
    if how.attach_after and sys.stdin.isatty():
        raise typer.Exit(attach(server, name))
    timeout = how.startup_timeout
    startup = watch_startup(
        server, started.runner_pane, paths, since=started.started_at, timeout=timeout
    )
    _render_startup(startup, settings, timeout=timeout, tmux_hint=attach_hint(server, name))


def _render_startup(
    startup: Startup, settings: Settings, *, timeout: float, tmux_hint: str
) -> None:
    """What the runner did first; a runner that ended before any progress ends `start` too."""
    from stxbf.ops.startup import StartupState

    name, socket = settings.session_name, settings.tmux_socket
    attach_cmd = stxbf_hint(settings, "attach", name, socket)
    if startup.state == StartupState.DIED:
        err_console.print(
            f"stxbf: error: the runner exited with code {startup.exit_code} before its first "
            "progress. Its last lines:",
            soft_wrap=True,
            markup=False,
        )
        for line in startup.last_lines:
            err_console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
        err_console.print(
            f"  Read it all with: {attach_cmd}; "
            f"close it with: {stxbf_hint(settings, 'stop', name, socket)}",
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(startup.exit_code or 1)
    if startup.state == StartupState.FINISHED:
        say("The runner finished at once: the target is already reached.")
    elif startup.state == StartupState.STARTING:
        say(f"The runner has not heard from the API after {timeout:g} s; it keeps trying.")
    else:
        say("The runner is backfilling.")
    say(f"Attach with: {attach_cmd}   (or: {tmux_hint})")
