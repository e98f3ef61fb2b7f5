"""`stxbf tmux restart`: stop the session (the runner checkpoints), start it as the last did."""

from __future__ import annotations

from typing import Any

import typer

from stxbf.cli.options import SessionName, SocketName
from stxbf.cli.tmux.common import Inhibit, Interval, StartupTimeout, say, server_for
from stxbf.cli.tmux.passthrough import with_run_options
from stxbf.cli.tmux.start import Detach, plan_start, start_backfill_here
from stxbf.cli.tmux.stop import Timeout


@with_run_options
def restart(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    inhibit: str = Inhibit,
    interval: float = Interval,
    startup_timeout: float = StartupTimeout,
    detach: bool = Detach,
    timeout: float = Timeout,
    **run_options: Any,
) -> None:
    """Stop the session if it runs (the runner checkpoints), then start it again with the
    socket, session and options of the last start; a flag given overrides one.

    The remedy for a stalled backfill. Takes every option of `stxbf run`, as `start` does.
    """
    from stxbf.session.backfill import stop_backfill
    from stxbf.session.tmux import find_session

    values = {"inhibit": inhibit, "interval": interval, **run_options}
    plan = plan_start(ctx, session_name=session_name, socket_name=socket_name, values=values)
    settings = plan.settings
    name = settings.session_name
    server = server_for(settings.tmux_socket, name)
    if find_session(server, name) is not None:
        say("Stopping the runner so it checkpoints…")
        result = stop_backfill(server, session_name=name, paths=settings.paths, timeout=timeout)
        code = result.runner_exit
        say(f"Runner {'stopped' if code is None else f'exited with code {code}'}.")
    start_backfill_here(plan, startup_timeout=startup_timeout, attach_after=not detach)
