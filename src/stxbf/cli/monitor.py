"""The live monitor, which the tmux session's bottom pane and `stxbf status --watch` run.

It only ever reads: the runner's progress snapshot while it runs, the database (briefly,
read-only) when nothing runs, and the log file. It never takes the database lock from a runner.
On a terminal it redraws a dashboard (`cli/render.py`); into a pipe or a file, where a live panel
cannot redraw, it prints one plain line per refresh.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from stxbf.cli.render import days_text, last_error_of, rate_and_eta, render_dashboard
from stxbf.errors import StxbfError
from stxbf.logs import tail
from stxbf.report.status import SCHEMA, StatusReport
from stxbf.words import fmt_count

Frame = Callable[[StatusReport | None, str | None], None]  # draws (report, or the error instead)


def plain_line(report: StatusReport | None, *, error: str | None, now: float) -> str:
    """Return the line `status --watch` prints per refresh without a terminal (a pipe, a log)."""
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
