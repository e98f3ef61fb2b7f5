"""`stxbf metrics`: where a backfill stands, as Prometheus text exposition (format 0.0.4), for
node_exporter's textfile collector.

Operators scrape cron jobs with the textfile collector, which reads every `*.prom` file of a
directory on each scrape. This module turns the status and health models (`report.status`,
`report.health`) into metric families as they are: nothing is judged or counted again here, so
`stxbf metrics`, `stxbf status --json` and `stxbf health --json` never disagree. The verdicts and
states are the registry's (`stxbf.codes`): each is one labelled gauge series, 1 for the current
one and 0 for the others, so that an alert can match on a label.

prometheus_client writes the text (the escaping of label values and help, the float format), and
its parser checks it in the tests. It is imported only when the command runs, so that
`stxbf --help` stays quick. `write_textfile` replaces the file the way node_exporter's docs ask:
a temporary file in the same directory, flushed to disk, renamed over the old one.

Exit codes (stxbf.codes): 0 the metrics were written, whatever the verdict (it is a metric, not
the exit code); 1 the output file could not be written; 64 usage or configuration error (the
metrics are still written then, with the `config_error` verdict, so the collector does not keep
showing the last good state).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stxbf.cli.health import ExpectRunning
from stxbf.cli.options import Db, Home, JudgedTargetDays, StallSeconds
from stxbf.cli.status import status_builder
from stxbf.codes import STATUS_STATES, VERDICTS, ExitCode
from stxbf.errors import ConfigError, StxbfError

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from stxbf.report.health import HealthReport
    from stxbf.report.status import StatusReport

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


PREFIX = "stxbf_"

# (metric name, the counter in the snapshot's `counters`, help): counted by the run in progress
# (or the last one whose snapshot status reads); a new run starts them at 0 again, which
# Prometheus' rate() and increase() take as a counter reset.
_COUNTERS = (
    ("requests_total", "requests", "Requests sent to the API by the run."),
    ("pages_total", "pages", "Pages received by the run."),
    ("rate_limited_responses_total", "responses_429", "429 responses received by the run."),
    ("errors_total", "errors", "Failed requests of the run (5xx, timeouts, dropped connections)."),
    ("retries_total", "retries", "Requests the run sent again after a failure."),
)  # fmt: skip

# (metric name, the StatusReport field, help): present only when the report knows the value.
_GAUGES = (
    ("transactions", "transactions", "Transactions stored in the database."),
    ("wallets", "wallets", "Distinct sender addresses stored."),
    ("database_size_bytes", "db_bytes", "Size of the database file and its WAL."),
    ("latest_transaction_timestamp_seconds", "latest_tx_time",
     "Burn-block time of the newest stored transaction (Unix seconds)."),
    ("last_progress_timestamp_seconds", "last_progress_at",
     "When the runner last received a page or committed a window (Unix seconds)."),
    ("consecutive_failures", "consecutive_failures", "Requests in a row that failed."),
    ("requests_per_minute", "rate_rpm", "Requests the runner sent over the last minute."),
    ("rate_limit_requests_per_minute", "limit_rpm",
     "The request rate the runner paces itself to (the API's stated limit, or --rpm)."),
    ("eta_seconds", "eta_seconds", "Estimated seconds until the target is covered."),
    # x-ratelimit-{remaining,limit}-stacks-month (hirosystems/docs response-headers.mdx), in
    # the API's cost units (x-ratelimit-cost-stacks)
    ("quota_remaining", "quota_remaining",
     "Units left in the API's monthly quota, as its last answer stated it."),
    ("quota_limit", "quota_limit", "The API's monthly quota in units, as it stated it."),
    ("rate_limited_until_timestamp_seconds", "rate_limited_until",
     "When the stated limit or quota the runner waits out ends (Unix seconds)."),
)  # fmt: skip


@dataclass
class Metrics:
    """Holds the metric families `stxbf metrics` prints, in the order they are printed."""

    families: list[Metric] = field(default_factory=list)
    db: str = ""

    def gauge(self, name: str, help_text: str, value: float, **labels: str) -> None:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(PREFIX + name, help_text, labels=["db", *labels])
        family.add_metric([self.db, *labels.values()], float(value))
        self.families.append(family)

    def counter(self, name: str, help_text: str, value: float) -> None:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(PREFIX + name, help_text, labels=["db"])
        family.add_metric([self.db], float(value))
        self.families.append(family)

    def one_of(
        self, name: str, help_text: str, label: str, values: list[str], current: str
    ) -> None:
        """Add one series per value, 1 for `current` and 0 for the rest, so that an alert can
        match on a label."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(PREFIX + name, help_text, labels=["db", label])
        for value in values:
            family.add_metric([self.db, value], 1.0 if value == current else 0.0)
        self.families.append(family)


