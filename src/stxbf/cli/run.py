"""`stxbf run`: the backfill in the foreground (what the tmux runner pane and cron execute)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import stdout_is_terminal
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
from stxbf.cli.views import LiveView, PlainView, render_report
from stxbf.errors import StxbfError
from stxbf.words import plural

if TYPE_CHECKING:
    from stxbf.runner import RunReport
    from stxbf.settings import Settings


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
    """Run; under a supervisor (the tmux runner pane), also leave it the outcome to decide on.

    An exit code alone cannot tell an API outage (worth another try) from a database error (not):
    both are 1. So the run writes its outcome, with the error's class and whether a later try can
    fix it, to the file the supervisor names in its environment.
    """
    from stxbf.session.supervise import OUTCOME_ENV, Outcome, write_outcome

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
