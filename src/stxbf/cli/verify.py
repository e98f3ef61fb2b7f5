"""`stxbf verify`: read every stored block, re-count every verified window against the API, and
fetch the open and incomplete ones (the settle period, the head) again whole.

Exit codes: 0 every window matches the API (changed ones were fetched again), 1 error, 2 usage,
3 a changed window could not be settled (run it again), 4 another run holds the lock, 65 a damaged
database (with the windows to fetch again), 75 the API's quota ran out, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import console, err_console
from stxbf.cli.driver import Driver, params_from
from stxbf.cli.options import (
    ApiUrl,
    Concurrency,
    Db,
    GiveUpAfter,
    Home,
    Rpm,
    Source,
    SourceChoice,
)
from stxbf.codes import ExitCode
from stxbf.errors import StoreError, StxbfError
from stxbf.words import utc_iso

if TYPE_CHECKING:
    from stxbf.runner import VerifyReport
    from stxbf.settings import Settings


def verify(
    concurrency: int | None = Concurrency,
    rpm: float | None = Rpm,
    api_url: str | None = ApiUrl,
    home: Path | None = Home,
    db: Path | None = Db,
    source: SourceChoice | None = Source,
    give_up_after: float | None = GiveUpAfter,
    as_json: bool = typer.Option(
        False, "--json", help="Print the outcome as one JSON object (schema in docs/cli.md)."
    ),
) -> None:
    """Check the file's every block, then re-count every verified window; fetch changed ones again.

    One `limit=1` request per window compares the API's total and first transaction with the
    stored ones. Open windows (the settle period and the head, where a reorg can swap rows
    without changing a count) and incomplete ones are fetched again whole, as the next run would.
    Exit code: 0 all match (after re-fetching what changed), 1 error, 3 some window
    could not be settled, 4 a run holds the lock, 65 a damaged database, 130 interrupted.
    """
    from stxbf.settings import load_settings

    try:
        settings = load_settings(
            concurrency=concurrency,
            rpm=rpm,
            api_url=api_url,
            home=home,
            db=db,
            give_up_after=give_up_after,
            source=source,
        )
        report = execute_verify(settings)
    except StxbfError as exc:
        if not as_json:
            raise
        typer.echo(json.dumps({"error": exc.message, "exit_code": int(exc.exit_code)}))
        raise typer.Exit(int(exc.exit_code)) from None
    if as_json:
        typer.echo(json.dumps(report_dict(report), indent=2))
    else:
        _render_verify(report)
    raise typer.Exit(report.exit_code)


def execute_verify(settings: Settings, *, transport: Any = None) -> VerifyReport:
    """Verify in the foreground, as `stxbf run` runs: same log, same signals, same end line."""
    from stxbf.runner import Runner

    params = params_from(settings)
    if not params.db_path.is_file():  # said before the data directory or the log is touched
        raise StoreError(f"no database at {params.db_path} yet (no backfill has run)")
    started = f"{params.db_path} against {params.api_url}"
    return Driver("verify").drive(
        settings, params, Runner.verify, started=started, transport=transport
    )


def report_dict(report: VerifyReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["damaged_windows"] = [
        {"start_time": start, "end_time": end} for start, end in report.damaged_windows
    ]
    data["not_stored"] = [
        {"start_time": start, "end_time": end} for start, end in report.not_stored
    ]
    return data


def _render_verify(report: VerifyReport) -> None:
    if report.damaged_tables:
        err_console.print(f"stxbf verify: {report.message}", soft_wrap=True)
        for start, end in report.damaged_windows:
            err_console.print(f"  fetch again: {utc_iso(start)} .. {utc_iso(end)}", soft_wrap=True)
        err_console.print(
            "  Move the file aside (or restore a backup) and `stxbf run` fetches it anew.",
            soft_wrap=True,
        )
        return
    target = console if report.exit_code in (0, int(ExitCode.INCOMPLETE)) else err_console
    target.print(
        f"Windows checked: {report.windows_checked:,} · changed: {report.windows_changed:,} · "
        f"open or incomplete fetched again: {report.windows_reopened:,} · "
        f"rows added: {report.rows_added:,} · removed: {report.rows_removed:,} · "
        f"requests: {report.requests:,}",
        soft_wrap=True,
    )
    for change in report.changed:
        target.print(
            f"  {utc_iso(change.start_time)} .. {utc_iso(change.end_time)}: {change.reason}",
            soft_wrap=True,
        )
    target.print(f"stxbf verify: {report.message} (exit {report.exit_code})", soft_wrap=True)