def build_metrics(
    status: StatusReport | None, health: HealthReport, *, db: str, version: str
) -> Metrics:
    """Build the families for one data directory; `status` is None when the settings failed to
    load, and then only the health verdict and the info series are written."""
    out = Metrics(db=db)
    if status is not None:
        _status_families(out, status)
    verdicts = [str(verdict) for verdict in VERDICTS]
    out.one_of("health", "The health verdict (stxbf health).", "verdict", verdicts, health.verdict)
    out.gauge("health_exit_code", "The exit code stxbf health ends with.", health.exit_code)
    source = (status.run_source or "") if status is not None else ""
    read_from = status.source if status is not None else "none"
    out.gauge(
        "info",
        "The stxbf version, the API route of the run (v1, v3), and what was read (progress, "
        "database, none).",
        1,
        version=version,
        source=source,
        read_from=read_from,
    )
    out.gauge(
        "metrics_generated_timestamp_seconds",
        "When these metrics were made (Unix seconds): an alert on their age catches a cron "
        "job that stopped.",
        health.checked_at,
    )
    return out


def _status_families(out: Metrics, status: StatusReport) -> None:
    out.gauge("days_covered", "Days of the target verified (or before the chain's start).",
              status.days_verified)  # fmt: skip
    out.gauge("days_partial", "Days of the target partly covered.", status.days_partial)
    out.gauge("days_missing", "Days of the target not covered at all.", status.days_missing)
    out.gauge("days_target", "Days of history the backfill is measured against.",
              status.target_days)  # fmt: skip
    states = [str(state) for state in STATUS_STATES]
    out.one_of("status", "The backfill's state (stxbf status).", "state", states, status.state)
    out.gauge("status_exit_code", "The exit code stxbf status ends with.", status.exit_code)
    out.gauge("runner_up", "1 when a runner process is alive.", 1 if status.runner.alive else 0)
    for name, key, help_text in _COUNTERS:
        if status.counters is not None and key in status.counters:
            out.counter(name, help_text, status.counters[key])
    if status.restarts is not None:
        out.counter("restarts_total", "Times the tmux supervisor started the run again.",
                    status.restarts)  # fmt: skip
    for name, attribute, help_text in _GAUGES:
        value = getattr(status, attribute)
        if value is not None:
            out.gauge(name, help_text, value)


def render_metrics(metrics: Metrics) -> str:
    """Write the families in text exposition format 0.0.4: `# HELP`, `# TYPE`, one line per
    series, and a final newline."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import Collector

    class Families(Collector):
        def collect(self) -> Iterator[Metric]:
            return iter(metrics.families)

    return generate_latest(Families()).decode("utf-8")


def write_textfile(path: Path, text: str) -> None:
    """Replace `path` in one rename, so the collector reads the old file or the new one, never half.

    The temporary file sits in the same directory (a rename across file systems is a copy) and
    does not end in `.prom`, so the collector ignores it; it is flushed to disk before the rename,
    and readable by others (node_exporter runs as its own user), within the umask.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
