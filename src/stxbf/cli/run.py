"""`stxbf run`: the backfill in the foreground (what the tmux runner pane and cron execute)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import stdout_is_terminal
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
from stxbf.cli.run_end import ending_of, log_run_end, on_signal, stop_signals, stop_view
from stxbf.cli.views import LiveView, PlainView, render_report
from stxbf.errors import StxbfError
from stxbf.words import plural

if TYPE_CHECKING:
    from stxbf.runner import RunParams, RunReport
    from stxbf.settings import Settings

log = logging.getLogger("stxbf.cli")


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
    """Run; under a supervisor (the tmux runner pane), also leave it how the run ended.

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
        max_requests=settings.max_requests,
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
    from stxbf.session.supervise import RESTARTS_ENV

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

    from stxbf.logs import configure_logging
    from stxbf.paths import prepare_home
    from stxbf.runner import Runner

    params = params_from(settings, verify=verify)
    os.umask(0o077)  # everything stxbf creates in its data dir is the user's alone
    prepare_home(settings.home)
    interactive = stdout_is_terminal() if interactive is None else interactive
    view = LiveView() if interactive else PlainView()
    secret = [params.api_key] if params.api_key else []
    console_handler = view.log_handler()
    configure_logging(
        settings.log_path, level=settings.log_level, console=console_handler, secrets=secret
    )
    log.info(
        "stxbf run (pid %d) started: %s from %s into %s",
        os.getpid(),
        plural(params.target_days, "day"),
        params.api_url,
        params.db_path,
    )
    try:
        runner = Runner(params, transport=transport, view=view)

        async def main() -> RunReport:
            loop = asyncio.get_running_loop()
            signals = stop_signals()
            for signum in signals:
                loop.add_signal_handler(signum, on_signal, runner, signal.Signals(signum).name)
            try:
                return await runner.run()
            finally:
                for signum in signals:
                    loop.remove_signal_handler(signum)

        view.start()
        try:
            report = asyncio.run(main())
        finally:
            stop_view(view)
    except BaseException as exc:
        code, reason = ending_of(exc)
        log_run_end(code, reason, console_handler)
        raise
    log_run_end(int(report.exit_code), report.message, console_handler)
    return report
