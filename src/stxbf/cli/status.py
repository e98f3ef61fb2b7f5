"""`stxbf status`: how far the backfill is, answered even while `stxbf run` writes (and `--watch`).

Exit codes (for `stxbf status && build-dashboards`), from stxbf.codes: 0 complete (or reached the
chain's start), 3 incomplete, 5 running, 6 stalled, 7 not started, 65 database problem,
69 degraded, 75 rate-limited; 1 error; 64 usage (never 2, so no usage error reads as a state).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from stxbf.cli.common import console, reader_gone
from stxbf.cli.options import Db, Home, JudgedTargetDays, StallSeconds
from stxbf.codes import ExitCode, StatusState
from stxbf.errors import ConfigError, StxbfError

if TYPE_CHECKING:
    from stxbf.report.status import StatusReport
    from stxbf.settings import Settings

AsJson = typer.Option(
    False, "--json", help="Print the status as one JSON object (schema in docs/operations.md)."
)
Watch = typer.Option(
    False,
    "--watch",
    "-w",
    help="Keep redrawing a live monitor (read-only) until Ctrl+C; with --json, one JSON "
    "object a line per refresh.",
)
Interval = typer.Option(10, "--interval", min=0.5, help="Seconds between redraws.")


def status(
    target_days: int | None = JudgedTargetDays,
    as_json: bool = AsJson,
    watch: bool = Watch,
    interval: float = Interval,
    stall_seconds: float = StallSeconds,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Show progress: days verified, transactions, wallets, rate, ETA and a per-day coverage strip.

    Exit code: 0 complete or reached chain start, 3 incomplete, 5 running, 6 stalled, 7 not started,
    65 database problem, 69 degraded, 75 rate-limited, 64 usage error.
    """
    from stxbf.report.database import DatabaseCache
    from stxbf.settings import load_settings

    try:
        settings = load_settings(home=home, db=db, target_days=target_days)
    except ConfigError as exc:
        _fail(exc, ExitCode.MONITOR_USAGE, as_json=as_json)
    build = status_builder(settings, stall_seconds=stall_seconds)
    if watch:
        _watch(
            functools.partial(build, cache=DatabaseCache()),
            log_path=settings.log_path,
            interval=interval,
            as_json=as_json,
        )
        return
    try:
        report = build(cache=DatabaseCache(path=settings.paths.summary))
    except StxbfError as exc:
        _fail(exc, exc.exit_code, as_json=as_json)
    _show(report, as_json=as_json)


def status_builder(settings: Settings, *, stall_seconds: float) -> Callable[..., StatusReport]:
    """`build_status` judged against the settings' target; `stxbf metrics` shares it."""
    from stxbf.report.status import build_status

    return functools.partial(
        build_status,
        settings.paths,
        target_days=settings.target_days,
        stall_seconds=stall_seconds,
    )


def _show(report: StatusReport, *, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif report.state == StatusState.DATABASE_PROBLEM:  # as every command reports a bad file
        raise StxbfError(report.reason or "", hint=report.hint, exit_code=ExitCode.DATABASE)
    else:
        show_status(report)
    raise typer.Exit(report.exit_code)


def _fail(exc: StxbfError, code: ExitCode, *, as_json: bool) -> NoReturn:
    """An error of `status` itself: one line on stderr, and with `--json` still one JSON object."""
    if as_json:
        record = {"schema": 1, "state": "error", "exit_code": int(code), "error": exc.message}
        typer.echo(json.dumps({**record, "hint": exc.hint}, indent=2))
    raise StxbfError(exc.message, hint=exc.hint, exit_code=code)


def show_status(report: StatusReport) -> None:
    """What `stxbf status` prints on a terminal: the view, then when and where windows came from."""
    from stxbf.cli.render import render_status
    from stxbf.words import fmt_duration

    strip_width = console.width if console.is_terminal else 80  # a chart, not a line to unwrap
    console.print(render_status(report, width=strip_width))
    if report.oldest_check_at is not None:
        age = fmt_duration(max(0.0, report.checked_at - report.oldest_check_at))
        console.print(f"Oldest window check: {age} ago (`stxbf verify` re-counts every window)")
    if report.sources:
        counts = ", ".join(f"{name} {count:,}" for name, count in sorted(report.sources.items()))
        run = f" (the run's source: {report.run_source})" if report.run_source else ""
        console.print(f"Windows by source: {counts}{run}")


def _watch(
    build: Callable[[], StatusReport], *, log_path: Path, interval: float, as_json: bool
) -> None:
    """Redraw until Ctrl+C or until the reader of a pipe leaves; `--json`: NDJSON lines."""
    from stxbf.cli.monitor import run_monitor

    with contextlib.suppress(KeyboardInterrupt):
        run_monitor(
            build,
            log_path=log_path,
            console=console,
            interval=interval,
            as_json=as_json,
            stop=reader_gone,
        )
