"""`stxbf tmux`: run the backfill in tmux, where it survives SSH disconnects and closed terminals.

Bare `stxbf tmux` attaches to the session, creating it first if needed; `start`, `attach`, `stop`
and `status` do one thing each. The runner's flags are resolved here (flag > env > config file) and
passed explicitly, because a tmux server that already runs has its own, older environment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from stxbf.cli.common import console, err_console
from stxbf.cli.run import ApiUrl, Concurrency, Db, Home, MaxIterations, MaxPages, Rpm, TargetDays
from stxbf.errors import LockHeld, OpsError

if TYPE_CHECKING:
    from libtmux import Server

    from stxbf.ops.status import RunnerState
    from stxbf.ops.tmux import SessionInfo
    from stxbf.settings import Settings

app = typer.Typer(
    help="Run the backfill in tmux: survives SSH disconnects; runner on top, live monitor below.",
    no_args_is_help=False,
)

KEY_WAIT_SECONDS = 15.0

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


def _common(
    ctx: typer.Context, session_name: str | None, socket_name: str | None
) -> dict[str, Any]:
    """Session and socket given to this subcommand, else to `stxbf tmux` itself."""
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    return {
        "session_name": session_name or parent.get("session_name"),
        "tmux_socket": socket_name or parent.get("tmux_socket"),
    }


def _server(settings: Settings) -> Server:
    from stxbf.ops.tmux import get_server, validate_session_name

    validate_session_name(settings.session_name)
    return get_server(settings.tmux_socket)


def _run_flags(settings: Settings) -> list[str]:
    """`stxbf run` flags reproducing these settings, whatever the tmux server's environment."""
    flags = [
        "--home", str(settings.home.absolute()),
        "--db", str(settings.db_path.absolute()),
        "--api-url", settings.api_url,
        "--target-days", str(settings.target_days),
        "--max-pages", str(settings.max_pages),
        "--max-iterations", str(settings.max_iterations),
        "--concurrency", str(settings.concurrency),
        "--give-up-after", f"{settings.give_up_after:g}",
        "--settle-hours", f"{settings.settle_hours:g}",
    ]  # fmt: skip
    if settings.rpm is not None:
        flags += ["--rpm", f"{settings.rpm:g}"]
    return flags


def _start(settings: Settings, *, inhibit: str, interval: float, attach_after: bool) -> None:
    from stxbf.ops.inhibit import choose_inhibitor
    from stxbf.ops.launch import remove_stale_key_files, write_key_file
    from stxbf.ops.tmux import attach, attach_hint, find_session, start_session

    server = _server(settings)
    if find_session(server, settings.session_name) is not None:
        raise OpsError(
            f"Session '{settings.session_name}' already exists. Use 'attach' to reconnect."
        )
    runner = _runner_state(settings.db_path)
    if runner.alive:
        raise LockHeld(
            f"another stxbf run (pid {runner.pid}) is already backfilling into "
            f"{settings.db_path}; watch it with `stxbf status`",
            pid=runner.pid,
        )
    inhibitor = choose_inhibitor(inhibit)
    python = sys.executable
    key_dir = settings.home / "run"
    key_file = None
    if settings.api_key is not None and settings.api_key.get_secret_value():
        remove_stale_key_files(key_dir)
        key_file = write_key_file(key_dir, settings.api_key.get_secret_value())
    launch = [python, "-m", "stxbf.ops.launch"]
    if key_file is not None:
        launch += ["--key-file", str(key_file)]
    runner_argv = [
        *launch,
        "--",
        *inhibitor.wrap([python, "-m", "stxbf", "run", *_run_flags(settings)]),
    ]
    monitor_argv = [
        python, "-m", "stxbf", "status", "--watch", "--interval", f"{interval:g}",
        "--home", str(settings.home.absolute()), "--db", str(settings.db_path.absolute()),
        "--target-days", str(settings.target_days),
    ]  # fmt: skip
    notes = [f"stxbf: {inhibitor.note}"] if inhibitor.note else []
    try:
        start_session(
            server,
            session_name=settings.session_name,
            runner_argv=runner_argv,
            monitor_argv=monitor_argv,
            start_directory=Path.cwd(),
            runner_notes=notes,
            tags={"db": str(settings.db_path.absolute()), "inhibitor": inhibitor.name},
        )
    except BaseException:
        if key_file is not None:
            key_file.unlink(missing_ok=True)
        raise
    if key_file is not None:
        _wait_for_key_pickup(key_file)
    if inhibitor.note:
        err_console.print(f"note: {inhibitor.note}", soft_wrap=True, markup=False)
    console.print(
        f"Started tmux session '{settings.session_name}': runner on top, monitor below "
        f"(sleep inhibitor: {inhibitor.name}).",
        soft_wrap=True,
        markup=False,
    )
    if attach_after and sys.stdin.isatty():
        raise typer.Exit(attach(server, settings.session_name))
    console.print(
        f"Attach with: stxbf tmux attach   (or: {attach_hint(server, settings.session_name)})",
        soft_wrap=True,
        markup=False,
    )


