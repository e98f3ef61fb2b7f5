"""`stxbf tmux`: run the backfill in tmux, where it survives SSH disconnects and closed terminals.

Bare `stxbf tmux` attaches to the session, creating it first if needed; `start`, `attach`, `stop`
and `status` do one thing each. `start` (and bare `stxbf tmux`) take every option of `stxbf run`
(stxbf.cli.passthrough); the work is done in stxbf.ops.session.

Which session: `--socket-name` / `--session-name` (or STXBF_TMUX_SOCKET / STXBF_SESSION_NAME)
when given, else what `stxbf tmux start` recorded beside the database, else tmux's default server
and `stx-backfill`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from stxbf.cli.common import console, err_console, session_target
from stxbf.cli.passthrough import with_run_options
from stxbf.cli.run import Db, Home
from stxbf.errors import OpsError

if TYPE_CHECKING:
    from libtmux import Server

    from stxbf.ops.session import Startup, TmuxStatus
    from stxbf.settings import Settings

app = typer.Typer(
    help="Run the backfill in tmux: survives SSH disconnects; runner on top, live monitor below.",
    no_args_is_help=False,
)

SessionName = typer.Option(
    None,
    "--session-name",
    help="tmux session name (default stx-backfill; env STXBF_SESSION_NAME).",
)
SocketName = typer.Option(
    None, "--socket-name", help="tmux socket name, for a private server (env STXBF_TMUX_SOCKET)."
)
Inhibit = typer.Option(
    "auto",
    "--inhibit",
    help="Sleep inhibitor: auto (caffeinate on macOS, systemd-inhibit on Linux when usable), "
    "caffeinate, systemd or none.",
)
Interval = typer.Option(10.0, "--interval", min=0.5, help="Seconds between monitor redraws.")
StartupTimeout = typer.Option(
    120.0,
    "--startup-timeout",
    min=0,
    help="Seconds to wait for the runner's first answer from the API before returning.",
)


def _settings(ctx: typer.Context, **given: Any) -> Settings:
    """Settings with the session and socket given here or to `stxbf tmux` itself."""
    from stxbf.settings import load_settings

    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    given["session_name"] = given.get("session_name") or parent.get("session_name")
    given["tmux_socket"] = given.get("tmux_socket") or parent.get("tmux_socket")
    return load_settings(**given)


def _locate(
    ctx: typer.Context,
    session_name: str | None,
    socket_name: str | None,
    home: Path | None,
    db: Path | None,
) -> tuple[Settings, str, str | None, Server]:
    """The settings, and the session this command is about (see `session_target`)."""
    settings = _settings(ctx, session_name=session_name, tmux_socket=socket_name, home=home, db=db)
    name, socket = session_target(settings)
    return settings, name, socket, _server(socket, name)


def _server(socket: str | None, session_name: str) -> Server:
    from stxbf.ops.tmux import get_server, validate_session_name

    validate_session_name(session_name)
    return get_server(socket)


def stxbf_hint(settings: Settings, command: str, name: str, socket: str | None) -> str:
    """`stxbf tmux <command>` with every option needed to reach this same session and data."""
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


def _start(
    settings: Settings,
    run_only: dict[str, Any],
    *,
    inhibit: str,
    interval: float,
    attach_after: bool,
    startup_timeout: float,
) -> None:
    from stxbf.cli.passthrough import run_flags
    from stxbf.ops.inhibit import choose_inhibitor
    from stxbf.ops.session import monitor_argv, start_backfill, watch_startup
    from stxbf.ops.tmux import attach, attach_hint

    name, socket = settings.session_name, settings.tmux_socket
    server = _server(socket, name)
    inhibitor = choose_inhibitor(inhibit)
    paths = settings.paths
    started = start_backfill(
        server,
        session_name=name,
        socket_name=socket,
        paths=paths,
        run_flags=run_flags(settings, run_only),
        monitor=monitor_argv(paths, target_days=settings.target_days, interval=interval),
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
    _say(
        f"Started tmux session '{name}': runner on top, monitor below "
        f"(sleep inhibitor: {inhibitor.name})."
    )
    if attach_after and sys.stdin.isatty():
        raise typer.Exit(attach(server, name))
    startup = watch_startup(
        server, started.runner_pane, paths, since=started.started_at, timeout=startup_timeout
    )
    _render_startup(startup, settings, timeout=startup_timeout, tmux_hint=attach_hint(server, name))


def _render_startup(
    startup: Startup, settings: Settings, *, timeout: float, tmux_hint: str
) -> None:
    """What the runner did first; a runner that ended before any progress ends `start` too."""
    name, socket = settings.session_name, settings.tmux_socket
    attach_cmd = stxbf_hint(settings, "attach", name, socket)
    if startup.state == "died":
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
    if startup.state == "finished":
        _say("The runner finished at once: the target is already reached.")
    elif startup.state == "starting":
        _say(f"The runner has not heard from the API after {timeout:g} s; it keeps trying.")
    else:
        _say("The runner is backfilling.")
    _say(f"Attach with: {attach_cmd}   (or: {tmux_hint})")


def _say(text: str) -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)


@app.callback(invoke_without_command=True)
@with_run_options
def tmux(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    inhibit: str = Inhibit,
    interval: float = Interval,
    startup_timeout: float = StartupTimeout,
    **run_options: Any,
) -> None:
    """Attach to the backfill session, creating it first if it does not exist (the smart default).

    Takes every option of `stxbf run`. Inside tmux, switches the client instead of nesting;
    without a terminal, creates the session detached, or reports the runner's state (exit 8 when
    the runner pane has ended with an error).
    """
    from stxbf.cli.passthrough import split_run_options
    from stxbf.ops.tmux import attach, find_session

    ctx.obj = {"session_name": session_name, "tmux_socket": socket_name}
    if ctx.invoked_subcommand is not None:
        return
    overrides, run_only = split_run_options(run_options)
    settings = _settings(ctx, **overrides)
    name, socket = session_target(settings)
    server = _server(socket, name)
    if find_session(server, name) is None:
        settings = settings.model_copy(update={"session_name": name, "tmux_socket": socket})
        _start(
            settings,
            run_only,
            inhibit=inhibit,
            interval=interval,
            attach_after=True,
            startup_timeout=startup_timeout,
        )
        return
    if sys.stdin.isatty():
        raise typer.Exit(attach(server, name))
    report = _status(settings, name, socket, server)
    _say(
        f"Session '{name}': {report.label}. "
        f"Attach from a terminal with: {stxbf_hint(settings, 'attach', name, socket)}"
    )
    raise typer.Exit(report.exit_code)


@app.command()
@with_run_options
def start(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    inhibit: str = Inhibit,
    interval: float = Interval,
    startup_timeout: float = StartupTimeout,
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Never attach (for scripts and cron)."
    ),
    **run_options: Any,
) -> None:
    """Create the session (fails if it exists), wait for the runner's first progress, attach.

    Takes every option of `stxbf run`. Attaches only when standard input is a terminal. When the
    runner ends before its first progress, prints its last lines and exits with its code.
    """
    from stxbf.cli.passthrough import split_run_options

    overrides, run_only = split_run_options(run_options)
    settings = _settings(ctx, session_name=session_name, tmux_socket=socket_name, **overrides)
    _start(
        settings,
        run_only,
        inhibit=inhibit,
        interval=interval,
        attach_after=not detach,
        startup_timeout=startup_timeout,
    )


@app.command("attach")
def attach_cmd(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Attach to the running session (fails if it does not exist)."""
    from stxbf.ops.tmux import attach, attach_hint, find_session

    _, name, _, server = _locate(ctx, session_name, socket_name, home, db)
    if find_session(server, name) is None:
        raise OpsError(f"Session '{name}' does not exist. Use 'start' to create it.")
    if not sys.stdin.isatty() and not os.environ.get("TMUX"):
        raise OpsError("attach needs a terminal; from one, run: " + attach_hint(server, name))
    raise typer.Exit(attach(server, name))


