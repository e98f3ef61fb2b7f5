"""`stxbf tmux status`: the session, its panes and the runner's real state; `--json` for scripts.

Exit code: 0 running (or finished with the target reached), 1 no session, 8 the runner pane has
ended with an error or was killed (stxbf.session.backfill.TMUX_STATES).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from stxbf.cli.common import console, err_console
from stxbf.cli.options import Db, Home, SessionName, SocketName
from stxbf.cli.tmux.common import locate, say, stxbf_hint

if TYPE_CHECKING:
    from libtmux import Server

    from stxbf.session.backfill import TmuxStatus
    from stxbf.settings import Settings

AsJson = typer.Option(False, "--json", help="Print as one JSON object.")


def status(
    ctx: typer.Context,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    as_json: bool = AsJson,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Show the session, its panes, the runner's state, pid, uptime, restarts and inhibitor.

    Exit code: 0 running (or finished with the target reached), 1 no session, 8 the runner pane
    has ended with an error or was killed.
    """
    settings, name, socket, server = locate(ctx, session_name, socket_name, home, db)
    report = tmux_status(settings, name, socket, server)
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


def tmux_status(settings: Settings, name: str, socket: str | None, server: Server) -> TmuxStatus:
    from stxbf.session.backfill import build_tmux_status

    return build_tmux_status(server, session_name=name, socket_name=socket, paths=settings.paths)


def _render_status(report: TmuxStatus) -> None:
    from stxbf.words import fmt_duration

    info, now = report.session, report.checked_at
    assert info is not None
    created = f"created {fmt_duration(now - info.created)} ago" if info.created else ""
    say(
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
    line = Text("State: ")
    line.append(report.label, style="green" if report.exit_code == 0 else "red")
    if report.restarts:
        line.append(f", restarted {report.restarts} times after outages")
    console.print(line)
    _render_runner(report)
    say(f"Sleep inhibitor: {report.inhibitor or 'unknown'}")


def _render_runner(report: TmuxStatus) -> None:
    from stxbf.words import fmt_duration

    runner = report.runner
    if runner.pid is None:
        say("Runner: not running" if report.runner_exit is not None else "Runner: not started yet")
        return
    line = Text(f"Runner: pid {runner.pid} ")
    line.append(
        Text("alive", style="green") if runner.alive else Text("not running", style="yellow")
    )
    if report.runner_uptime is not None:
        line.append(f", up {fmt_duration(report.runner_uptime)}")
    if runner.phase:
        line.append(f", phase {runner.phase}")
    if runner.heartbeat_age is not None:
        line.append(f", heartbeat {fmt_duration(runner.heartbeat_age)} ago")
    console.print(line)
