"""`stxbf health`: is the backfill alive and making progress? A verdict, its reasons, exit codes.

Exit codes (stxbf.codes): 0 healthy (a runner making progress, or a complete backfill that needs
none), 1 not running, 2 stalled, 3 database problem, 4 configuration error, 69 degraded,
75 rate-limited, 64 usage. `--json` prints one JSON object on every path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from stxbf.cli.common import console
from stxbf.cli.options import (
    Db,
    Home,
    JudgedTargetDays,
    SessionName,
    SocketName,
    StallSeconds,
)
from stxbf.codes import Verdict
from stxbf.errors import ConfigError

if TYPE_CHECKING:
    from stxbf.report.health import HealthReport

_VERDICT_STYLES: dict[str, str] = {  # keyed by Verdict (a str)
    Verdict.HEALTHY: "bold green",
    Verdict.NOT_RUNNING: "bold yellow",
    Verdict.RATE_LIMITED: "bold yellow",
    Verdict.DEGRADED: "bold yellow",
}

ExpectRunning = typer.Option(
    False,
    "--expect-running",
    help="A runner must be alive, even when the backfill is complete (the tmux workflow).",
)
AsJson = typer.Option(
    False, "--json", help="Print the checks as one JSON object (schema in docs/operations.md)."
)


def health(
    target_days: int | None = JudgedTargetDays,
    stall_seconds: float = StallSeconds,
    expect_running: bool = ExpectRunning,
    as_json: bool = AsJson,
    session_name: str | None = SessionName,
    socket_name: str | None = SocketName,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Check the runner process, its heartbeat, error and 429 rate, database, disk and tmux session.

    Exit code: 0 healthy, 1 not running, 2 stalled, 3 database problem, 4 configuration error,
    69 degraded (the API keeps failing), 75 rate-limited (waiting out a stated limit or quota),
    64 usage error.
    """
    report = _check(
        target_days=target_days,
        stall_seconds=stall_seconds,
        expect_running=expect_running,
        session_name=session_name,
        socket_name=socket_name,
        home=home,
        db=db,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_health(report)
    raise typer.Exit(report.exit_code)


def _check(
    *,
    target_days: int | None,
    stall_seconds: float,
    expect_running: bool,
    session_name: str | None,
    socket_name: str | None,
    home: Path | None,
    db: Path | None,
) -> HealthReport:
    """Build the health report. Settings that cannot be loaded become its configuration error."""
    from stxbf.cli.common import session_target
    from stxbf.report.database import DatabaseCache
    from stxbf.report.health import build_health, config_error
    from stxbf.session.tmux import session_exists
    from stxbf.settings import load_settings

    try:
        settings = load_settings(
            home=home,
            db=db,
            target_days=target_days,
            session_name=session_name,
            tmux_socket=socket_name,
        )
    except ConfigError as exc:
        return config_error(exc.message)
    name, socket = session_target(settings)  # flags, else what `stxbf tmux start` recorded
    return build_health(
        settings.paths,
        target_days=settings.target_days,
        stall_seconds=stall_seconds,
        expect_running=expect_running,
        tmux_probe=lambda: session_exists(socket, name),
        cache=DatabaseCache(path=settings.paths.summary),
    )


def _render_health(report: HealthReport) -> None:
    from stxbf.cli.render import target_text
    from stxbf.report.health import CheckStatus

    marks = {
        CheckStatus.OK: ("✓", "green"),
        CheckStatus.WARN: ("!", "yellow"),
        CheckStatus.FAIL: ("✗", "bold red"),
        CheckStatus.SKIP: ("-", "dim"),
    }
    head = Text("Health: ")
    head.append(
        report.verdict.replace("_", " ").upper(),
        style=_VERDICT_STYLES.get(report.verdict, "bold red"),
    )
    head.append(f"  (exit {report.exit_code})", style="dim")
    console.print(head)
    for reason in report.reasons:
        console.print(Text(f"  {reason}"))
    if report.target_days is not None:
        target = target_text(
            report.target_days, report.run_target_days, running=report.runner_alive
        )
        console.print(Text(f"  Target: {target}"))
    if report.hint:
        console.print(Text(f"  What to do: {report.hint}"))
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(style="bold")
    table.add_column()
    for check in report.checks:
        mark, style = marks.get(check.status, ("?", ""))
        table.add_row(Text(mark, style=style), check.name, Text(check.detail))
    console.print()
    console.print(table)