@app.command()
def stop(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    timeout: float = typer.Option(
        60.0, "--timeout", min=0, help="Seconds to let the runner checkpoint before SIGTERM."
    ),
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Stop cleanly: signal the runner (it checkpoints; no restart follows), close the session."""
    from stxbf.ops.session import stop_backfill

    settings, name, _, server = _locate(ctx, session_name, socket_name, home, db)
    _say("Stopping the runner so it checkpoints…")
    result = stop_backfill(server, session_name=name, paths=settings.paths, timeout=timeout)
    for note in result.notes:
        err_console.print(f"note: {note}", soft_wrap=True, markup=False)
    how = f"exited with code {result.runner_exit}" if result.runner_exit is not None else "stopped"
    pid = f" (pid {result.runner_pid})" if result.runner_pid is not None else ""
    _say(f"Runner{pid} {how}. Session '{name}' closed.")


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    as_json: bool = typer.Option(False, "--json", help="Print as one JSON object."),
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Show the session, its panes, the runner's state, pid, uptime, restarts and inhibitor.

    Exit code: 0 running (or finished with the target reached), 1 no session, 8 the runner pane
    has ended with an error or was killed.
    """
    settings, name, socket, server = _locate(ctx, session_name, socket_name, home, db)
    report = _status(settings, name, socket, server)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif report.session is None:
        err_console.print(
            f"Session '{name}' does not exist. Start it with: "
            f"{stxbf_hint(settings, 'start', name, socket)}",
            soft_wrap=True,
            markup=False,
        )
    else:
        _render_status(report)
    raise typer.Exit(report.exit_code)


def _status(settings: Settings, name: str, socket: str | None, server: Server) -> TmuxStatus:
    from stxbf.ops.session import build_tmux_status

    return build_tmux_status(server, session_name=name, socket_name=socket, paths=settings.paths)


def _render_status(report: TmuxStatus) -> None:
    from stxbf.ops.formats import fmt_duration

    info, runner, now = report.session, report.runner, report.checked_at
    assert info is not None
    created = f"created {fmt_duration(now - info.created)} ago" if info.created else ""
    _say(
        f"Session '{info.name}' on socket '{report.socket}': {created}, "
        f"attached: {'yes' if info.attached else 'no'}"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("pane", "role", "size", "state", "command"):
        table.add_column(column)
    for pane in info.panes:
        state = (
            Text(f"exited ({pane.dead_status})", style="yellow")
            if pane.dead
            else Text("running", style="green")
        )
        table.add_row(
            str(pane.index), pane.role, f"{pane.width}x{pane.height}", state, Text(pane.command)
        )
    console.print(table)
    style = "green" if report.exit_code == 0 else "red"
    line = Text("State: ")
    line.append(report.label, style=style)
    if report.restarts:
        line.append(f", restarted {report.restarts} times after outages")
    console.print(line)
    if runner.pid is None:
        _say("Runner: not running" if report.runner_exit is not None else "Runner: not started yet")
    else:
        alive = (
            Text("alive", style="green") if runner.alive else Text("not running", style="yellow")
        )
        line = Text(f"Runner: pid {runner.pid} ")
        line.append(alive)
        if report.runner_uptime is not None:
            line.append(f", up {fmt_duration(report.runner_uptime)}")
        if runner.phase:
            line.append(f", phase {runner.phase}")
        if runner.heartbeat_age is not None:
            line.append(f", heartbeat {fmt_duration(runner.heartbeat_age)} ago")
        console.print(line)
    _say(f"Sleep inhibitor: {report.inhibitor or 'unknown'}")
