"""`stxbf run`: the backfill in the foreground (what the tmux runner pane and cron execute)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import console, err_console, stdout_is_terminal
from stxbf.errors import ConfigError, StxbfError

if TYPE_CHECKING:
    from stxbf.runner import RunParams, RunReport
    from stxbf.settings import Settings
    from stxbf.state import ProgressSnapshot

log = logging.getLogger("stxbf.cli")

TargetDays = typer.Option(None, "--target-days", help="Days of history to backfill (default 365).")
MaxPages = typer.Option(None, "--max-pages", help="Page budget per iteration (default 5000).")
MaxIterations = typer.Option(
    None, "--max-iterations", help="Stop after N iterations; 0 = until the target (default 0)."
)
Concurrency = typer.Option(None, "--concurrency", help="Requests in flight at once (default 16).")
Rpm = typer.Option(
    None, "--rpm", help="Fix the request rate (per minute) instead of following the API's headers."
)
ApiUrl = typer.Option(None, "--api-url", help="Stacks API base URL (default https://api.hiro.so).")
Home = typer.Option(None, "--home", help="Data directory: database, log, lock (env STXBF_HOME).")
Db = typer.Option(None, "--db", help="DuckDB file (default $STXBF_HOME/stxbf.duckdb).")
Source = typer.Option(
    None,
    "--source",
    help="Where transactions come from: auto (/extended/v1/tx while it answers, then "
    "/extended/v3/transactions), v1 or v3 (env STXBF_SOURCE; default auto).",
)

GiveUpAfter = typer.Option(
    None,
    "--give-up-after",
    help="Seconds of failures before a request is abandoned (default 600).",
)


def run(
    target_days: int | None = TargetDays,
    max_pages: int | None = MaxPages,
    max_iterations: int | None = MaxIterations,
    concurrency: int | None = Concurrency,
    rpm: float | None = Rpm,
    api_url: str | None = ApiUrl,
    home: Path | None = Home,
    db: Path | None = Db,
    give_up_after: float | None = GiveUpAfter,
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", help="Seconds one HTTP request may take (default 20)."
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", help="Log file detail: DEBUG, INFO, WARNING or ERROR (default INFO)."
    ),
    settle_hours: float | None = typer.Option(
        None,
        "--settle-hours",
        help="Windows ending this close to the chain head stay open and are fetched again by "
        "every run (default 24; 0 = only the 2 h head window).",
    ),
    source: str | None = Source,
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Before reporting the target reached, re-count every verified window (as "
        "`stxbf verify`) and fetch again those that changed.",
    ),
) -> None:
    """Backfill transactions into DuckDB until the target range is verified.

    Resumable: run it again after any interruption and it continues where it stopped. The API key
    comes from STXBF_API_KEY or HIRO_API_KEY in the environment, never from the command line.
    Exit codes: 0 target reached, 1 error, 2 usage, 3 stopped before the target, 4 another run
    holds the lock, 130 interrupted. A damaged database file (every block is read at start) is
    refused with exit 1 before anything is fetched.
    """
    from stxbf.settings import load_settings

    settings = load_settings(
        target_days=target_days,
        max_pages=max_pages,
        max_iterations=max_iterations,
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
    """Run; under a supervisor (the tmux runner pane), also leave it the outcome to decide on.

    An exit code alone cannot tell an API outage (worth another try) from a database error (not):
    both are 1. So the run writes its outcome, with the error's class and whether a later try can
    fix it, to the file the supervisor names in its environment.
    """
    from stxbf.ops.supervise import OUTCOME_ENV, Outcome, write_outcome

    outcome_file = os.environ.get(OUTCOME_ENV)
    try:
        report = execute(settings, verify=verify)
    except StxbfError as exc:
        if outcome_file:
            write_outcome(Path(outcome_file), Outcome.of_error(exc))
        raise
    if outcome_file:
        write_outcome(Path(outcome_file), Outcome(exit_code=int(report.exit_code)))
    return report


def params_from(settings: Settings, *, verify: bool = False) -> RunParams:
    from stxbf.runner import RunParams
    from stxbf.settings import check_key_transport

    check_key_transport(settings)
    return RunParams(
        api_url=settings.api_url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        db_path=settings.db_path,
        lock_path=settings.lock_path,
        progress_path=settings.progress_path,
        runner_path=settings.runner_path,
        target_days=settings.target_days,
        max_pages=settings.max_pages,
        max_iterations=settings.max_iterations,
        concurrency=settings.concurrency,
        rpm=settings.rpm,
        request_timeout=settings.request_timeout,
        give_up_after=settings.give_up_after,
        restarts=supervisor_restarts(),
        settle_hours=settings.settle_hours,
        source=settings.source,
        verify=verify,
    )


def supervisor_restarts() -> int:
    """How many times the supervisor has started this run again (0 when not supervised)."""
    from stxbf.ops.supervise import RESTARTS_ENV

    try:
        return max(0, int(os.environ.get(RESTARTS_ENV, "0")))
    except ValueError:
        return 0


def execute(
    settings: Settings,
    *,
    transport: Any = None,
    interactive: bool | None = None,
    verify: bool = False,
) -> RunReport:
    """Set up the data dir, logging and signals, then run the backfill on a fresh event loop."""
    import asyncio

    from stxbf.ops.logs import configure_logging
    from stxbf.runner import Runner

    params = params_from(settings, verify=verify)
    os.umask(0o077)  # everything stxbf creates in its data dir is the user's alone
    _prepare_home(settings.home)
    interactive = stdout_is_terminal() if interactive is None else interactive
    view = LiveView() if interactive else PlainView()
    secret = [params.api_key] if params.api_key else []
    console_handler = view.log_handler()
    configure_logging(
        settings.log_path, level=settings.log_level, console=console_handler, secrets=secret
    )
    log.info(
        "stxbf run (pid %d) started: %d days from %s into %s",
        os.getpid(),
        params.target_days,
        params.api_url,
        params.db_path,
    )
    try:
        runner = Runner(params, transport=transport, view=view)

        async def main() -> RunReport:
            loop = asyncio.get_running_loop()
            signals = _stop_signals()
            for signum in signals:
                loop.add_signal_handler(signum, _on_signal, runner, signal.Signals(signum).name)
            try:
                return await runner.run()
            finally:
                for signum in signals:
                    loop.remove_signal_handler(signum)

        view.start()
        try:
            report = asyncio.run(main())
        finally:
            _stop_view(view)
    except BaseException as exc:
        code, reason = _ending_of(exc)
        log_run_end(code, reason, console_handler)
        raise
    log_run_end(int(report.exit_code), report.message, console_handler)
    return report


def _ending_of(exc: BaseException) -> tuple[int, str]:
    """The exit code and reason main() will report for an exception that ends the run."""
    from stxbf.errors import ExitCode, LockHeld, StxbfError

    if isinstance(exc, LockHeld):
        return int(exc.exit_code), f"refused: {exc.message}"
    if isinstance(exc, StxbfError):  # the hint too: whoever reads the log has no screen
        return int(exc.exit_code), f"{exc.message}; hint: {exc.hint}" if exc.hint else exc.message
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED), "interrupted"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else int(ExitCode.ERROR)
        return code, "exited"
    if isinstance(exc, Exception):
        log.error("unexpected error", exc_info=True)
        mark_logged(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return int(ExitCode.ERROR), f"internal error: {type(exc).__name__}: {first}"


def mark_logged(exc: BaseException) -> None:
    """Tell main() this exception's traceback is already in the log (above the run's end line)."""
    with contextlib.suppress(AttributeError):
        exc.stxbf_logged = True  # type: ignore[attr-defined]


def log_run_end(code: int, reason: str, console_handler: logging.Handler | None = None) -> None:
    """The log's last line for this run: exit code and reason, whatever the way out.

    The screen gets its own report (render_report, or main's error line), so the console handler
    is detached first: the end line is for the log file only.
    """
    from stxbf.errors import ExitCode

    if console_handler is not None:
        logging.getLogger("stxbf").removeHandler(console_handler)
    try:
        label = ExitCode(code).name.lower()
    except ValueError:
        label = "unknown"
    level = {0: logging.INFO, 3: logging.INFO, 4: logging.WARNING, 130: logging.WARNING}.get(
        code, logging.ERROR
    )
    log.log(level, "stxbf run (pid %d) ended: exit %d (%s): %s", os.getpid(), code, label, reason)


_signals_seen = 0


def _stop_signals() -> tuple[signal.Signals, ...]:
    """SIGINT and SIGTERM; and SIGHUP (tmux kill-session, a closed SSH terminal) unless it is
    ignored, as `nohup stxbf run &` asks: then a hang-up must not stop the run."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return signals
    return (*signals, signal.SIGHUP)


def _on_signal(runner: Any, name: str) -> None:
    global _signals_seen
    _signals_seen += 1
    if name == "SIGHUP":
        _leave_the_terminal()
    if _signals_seen > 1:
        err_console.print(f"stxbf: second {name}: stopping now (committed windows are safe)")
        log_run_end(130, f"second {name}: stopped at once (committed windows are safe)")
        os._exit(130)
    runner.request_stop(name)


_hung_up = False


def _leave_the_terminal() -> None:
    """After a hang-up the terminal is gone: writing to it would fail (EIO) and turn a clean stop
    into an error. The screen output goes nowhere from now on; the log file keeps everything."""
    global _hung_up
    _hung_up = True
    devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = devnull


def _stop_view(view: LiveView | PlainView) -> None:
    try:
        view.stop()
    except OSError:
        if not _hung_up:
            raise
    if _hung_up:  # the live display put the (dead) terminal back as stdout
        _leave_the_terminal()


def _prepare_home(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise ConfigError(f"data directory {home} is a file, not a directory")
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"data directory {home} is not writable")


def render_report(report: RunReport) -> None:
    snap = report.snapshot
    target = console if report.exit_code in (0, 3) else err_console
    if snap is not None:
        target.print(
            f"Progress: {snap.days_verified}/{snap.target_days} days "
            f"({100.0 * snap.days_verified / max(1, snap.target_days):.1f}%) · "
            f"{snap.transactions_stored:,} transactions stored · "
            f"{snap.counters.pages:,} pages, {snap.counters.responses_429} answered 429, "
            f"{snap.counters.errors} errors",
            soft_wrap=True,
        )
    checked = report.verification
    if checked is not None:
        target.print(
            f"Verified: {checked.windows_checked:,} windows checked · "
            f"{checked.windows_changed:,} changed · {checked.rows_added:,} rows added · "
            f"{checked.rows_removed:,} removed",
            soft_wrap=True,
        )
    target.print(f"stxbf run: {report.message} (exit {int(report.exit_code)})", soft_wrap=True)


# -- views -----------------------------------------------------------------------------------


def progress_line(snap: ProgressSnapshot) -> str:
    limit = f"{snap.limit_rpm:.0f}" if snap.limit_rpm else "∞"
    expected = f"/{snap.expected_total:,}" if snap.expected_total is not None else ""
    stalled = _not_progressing(snap, time.time())
    rate = f"{snap.rate_rpm:.0f}/{limit} req/min" if stalled is None else f"rate — ({stalled})"
    return (
        f"{snap.days_verified}/{snap.target_days} days verified · "
        f"{snap.transactions_stored:,}{expected} tx · {snap.counters.pages:,} pages · "
        f"{rate} · 429s {snap.counters.responses_429} · "
        f"errors {snap.counters.errors} · ETA {_eta_text(snap, stalled)} · {snap.phase}"
    )


def _not_progressing(snap: ProgressSnapshot, now: float) -> str | None:
    """Why no pages are arriving (then a rate and an ETA would describe the past), or None."""
    if snap.phase == "backing_off" or (snap.backoff_until is not None and snap.backoff_until > now):
        return "backing off"
    if snap.phase in ("failed", "stopped", "interrupted"):
        return snap.phase
    return None


def _eta_text(snap: ProgressSnapshot, stalled: str | None) -> str:
    from stxbf.ops.monitor import fmt_duration

    if snap.phase == "finished":
        return "done"
    return fmt_duration(snap.eta_seconds) if stalled is None else f"— ({stalled})"


class OneLineFormatter(logging.Formatter):
    """Console records stay one line: a traceback goes to the log file only (never the screen)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class PlainView:
    """Without a terminal (cron): a timestamped line every 30 s, no control codes."""

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
    """On a terminal: a rich live panel (days, transactions, rate vs limit, ETA)."""

    def __init__(self) -> None:
        from rich.live import Live

        self._snap: ProgressSnapshot | None = None
        self._live = Live(console=console, refresh_per_second=4, get_renderable=self._render)

    def log_handler(self) -> logging.Handler:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
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
        from rich.text import Text

        from stxbf.ops.monitor import describe_last_error

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
        expected = f" of ~{snap.expected_total:,}" if snap.expected_total is not None else ""
        table.add_row("Transactions", f"{snap.transactions_stored:,}{expected}")
        table.add_row("Pages", f"{snap.counters.pages:,} ({snap.counters.requests:,} requests)")
        now = time.time()
        stalled = _not_progressing(snap, now)
        limit = f"{snap.limit_rpm:.0f}" if snap.limit_rpm else "unthrottled"
        rate = f"{snap.rate_rpm:.0f} req/min (limit {limit})"
        table.add_row("Rate", rate if stalled is None else f"— ({stalled}; limit {limit})")
        table.add_row(
            "429 / errors / retries",
            f"{snap.counters.responses_429} / {snap.counters.errors} / {snap.counters.retries}",
        )
        table.add_row("ETA", _eta_text(snap, stalled))
        status = snap.phase
        if snap.phase == "backing_off" and snap.backoff_until:
            status += f" ({max(0.0, snap.backoff_until - now):.0f}s)"
        table.add_row("Status", status)
        if snap.last_error:
            text, recovered = describe_last_error(
                snap.last_error, snap.last_error_at, snap.last_progress_at, now
            )
            table.add_row("Last error", Text(text, style="dim" if recovered else "yellow"))
        return table
