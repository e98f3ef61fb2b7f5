"""`stxbf tmux start`: create the session, wait for the runner's first progress, attach."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import err_console, session_target
from stxbf.cli.options import SessionName, SocketName
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

if TYPE_CHECKING:
    from stxbf.session.backfill import Startup
    from stxbf.settings import Settings

Detach = typer.Option(False, "--detach", "-d", help="Never attach (for scripts and cron).")


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

    Takes every option of `stxbf run`. With no flags, starts again as the last start did (its
    socket, session and options, recorded beside the database); a flag given overrides one.
    Attaches only when standard input is a terminal. When the runner ends before its first
    progress, prints its last lines and exits with its code.
    """
    values = {"inhibit": inhibit, "interval": interval, **run_options}
    plan = plan_start(ctx, session_name=session_name, socket_name=socket_name, values=values)
    start_backfill_here(plan, startup_timeout=startup_timeout, attach_after=not detach)


# what locates the record itself: neither taken from it nor kept in it
LOCATING_OPTIONS = ("home", "db")


@dataclass(frozen=True)
class StartPlan:
    """Holds what a start runs with: the options given now over the last start's (SessionRecord)."""

    settings: Settings  # with the session and socket decided
    run_only: dict[str, Any]
    inhibit: str
    interval: float
    options: dict[str, Any]  # recorded for the next start: the given ones over the reused ones
    reused: dict[str, Any]  # the last start's options this one takes over
    where: list[str]  # --socket-name / --session-name taken from the record, as flags
    key_was_given: bool  # the last start handed the runner an API key


def plan_start(
    ctx: typer.Context,
    *,
    session_name: str | None,
    socket_name: str | None,
    values: dict[str, Any],
) -> StartPlan:
    """Resolve the settings and options of a start: flags given now, else the last start's, else the
    usual order (env > config file > default). `values` are the run options and the start
    options a later start repeats (`inhibit`, `interval`), as parsed."""
    from stxbf.cli.tmux.passthrough import split_run_options
    from stxbf.session.backfill import recorded_session

    given = {name: value for name, value in values.items() if _given(ctx, name)}
    located = tmux_settings(ctx, **{k: v for k, v in given.items() if k in LOCATING_OPTIONS})
    record = recorded_session(located.paths)
    reused = {
        name: value
        for name, value in (record.options if record is not None else {}).items()
        if name in values and name not in given and name not in LOCATING_OPTIONS
    }
    merged = {**values, **reused}
    overrides, run_only = split_run_options(merged)
    settings = tmux_settings(ctx, session_name=session_name, tmux_socket=socket_name, **overrides)
    name, socket = session_target(settings)
    where = []  # the session and socket taken from the record, said aloud like the options
    if socket is not None and socket != settings.tmux_socket:
        where += ["--socket-name", socket]
    if name != settings.session_name:
        where += ["--session-name", name]
    return StartPlan(
        settings=settings.model_copy(update={"session_name": name, "tmux_socket": socket}),
        run_only=run_only,
        inhibit=str(merged["inhibit"]),
        interval=float(merged["interval"]),
        options={
            key: _jsonable(value)
            for key, value in {**reused, **given}.items()
            if key not in LOCATING_OPTIONS
        },
        reused=reused,
        where=where,
        key_was_given=record is not None and record.api_key_given,
    )


def _given(ctx: typer.Context, name: str) -> bool:
    """Return whether `name` was given on this command line (not by default or the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def start_backfill_here(plan: StartPlan, *, startup_timeout: float, attach_after: bool) -> None:
    """Start the session for the plan; attach, or else report how the runner's start went."""
    from stxbf.cli.tmux.passthrough import run_flags
    from stxbf.paths import prepare_home
    from stxbf.session.backfill import monitor_argv, start_backfill, watch_startup
    from stxbf.session.inhibit import choose_inhibitor
    from stxbf.session.tmux import attach, attach_hint

    settings = plan.settings
    name, socket, paths = settings.session_name, settings.tmux_socket, settings.paths
    prepare_home(paths.home)  # as `stxbf run` does, before any tmux server exists
    if paths.db.parent.absolute() != paths.home.absolute():
        prepare_home(paths.db.parent)
    server = server_for(socket, name)
    _say_what_is_reused(plan)
    inhibitor = choose_inhibitor(plan.inhibit)
    started = start_backfill(
        server,
        session_name=name,
        socket_name=socket,
        paths=paths,
        run_flags=run_flags(settings, plan.run_only),
        monitor=monitor_argv(paths, target_days=settings.target_days, interval=plan.interval),
        inhibitor=inhibitor,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        start_directory=Path.cwd(),
        options=plan.options,
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
    if attach_after and sys.stdin.isatty():
        raise typer.Exit(attach(server, name))
    startup = watch_startup(
        server, started.runner_pane, paths, since=started.started_at, timeout=startup_timeout
    )
    _render_startup(startup, settings, timeout=startup_timeout, tmux_hint=attach_hint(server, name))


def _say_what_is_reused(plan: StartPlan) -> None:
    """Name the last start's options this start repeats, and a key it no longer has."""
    from stxbf.cli.tmux.passthrough import option_flags

    words = plan.where + option_flags(plan.reused)
    if words:
        say(
            "Restarting with the options of the last start: "
            f"{shlex.join(words)} (a flag given now overrides one)."
        )
    if plan.key_was_given and plan.settings.api_key is None:
        err_console.print(
            "warning: the last start passed an API key; none is set now (STXBF_API_KEY or "
            "HIRO_API_KEY), so the runner runs without one",
            soft_wrap=True,
        )


def _render_startup(
    startup: Startup, settings: Settings, *, timeout: float, tmux_hint: str
) -> None:
    """Print what the runner did first; a runner that ended before any progress ends `start` too."""
    from stxbf.session.backfill import StartupState

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
