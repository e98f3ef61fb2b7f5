"""`stxbf run`: the backfill in the foreground, as the tmux runner pane and cron execute it, and
what it shows while it works.

On a terminal the run draws a live panel; without one (cron, a pipe) it prints a plain progress
line every 30 s. Either way it ends with a closing report. The driver (`cli/driver.py`) sets up
the data directory, the log and the signals, as it does for `stxbf verify`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

from stxbf.cli.common import console, err_console, stdout_is_terminal
from stxbf.cli.driver import Driver, params_from
from stxbf.cli.options import (
    ApiUrl,
    Concurrency,
    Db,
    GiveUpAfter,
    Home,
    LogLevel,
    LogLevelChoice,
    MaxIterations,
    MaxPages,
    MaxRequests,
    RequestTimeout,
    Rpm,
    SettleHours,
    Source,
    SourceChoice,
    TargetDays,
    Verify,
)
from stxbf.codes import Phase
from stxbf.errors import StxbfError
from stxbf.words import plural, utc_iso

if TYPE_CHECKING:
    from stxbf.runner import RunReport
    from stxbf.settings import Settings
    from stxbf.snapshot import ProgressSnapshot


def run(
    target_days: int | None = TargetDays,
    max_pages: int | None = MaxPages,
    max_iterations: int | None = MaxIterations,
    max_requests: int | None = MaxRequests,
    concurrency: int | None = Concurrency,
    rpm: float | None = Rpm,
    api_url: str | None = ApiUrl,
    home: Path | None = Home,
    db: Path | None = Db,
    give_up_after: float | None = GiveUpAfter,
    request_timeout: float | None = RequestTimeout,
    log_level: LogLevelChoice | None = LogLevel,
    settle_hours: float | None = SettleHours,
    source: SourceChoice | None = Source,
    verify: bool = Verify,
) -> None:
    """Backfill transactions into DuckDB until the target range is verified.

    Resumable: run it again after any interruption and it continues where it stopped. The API key
    comes from STXBF_API_KEY or HIRO_API_KEY in the environment, never from the command line.

    Exit codes: 0 target reached, 1 error, 2 usage, 3 stopped before the target, 4 another run
    holds the lock, 65 a damaged database (every block is read first; nothing is fetched), 75 the
    API's quota ran out, 130 interrupted.
    """
    from stxbf.settings import load_settings

    settings = load_settings(
        target_days=target_days,
        max_pages=max_pages,
        max_iterations=max_iterations,
        max_requests=max_requests,
        concurrency=concurrency,
        rpm=rpm,
        api_url=api_url,
        home=home,
        db=db,
        give_up_after=give_up_after,
        request_timeout=request_timeout,
        log_level=log_level,
        settle_hours=settle_hours,
        source=source,
    )
    report = execute_and_record(settings, verify=verify)
    render_report(report)
    raise typer.Exit(int(report.exit_code))


def execute_and_record(settings: Settings, *, verify: bool = False) -> RunReport:
    """Run the backfill; under a supervisor (the tmux runner pane), also leave it how the run ended.

    An exit code alone cannot tell an API outage (worth another try) from a database error (not):
    both are 1. So the run writes a `RunEnding`, with the error's class and whether a later try can
    fix it, to the file the supervisor names in its environment.
    """
    from stxbf.session.supervise import RUN_ENDING_ENV, RunEnding, write_run_ending

    ending_file = os.environ.get(RUN_ENDING_ENV)
    try:
        report = execute(settings, verify=verify)
    except StxbfError as exc:
        if ending_file:
            write_run_ending(Path(ending_file), RunEnding.of_error(exc))
        raise
    if ending_file:
        write_run_ending(Path(ending_file), RunEnding(exit_code=int(report.exit_code)))
    return report


def execute(
    settings: Settings,
    *,
    transport: Any = None,
    interactive: bool | None = None,
    verify: bool = False,
) -> RunReport:
    """Run the backfill in the foreground: the live panel on a terminal, a plain line without."""
    from stxbf.runner import Runner

    params = params_from(settings, verify=verify)
    interactive = stdout_is_terminal() if interactive is None else interactive
    view = LiveView() if interactive else PlainView()
    days = plural(params.target_days, "day")
    started = f"{days} from {params.api_url} into {params.db_path}"
    return Driver("run", view).drive(
        settings, params, Runner.run, started=started, transport=transport
    )


# -- what the run shows -------------------------------------------------------------------------


def render_report(report: RunReport) -> None:
    snap = report.snapshot
    target = console if report.exit_code in (0, 3) else err_console
    if snap is not None:
        target.print(
            f"Progress: {snap.days_verified}/{plural(snap.target_days, 'day')} "
            f"({100.0 * snap.days_verified / max(1, snap.target_days):.1f}%) · "
            f"{plural(snap.transactions_stored, 'transaction')} stored · "
            f"{plural(snap.counters.pages, 'page')}, {snap.counters.responses_429} answered 429, "
            f"{plural(snap.counters.errors, 'error')}",
            soft_wrap=True,
        )
    if snap is not None and snap.quota_remaining is not None:
        of = f" of {snap.quota_limit:,.0f}" if snap.quota_limit is not None else ""
        needed = (
            f"; the rest of the range needs about {snap.requests_needed:,}"
            if snap.requests_needed
            else ""
        )
        target.print(
            f"Monthly quota: {snap.quota_remaining:,.0f}{of} requests left{needed}",
            soft_wrap=True,
        )
    checked = report.verification
    if checked is not None:
        target.print(
            f"Verified: {plural(checked.windows_checked, 'window')} checked · "
            f"{checked.windows_changed:,} changed · {plural(checked.rows_added, 'row')} added · "
            f"{checked.rows_removed:,} removed",
            soft_wrap=True,
        )
    target.print(f"stxbf run: {report.message} (exit {int(report.exit_code)})", soft_wrap=True)


def progress_line(snap: ProgressSnapshot) -> str:
    """Return the line a run without a terminal prints every 30 s (into cron mail, a log)."""
    limit = f"{snap.limit_rpm:.0f}" if snap.limit_rpm else "∞"
    # The database's total and the range's are different things: side by side, not a fraction.
    expected = f" (range ~{snap.expected_total:,})" if snap.expected_total is not None else ""
    stalled = _not_progressing(snap, time.time())
    rate = f"{snap.rate_rpm:.0f}/{limit} req/min" if stalled is None else f"rate — ({stalled})"
    if snap.counters.requests == 0:  # nothing sent yet: no rate to speak of
        rate = f"rate — (limit {limit}/min)"
    return (
        f"{snap.days_verified}/{plural(snap.target_days, 'day')} verified · "
        f"{snap.transactions_stored:,} tx stored{expected} · "
        f"{plural(snap.counters.pages, 'page')} · {rate} · 429s {snap.counters.responses_429} · "
        f"errors {snap.counters.errors} · ETA {_eta_text(snap, stalled)} · {snap.phase}"
    )


def _not_progressing(snap: ProgressSnapshot, now: float) -> str | None:
    """Say why no pages are arriving, or return None while they are. A rate and an ETA would
    describe the past then, so the view shows the reason instead."""
    from stxbf.snapshot import backing_off

    if backing_off(snap.phase, snap.backoff_until, now):
        return "backing off"
    if snap.phase in (Phase.FAILED, Phase.STOPPED, Phase.INTERRUPTED):
        return snap.phase
    return None


def _eta_text(snap: ProgressSnapshot, stalled: str | None) -> str:
    from stxbf.words import fmt_duration

    if snap.phase == Phase.FINISHED:
        return "done"
    return fmt_duration(snap.eta_seconds) if stalled is None else f"— ({stalled})"


def iso_time(moment: datetime) -> Text:
    """Write the runner pane's log time as the log file and every message write it (utc_iso),
    not as rich's locale-dependent `[12/07/26 14:18:25]`."""
    return Text(utc_iso(moment.timestamp()))