def _wait_for_key_pickup(key_file: Path) -> None:
    """The launcher deletes the key file as it reads it; never leave it behind."""
    deadline = time.monotonic() + KEY_WAIT_SECONDS
    while key_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if key_file.exists():
        key_file.unlink(missing_ok=True)
        err_console.print(
            "warning: the runner did not pick up the API key; it runs without one", soft_wrap=True
        )


@app.callback(invoke_without_command=True)
def tmux(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    target_days: int | None = TargetDays,
    max_pages: int | None = MaxPages,
    max_iterations: int | None = MaxIterations,
    concurrency: int | None = Concurrency,
    rpm: float | None = Rpm,
    api_url: str | None = ApiUrl,
    home: Path | None = Home,
    db: Path | None = Db,
    inhibit: str = Inhibit,
    interval: float = Interval,
) -> None:
    """Attach to the backfill session, creating it first if it does not exist (the smart default).

    Inside tmux, switches the client instead of nesting; without a terminal, creates the session
    detached and prints how to attach.
    """
    ctx.obj = {"session_name": session_name, "tmux_socket": socket_name}
    if ctx.invoked_subcommand is not None:
        return
    from stxbf.ops.tmux import attach, attach_hint, find_session
    from stxbf.settings import load_settings

    settings = load_settings(
        session_name=session_name, tmux_socket=socket_name, target_days=target_days,
        max_pages=max_pages, max_iterations=max_iterations, concurrency=concurrency, rpm=rpm,
        api_url=api_url, home=home, db=db,
    )  # fmt: skip
    server = _server(settings)
    if find_session(server, settings.session_name) is None:
        _start(settings, inhibit=inhibit, interval=interval, attach_after=True)
        return
    if sys.stdin.isatty():
        raise typer.Exit(attach(server, settings.session_name))
    console.print(
        f"Session '{settings.session_name}' is running. "
        f"Attach from a terminal with: {attach_hint(server, settings.session_name)}",
        soft_wrap=True,
        markup=False,
    )


@app.command()
def start(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    target_days: int | None = TargetDays,
    max_pages: int | None = MaxPages,
    max_iterations: int | None = MaxIterations,
    concurrency: int | None = Concurrency,
    rpm: float | None = Rpm,
    api_url: str | None = ApiUrl,
    home: Path | None = Home,
    db: Path | None = Db,
    inhibit: str = Inhibit,
    interval: float = Interval,
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Never attach (for scripts and cron)."
    ),
) -> None:
    """Create the session (fails if it exists); attach when standard input is a terminal."""
    from stxbf.settings import load_settings

    settings = load_settings(
        **_common(ctx, session_name, socket_name), target_days=target_days, max_pages=max_pages,
        max_iterations=max_iterations, concurrency=concurrency, rpm=rpm, api_url=api_url,
        home=home, db=db,
    )  # fmt: skip
    _start(settings, inhibit=inhibit, interval=interval, attach_after=not detach)


