"""`stxbf export DIR`: the database as day-partitioned Parquet for other engines, incrementally.

Exit codes: 0 DIR is up to date, 1 error, 2 usage (DIR is a file, or holds files that are not an
export), 3 stopped before every day was written (a run started: export again after it), 4 a run
holds the database (or another export holds DIR), 65 a damaged database, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stxbf.cli.common import console, stdout_is_terminal
from stxbf.cli.options import Db, Home
from stxbf.codes import ExitCode
from stxbf.errors import LockHeld, StxbfError

if TYPE_CHECKING:
    from stxbf.paths import DataPaths
    from stxbf.store import ExportReport


def export(
    directory: Path = typer.Argument(
        ..., help="Where to write transactions/date=YYYY-MM-DD/data.parquet and manifest.json."
    ),
    full: bool = typer.Option(
        False, "--full", help="Rewrite every day, changed or not (the manifest is ignored)."
    ),
    include_unverified: bool = typer.Option(
        False,
        "--include-unverified",
        help="Also export days not yet verified (the settle period, incomplete windows); the "
        "manifest marks them verified: false.",
    ),
    home: Path | None = Home,
    db: Path | None = Db,
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as one JSON object (schema in docs/cli.md)."
    ),
) -> None:
    """Write the transactions as Parquet, one file per UTC day; rewrite only the days that changed.

    Exit code: 0 up to date, 1 error, 2 usage, 3 stopped for a run that started (export again
    after it), 4 a run holds the database, 65 a damaged database, 130 interrupted.
    """
    from stxbf.settings import load_settings

    try:
        settings = load_settings(home=home, db=db)
        report = execute_export(
            settings.paths,
            directory,
            full=full,
            include_unverified=include_unverified,
            show_progress=stdout_is_terminal() and not as_json,
        )
    except StxbfError as exc:
        if not as_json:
            raise
        typer.echo(json.dumps({"error": exc.message, "exit_code": int(exc.exit_code)}))
        raise typer.Exit(int(exc.exit_code)) from None
    code = int(ExitCode.INCOMPLETE if report.stopped_for_run else ExitCode.OK)
    if as_json:
        typer.echo(json.dumps({**dataclasses.asdict(report), "exit_code": code}, indent=2))
    else:
        _render_export(report)
    raise typer.Exit(code)


def execute_export(
    paths: DataPaths,
    directory: Path,
    *,
    full: bool,
    include_unverified: bool,
    show_progress: bool,
) -> ExportReport:
    """Export, or refuse while a run holds the database, because DuckDB lets one process open
    it. The export gives the file back as soon as a run starts."""
    from stxbf.errors import DatabaseBusy
    from stxbf.process import lock_holder
    from stxbf.store import export_parquet

    def run_waiting() -> bool:
        return lock_holder(paths.lock) not in (False, None)

    holder = lock_holder(paths.lock)
    if holder not in (False, None):
        raise _run_holds(paths.db, directory, holder)
    try:
        with _progress(show_progress) as on_progress:
            return export_parquet(
                paths.db,
                directory,
                full=full,
                include_unverified=include_unverified,
                run_waiting=run_waiting,
                on_progress=on_progress,
            )
    except DatabaseBusy:
        raise _run_holds(paths.db, directory, lock_holder(paths.lock)) from None


def _run_holds(db_path: Path, directory: Path, holder: Any) -> LockHeld:
    pid = holder if type(holder) is int else None
    who = f"`stxbf run` (pid {pid})" if pid else "another process"
    return LockHeld(
        f"{who} is writing to {db_path}: DuckDB lets one process open the file, so the export "
        f"can run once it ends (`stxbf status` says when; in cron: `stxbf run; stxbf export "
        f"{directory}`)",
        pid=pid,
    )


@contextmanager
def _progress(show: bool) -> Iterator[Callable[[int, int], None] | None]:
    """Return a rich bar of the days written on a terminal, and nothing otherwise (cron, pipes)."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "Exporting days",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("days", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield on_progress


def _render_export(report: ExportReport) -> None:
    """Print one line: what was written, kept and removed, what DIR holds, what was left."""
    megabytes = report.bytes_exported / 1_000_000
    line = (
        f"Exported to {report.directory}: {report.days_written:,} days written, "
        f"{report.days_unchanged:,} unchanged, {report.days_removed:,} removed · "
        f"{report.rows_exported:,} rows, {megabytes:,.1f} MB · {report.seconds:.1f} s"
    )
    if report.days_unverified_left_out:
        line += (
            f" · {report.days_unverified_left_out:,} days not yet verified left out "
            "(--include-unverified exports them)"
        )
    if report.stopped_for_run:
        line += (
            f" · stopped for a run that started: {report.days_left:,} days left, "
            "export again after it"
        )
    console.print(line, soft_wrap=True, markup=False)
