"""`stxbf health`: is the backfill alive and making progress? A verdict, its reasons, exit codes.

Exit codes (stxbf.codes): 0 healthy (a runner making progress, or a complete backfill that needs
none), 1 not running, 2 stalled, 3 database problem, 4 configuration error, 75 rate-limited,
64 usage. `--json` prints one JSON object on every path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from stxbf.cli.common import console
from stxbf.codes import Verdict
from stxbf.errors import ConfigError

if TYPE_CHECKING:
    from stxbf.ops.health import HealthReport

_MARKS = {
    "ok": ("✓", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✗", "bold red"),
    "skip": ("-", "dim"),
}
_VERDICT_STYLES: dict[str, str] = {  # keyed by Verdict (a str)
    Verdict.HEALTHY: "bold green",
    Verdict.NOT_RUNNING: "bold yellow",
    Verdict.RATE_LIMITED: "bold yellow",
}


def health(
    stall_seconds: float = typer.Option(
        600.0,
        "--stall-seconds",
        min=1,
        help="A runner that got no page and committed no window for this long is stalled.",
    ),
    expect_running: bool = typer.Option(
        False,
        "--expect-running",
        help="A runner must be alive, even when the backfill is complete (the tmux workflow).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the checks as one JSON object (schema in docs/operations.md)."
    ),
    session_name: str | None = typer.Option(
        None, "--session-name", help="tmux session to look for (default stx-backfill)."
    ),
    socket_name: str | None = typer.Option(
        None, "--socket-name", help="tmux server socket name (env STXBF_TMUX_SOCKET)."
    ),
    home: Path | None = typer.Option(None, "--home", help="Data directory (env STXBF_HOME)."),
    db: Path | None = typer.Option(
        None, "--db", help="Database file (default: <home>/stxbf.duckdb)."
    ),
) -> None:
    """Check the runner process, its heartbeat, error and 429 rate, database, disk and tmux session.

    Exit code: 0 healthy, 1 not running, 2 stalled, 3 database problem, 4 configuration error,
    75 rate-limited (waiting out a stated limit or quota), 64 usage error.
    """
    from stxbf.ops.database import DatabaseCache, summary_cache_path
    from stxbf.ops.health import VERDICTS, Check, HealthReport, build_health

    try:
        from stxbf.settings import load_settings

        settings = load_settings(
            home=home, db=db, session_name=session_name, tmux_socket=socket_name
        )
    except ConfigError as exc:
        report = HealthReport(
            verdict=str(Verdict.CONFIG_ERROR),
            exit_code=VERDICTS[Verdict.CONFIG_ERROR],
            checked_at=time.time(),
            reasons=[exc.message],
            checks=[Check("config", "fail", exc.message)],
        )
    else:
        from stxbf.cli.tmux import session_target

        name, socket = session_target(settings)  # flags, else what `stxbf tmux start` recorded
        report = build_health(
            db_path=settings.db_path,
            progress_path=settings.progress_path,
            lock_path=settings.lock_path,
            target_days=settings.target_days,
            runner_path=settings.runner_path,
            stall_seconds=stall_seconds,
            expect_running=expect_running,
            tmux_probe=lambda: _session_present(name, socket),
            cache=DatabaseCache(path=summary_cache_path(settings.db_path)),
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_health(report)
    raise typer.Exit(report.exit_code)


def _session_present(name: str, socket: str | None) -> bool | None:
    """Whether the tmux session exists; None when tmux is not installed (never starts a server)."""
    from stxbf.errors import TmuxMissing
    from stxbf.ops.tmux import find_session, get_server

    try:
        server = get_server(socket)
    except TmuxMissing:
        return None
    return find_session(server, name) is not None


def _render_health(report: HealthReport) -> None:
    head = Text("Health: ")
    head.append(
        report.verdict.replace("_", " ").upper(),
        style=_VERDICT_STYLES.get(report.verdict, "bold red"),
    )
    head.append(f"  (exit {report.exit_code})", style="dim")
    console.print(head)
    for reason in report.reasons:
        console.print(Text(f"  {reason}"))
    if report.hint:
        console.print(Text(f"  What to do: {report.hint}"))
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(style="bold")
    table.add_column()
    for check in report.checks:
        mark, style = _MARKS.get(check.status, ("?", ""))
        table.add_row(Text(mark, style=style), check.name, Text(check.detail))
    console.print()
    console.print(table)
