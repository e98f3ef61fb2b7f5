"""`stxbf status`: how far the backfill is, answered even while `stxbf run` writes, and with
`--watch` the live monitor that the tmux session's bottom pane runs.

The monitor only ever reads: the runner's progress snapshot while it runs, the database (briefly,
read-only) when nothing runs, and the log file. It never takes the database lock from a runner.
On a terminal it redraws a dashboard (`cli/render.py`); into a pipe or a file, where a live panel
cannot redraw, it prints one plain line per refresh.

Exit codes (for `stxbf status && build-dashboards`), from stxbf.codes: 0 complete (or reached the
chain's start), 3 incomplete, 5 running, 6 stalled, 7 not started, 65 database problem,
69 degraded, 75 rate-limited; 1 error; 64 usage (never 2, so no usage error reads as a state).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

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
    """Return `build_status` bound to the settings' files and target (`stxbf metrics` too)."""
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
    """Report an error of `status` itself as one line on stderr, and with `--json` as one JSON
    object too."""
    if as_json:
        record = {"schema": 1, "state": "error", "exit_code": int(code), "error": exc.message}
        typer.echo(json.dumps({**record, "hint": exc.hint}, indent=2))
    raise StxbfError(exc.message, hint=exc.hint, exit_code=code)


def show_status(report: StatusReport) -> None:
    """Print the `stxbf status` view, then when windows were checked and where they came from."""
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
    """Redraw until Ctrl+C or until the reader of a pipe leaves; with `--json`, print NDJSON."""
    with contextlib.suppress(KeyboardInterrupt):
        run_monitor(
            build,
            log_path=log_path,
            console=console,
            interval=interval,
            as_json=as_json,
            stop=reader_gone,
        )


# -- the live monitor (`--watch`) ---------------------------------------------------------------


Frame = Callable[["StatusReport | None", "str | None"], None]  # draws the report, or the error


def plain_line(report: StatusReport | None, *, error: str | None, now: float) -> str:
    """Return the line `status --watch` prints per refresh without a terminal (a pipe, a log)."""
    from stxbf.cli.render import days_text, last_error_of, rate_and_eta
    from stxbf.words import fmt_count

    stamp = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if report is None:
        return f"{stamp} cannot read status: {error}"
    parts = [days_text(report), report.label, f"{fmt_count(report.transactions)} tx"]
    if report.runner.alive:
        rate, eta = rate_and_eta(report, now)
        parts += [f"rate {rate}", f"ETA {eta}"]
    if (last := last_error_of(report, now)) is not None:
        parts.append(f"last error {last[0]}")
    return f"{stamp} " + " · ".join(parts)


def run_monitor(
    build: Callable[[], StatusReport],
    *,
    log_path: Path | None,
    console: Console,
    interval: float = 10.0,
    iterations: int | None = None,
    log_lines: int = 30,
    as_json: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Redraw every `interval` seconds until interrupted, until `stop()` says the reader has left,
    or for `iterations` frames (in tests). With `as_json` it prints, per refresh, the object
    `stxbf status --json` prints on one line (NDJSON), flushed so that a reader sees each at once.
    """
    from rich.live import Live

    from stxbf.cli.render import render_dashboard
    from stxbf.logs import tail

    if as_json:

        def print_json(report: StatusReport | None, error: str | None) -> None:
            record = report.to_dict() if report is not None else _error_record(error)
            console.file.write(json.dumps(record) + "\n")
            console.file.flush()

        _every(interval, iterations, build, print_json, stop)
        return
    if not console.is_terminal:

        def print_line(report: StatusReport | None, error: str | None) -> None:
            line = plain_line(report, error=error, now=time.time())
            console.print(line, markup=False, highlight=False, soft_wrap=True)
            console.file.flush()

        _every(interval, iterations, build, print_line, stop)
        return
    with Live(console=console, auto_refresh=False, vertical_overflow="crop") as live:

        def redraw(report: StatusReport | None, error: str | None) -> None:
            lines = tail(log_path, log_lines) if log_path is not None else []
            dashboard = render_dashboard(
                report,
                error=error,
                log_lines=lines,
                width=console.width,
                height=console.height,
                interval=interval,
            )
            live.update(dashboard, refresh=True)

        _every(interval, iterations, build, redraw, stop)


def _error_record(error: str | None) -> dict[str, object]:
    """Return the record of a refresh whose report could not be built, shaped as the errors of
    `status --json`."""
    from stxbf.report.status import SCHEMA

    return {"schema": SCHEMA, "state": "error", "error": error}


def _every(
    interval: float,
    iterations: int | None,
    build: Callable[[], StatusReport],
    frame: Frame,
    stop: Callable[[], bool],
) -> None:
    """Build and draw a frame, then sleep. A report that cannot be built is drawn as its error."""
    count = 0
    while (iterations is None or count < iterations) and not stop():
        try:
            report, error = build(), None
        except StxbfError as exc:
            report, error = None, exc.message
        frame(report, error)
        count += 1
        if (iterations is not None and count >= iterations) or stop():
            break
        time.sleep(interval)