@app.command("attach")
def attach_cmd(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
) -> None:
    """Attach to the running session (fails if it does not exist)."""
    from stxbf.ops.tmux import attach, attach_hint, find_session
    from stxbf.settings import load_settings

    settings = load_settings(**_common(ctx, session_name, socket_name))
    server = _server(settings)
    if find_session(server, settings.session_name) is None:
        raise OpsError(
            f"Session '{settings.session_name}' does not exist. Use 'start' to create it."
        )
    if not sys.stdin.isatty() and not os.environ.get("TMUX"):
        raise OpsError(
            "attach needs a terminal; from one, run: " + attach_hint(server, settings.session_name)
        )
    raise typer.Exit(attach(server, settings.session_name))


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
    """Stop cleanly: signal the runner (it checkpoints and exits), then close the session."""
    from stxbf.ops.launch import remove_stale_key_files
    from stxbf.ops.tmux import describe_session, stop_session
    from stxbf.settings import load_settings

    settings = load_settings(**_common(ctx, session_name, socket_name), home=home, db=db)
    server = _server(settings)
    info = describe_session(server, settings.session_name)
    db_path = Path(info.tags["db"]) if info and info.tags.get("db") else settings.db_path
    runner = _runner_state(db_path)
    pid = runner.pid if runner.alive else None
    if pid is not None:
        console.print(
            f"Stopping runner (pid {pid}) so it checkpoints…", soft_wrap=True, markup=False
        )
    result = stop_session(server, settings.session_name, runner_pid=pid, timeout=timeout)
    remove_stale_key_files(settings.home / "run")
    for note in result.notes:
        err_console.print(f"note: {note}", soft_wrap=True, markup=False)
    how = f"exited with code {result.runner_exit}" if result.runner_exit is not None else "stopped"
    console.print(
        f"Runner {how}. Session '{settings.session_name}' closed.", soft_wrap=True, markup=False
    )


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    as_json: bool = typer.Option(False, "--json", help="Print as one JSON object."),
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Show the session, its panes, the runner's pid and liveness, uptime and the sleep inhibitor.

    Exit code 0 when the session exists, 1 when it does not.
    """
    from stxbf.ops.tmux import describe_session
    from stxbf.settings import load_settings

    settings = load_settings(**_common(ctx, session_name, socket_name), home=home, db=db)
    server = _server(settings)
    info = describe_session(server, settings.session_name)
    db_path = Path(info.tags["db"]) if info and info.tags.get("db") else settings.db_path
    runner = _runner_state(db_path)
    now = time.time()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "session": asdict(info) if info else None,
                    "socket": settings.tmux_socket or "default",
                    "runner": asdict(runner),
                    "runner_uptime": (now - runner.started_at)
                    if runner.alive and runner.started_at
                    else None,
                    "inhibitor": info.tags.get("inhibitor") if info else None,
                    "db_path": str(db_path),
                },
                indent=2,
            )
        )
    elif info is None:
        err_console.print(
            f"Session '{settings.session_name}' does not exist. Use 'start' to create it.",
            soft_wrap=True,
            markup=False,
        )
    else:
        _render_session(info, runner, socket=settings.tmux_socket, now=now)
    raise typer.Exit(0 if info is not None else 1)


def _runner_state(db_path: Path) -> RunnerState:
    from stxbf import state
    from stxbf.ops.status import detect_runner, runner_info_path

    return detect_runner(
        lock_path=db_path.with_name(db_path.name + ".lock"),
        info_path=runner_info_path(db_path),
        snapshot=state.read(db_path.with_name(db_path.name + ".progress.json")),
        now=time.time(),
    )


def _render_session(
    info: SessionInfo, runner: RunnerState, *, socket: str | None, now: float
) -> None:
    from stxbf.ops.monitor import fmt_duration

    created = f"created {fmt_duration(now - info.created)} ago" if info.created else ""
    console.print(
        f"Session '{info.name}' on socket '{socket or 'default'}': {created}, "
        f"attached: {'yes' if info.attached else 'no'}",
        soft_wrap=True,
        markup=False,
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
    if runner.pid is None:
        console.print("Runner: not started yet", soft_wrap=True, markup=False)
    else:
        alive = (
            Text("alive", style="green") if runner.alive else Text("not running", style="yellow")
        )
        line = Text(f"Runner: pid {runner.pid} ")
        line.append(alive)
        if runner.alive and runner.started_at:
            line.append(f", up {fmt_duration(now - runner.started_at)}")
        if runner.phase:
            line.append(f", phase {runner.phase}")
        if runner.heartbeat_age is not None:
            line.append(f", heartbeat {fmt_duration(runner.heartbeat_age)} ago")
        console.print(line)
    console.print(
        f"Sleep inhibitor: {info.tags.get('inhibitor', 'unknown')}", soft_wrap=True, markup=False
    )
