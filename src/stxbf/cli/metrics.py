"""`stxbf metrics`: the backfill's state as Prometheus text, for node_exporter's textfile collector.

Exit codes (stxbf.codes): 0 the metrics were written, whatever the verdict (it is a metric, not
the exit code); 1 the output file could not be written; 64 usage or configuration error (the
metrics are still written then, with the `config_error` verdict, so the collector does not keep
showing the last good state).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stxbf.cli.health import ExpectRunning
from stxbf.cli.options import Db, Home, JudgedTargetDays, StallSeconds
from stxbf.cli.status import status_builder
from stxbf.codes import ExitCode
from stxbf.errors import ConfigError, StxbfError

Output = typer.Option(
    None,
    "--output",
    "-o",
    dir_okay=False,
    help="Replace FILE atomically instead of printing (a *.prom file of the textfile collector).",
)


def metrics(
    target_days: int | None = JudgedTargetDays,
    stall_seconds: float = StallSeconds,
    expect_running: bool = ExpectRunning,
    output: Path | None = Output,
    home: Path | None = Home,
    db: Path | None = Db,
) -> None:
    """Print the state as Prometheus metrics (text format 0.0.4): days, transactions, verdict.

    Exit code: 0 written (the health verdict is a metric, not the exit code), 1 the file could
    not be written, 64 usage or configuration error.
    """
    from stxbf import __version__
    from stxbf.report.database import DatabaseCache
    from stxbf.report.health import build_health, config_error
    from stxbf.report.metrics import build_metrics, render_metrics, write_textfile
    from stxbf.settings import load_settings

    problem: ConfigError | None = None
    try:
        settings = load_settings(home=home, db=db, target_days=target_days)
    except ConfigError as exc:
        problem, status, health, label = exc, None, config_error(exc.message), str(db or "")
    else:
        build = status_builder(settings, stall_seconds=stall_seconds)
        status = build(cache=DatabaseCache(path=settings.paths.summary))
        health = build_health(
            settings.paths,
            target_days=status.target_days,
            stall_seconds=stall_seconds,
            expect_running=expect_running,
            now=status.checked_at,
            status=status,
        )
        label = str(settings.db_path)
    text = render_metrics(build_metrics(status, health, db=label, version=__version__))
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            write_textfile(output, text)
        except OSError as exc:
            raise StxbfError(
                f"cannot write {output}: {exc.strerror or exc}",
                hint="The directory must exist and be writable by this user.",
            ) from None
    if problem is not None:
        raise StxbfError(problem.message, hint=problem.hint, exit_code=ExitCode.MONITOR_USAGE)
