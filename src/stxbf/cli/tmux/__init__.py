"""`stxbf tmux`: run the backfill in tmux, where it survives SSH disconnects and closed terminals.

Bare `stxbf tmux` attaches to the session, creating it first if needed; `start`, `attach`,
`stop`, `restart` and `status` do one thing each, one module each. `start`, `restart` (and bare
`stxbf tmux`) take every option of `stxbf run` (stxbf.cli.tmux.passthrough); the work is done in
stxbf.session.backfill.

Which session: `--socket-name` / `--session-name` (or STXBF_TMUX_SOCKET / STXBF_SESSION_NAME)
when given, else what `stxbf tmux start` recorded beside the database, else tmux's default server
and `stx-backfill`. A start (or restart) with no flags also repeats the last start's options.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from stxbf.cli.common import WholeSummaries, session_target
from stxbf.cli.options import SessionName, SocketName
from stxbf.cli.tmux import attach, restart, start, status, stop
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
from stxbf.cli.tmux.passthrough import with_run_options

app = typer.Typer(
    help="Run the backfill in tmux: survives SSH disconnects; runner on top, live monitor below.",
    no_args_is_help=False,
    cls=WholeSummaries,
)


@app.callback(invoke_without_command=True)
@with_run_options
def tmux(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    inhibit: InhibitChoice = Inhibit,
    interval: float = Interval,
    startup_timeout: float = StartupTimeout,
    **run_options: Any,
) -> None:
    """Attach to the backfill session, creating it first if it does not exist (the smart default).

    Takes every option of `stxbf run`. Inside tmux, switches the client instead of nesting;
    without a terminal, creates the session detached, or reports the runner's state (exit 8 when
    the runner pane has ended with an error).
    """
    from stxbf.cli.tmux.passthrough import split_run_options
    from stxbf.session.tmux import attach as attach_to
    from stxbf.session.tmux import find_session

    ctx.obj = {"session_name": session_name, "tmux_socket": socket_name}
    if ctx.invoked_subcommand is not None:
        return
    overrides, _ = split_run_options(run_options)
    settings = tmux_settings(ctx, **overrides)
    name, socket = session_target(settings)
    server = server_for(socket, name)
    if find_session(server, name) is None:
        values = {"inhibit": inhibit, "interval": interval, **run_options}
        plan = start.plan_start(ctx, session_name=None, socket_name=None, values=values)
        start.start_backfill_here(plan, startup_timeout=startup_timeout, attach_after=True)
        return
    if sys.stdin.isatty():
        raise typer.Exit(attach_to(server, name))
    report = status.tmux_status(settings, name, socket, server)
    say(
        f"Session '{name}': {report.label}. "
        f"Attach from a terminal with: {stxbf_hint(settings, 'attach', name, socket)}"
    )
    raise typer.Exit(report.exit_code)


app.command("start")(start.start)
app.command("attach")(attach.attach)
app.command("stop")(stop.stop)
app.command("restart")(restart.restart)
app.command("status")(status.status)