class OneLineFormatter(logging.Formatter):
    """Formats console records on one line; a traceback goes to the log file, never the screen."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class PlainView:
    """Shows a run without a terminal (cron): a timestamped line every 30 s, no control codes."""

    interval = 30.0

    def __init__(self) -> None:
        self._last = 0.0

    def log_handler(self) -> logging.Handler:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.INFO)
        handler.setFormatter(
            OneLineFormatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
        return handler

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def update(self, snap: ProgressSnapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and snap.exit_code is None:
            return
        self._last = now
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(f"{stamp} progress {progress_line(snap)}", flush=True)


class LiveView:
    """Shows a run on a terminal as a rich live panel: days, transactions, rate and limit, ETA."""

    def __init__(self) -> None:
        from rich.live import Live

        self._snap: ProgressSnapshot | None = None
        self._live = Live(console=console, refresh_per_second=4, get_renderable=self._render)

    def log_handler(self) -> logging.Handler:
        from rich.logging import RichHandler

        handler = RichHandler(
            console=console,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            log_time_format=iso_time,
        )
        handler.setFormatter(OneLineFormatter("%(message)s"))
        handler.setLevel(logging.WARNING)
        return handler

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def update(self, snap: ProgressSnapshot) -> None:
        self._snap = snap

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        from stxbf.cli.render import describe_last_error

        snap = self._snap
        if snap is None:
            return "[dim]stxbf: starting…[/]"
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        days = snap.days_verified
        bar = ProgressBar(total=max(1, snap.target_days), completed=days, width=40)
        percent = 100.0 * days / max(1, snap.target_days)
        table.add_row("Days verified", f"{days}/{snap.target_days} ({percent:.1f}%)")
        table.add_row("", bar)
        expected = f" (the range: ~{snap.expected_total:,})" if snap.expected_total else ""
        table.add_row("Transactions", f"{snap.transactions_stored:,} stored{expected}")
        table.add_row("Pages", f"{snap.counters.pages:,} ({snap.counters.requests:,} requests)")
        now = time.time()
        stalled = _not_progressing(snap, now)
        limit = f"{snap.limit_rpm:.0f}" if snap.limit_rpm else "unthrottled"
        rate = f"{snap.rate_rpm:.0f} req/min (limit {limit})"
        if snap.counters.requests == 0:
            rate = f"— (no request sent yet; limit {limit})"
        table.add_row("Rate", rate if stalled is None else f"— ({stalled}; limit {limit})")
        table.add_row(
            "429 / errors / retries",
            f"{snap.counters.responses_429} / {snap.counters.errors} / {snap.counters.retries}",
        )
        table.add_row("ETA", _eta_text(snap, stalled))
        status = snap.phase
        if snap.phase == Phase.BACKING_OFF and snap.backoff_until:
            status += f" ({max(0.0, snap.backoff_until - now):.0f}s)"
        table.add_row("Status", status)
        if snap.last_error:
            text, recovered = describe_last_error(
                snap.last_error, snap.last_error_at, snap.last_progress_at, now
            )
            table.add_row("Last error", Text(text, style="dim" if recovered else "yellow"))
        return table
