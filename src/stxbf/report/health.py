"""`stxbf health` as a model: checks, each ok, warn or fail with a reason, and one verdict.

The verdicts and their exit codes come from `stxbf.codes`: 0 healthy, 1 not running, 2 stalled,
3 database problem, 4 configuration error, 69 degraded, 75 rate-limited. Whether a live runner is
degraded, stalled or rate-limited is the status model's judgement
(`stxbf.report.status.judge_activity`), which this module takes as it is rather than deciding it
again; so is the target, which is the configured one. A warning (a high 429 rate, low disk, no
tmux session) is reported but does not change the verdict; a failed check decides it, worst first.

A backfill that is complete, and whose last run ended well, needs no runner, so it is healthy,
unless `expect_running` is set (the tmux workflow, where a runner should always be there).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stxbf import defaults
from stxbf.codes import VERDICTS as VERDICT_OUTCOMES
from stxbf.codes import ExitCode, StatusState, StrEnum, Verdict
from stxbf.paths import DataPaths, SupervisorRecord
from stxbf.process import active_supervisor, describe_wait
from stxbf.report.database import DatabaseCache
from stxbf.report.status import StatusReport, build_status
from stxbf.words import plural

SCHEMA = 1
LOW_DISK_BYTES = 1 << 30  # warn below 1 GiB free
FULL_DISK_BYTES = 100 << 20  # fail below 100 MiB free
ERROR_RATE_WARN = 0.2  # errors + 429s per request
RECENT_ERROR_SECONDS = 300.0


class CheckStatus(StrEnum):
    """Name how a check came out: only a failed check decides the verdict."""

    OK = "ok"
    WARN = "warn"  # reported; does not change the verdict
    FAIL = "fail"  # decides the verdict
    SKIP = "skip"  # nothing to check


OK, WARN, FAIL, SKIP = CheckStatus.OK, CheckStatus.WARN, CheckStatus.FAIL, CheckStatus.SKIP


@dataclass
class Check:
    """Hold one check of `stxbf health`: its name, how it came out, and why."""

    name: str  # config | process | progress | errors | database | disk | tmux
    status: CheckStatus
    detail: str


@dataclass
class HealthReport:
    """Hold everything `stxbf health --json` prints (schema 1)."""

    verdict: str
    exit_code: int
    checked_at: float
    reasons: list[str]
    checks: list[Check]
    status: str | None = None  # the status model's state, when it could be built
    hint: str | None = None  # what to do (a damaged database)
    runner_pid: int | None = None
    runner_alive: bool = False
    heartbeat_age: float | None = None
    target_days: int | None = None  # the configured target the backfill is judged against
    run_target_days: int | None = None  # the current (or last) run's own target, for information
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Findings:
    """Collect the checks made so far, and the verdicts (each with a reason) they call for."""

    checks: list[Check] = field(default_factory=list)
    verdicts: list[tuple[Verdict, str]] = field(default_factory=list)

    def add(self, check: Check, verdict: Verdict | None = None, reason: str = "") -> None:
        """Add a check, and the verdict it calls for if any (the check's detail is the reason)."""
        self.checks.append(check)
        if verdict is not None:
            self.verdicts.append((verdict, reason or check.detail))

    def decide(self, healthy_reason: str) -> tuple[Verdict, list[str]]:
        """Return the worst verdict found, with its reasons first and then the others' reasons."""
        for verdict in VERDICT_OUTCOMES:  # worst first
            hits = [reason for found, reason in self.verdicts if found == verdict]
            if hits:
                others = [r for found, r in self.verdicts if found != verdict and r not in hits]
                return verdict, hits + others
        return Verdict.HEALTHY, [healthy_reason]


def _check_config(db_path: Path) -> Check:
    """Check that the database path is usable: not a directory, and under a writable directory."""
    if db_path.is_dir():
        return Check("config", FAIL, f"database path {db_path} is a directory")
    parent = next((p for p in [db_path.parent, *db_path.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        return Check("config", FAIL, f"cannot write under {db_path.parent}")
    return Check("config", OK, f"database path {db_path}")


def _check_disk(db_path: Path) -> Check:
    """Check the free space by the database: a warning below 1 GiB, a failure below 100 MiB."""
    where = next((p for p in [db_path.parent, *db_path.parents] if p.exists()), Path("/"))
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check("disk", WARN, f"cannot measure free space in {where}: {exc.strerror}")
    text = f"{free / (1 << 30):.1f} GiB free in {where}"
    if free < FULL_DISK_BYTES:
        return Check("disk", FAIL, text)
    if free < LOW_DISK_BYTES:
        return Check("disk", WARN, text)
    return Check("disk", OK, text)


def _check_errors(report: StatusReport, now: float) -> Check:
    """Check the share of errors and 429s among the requests, and any recent error."""
    counters = report.counters or {}
    requests = int(counters.get("requests", 0))
    bad = int(counters.get("errors", 0)) + int(counters.get("responses_429", 0))
    parts = []
    status = OK
    if requests:
        rate = bad / requests
        parts.append(
            f"{counters.get('responses_429', 0)} × 429 and "
            f"{plural(counters.get('errors', 0), 'error')} in {plural(requests, 'request')}"
        )
        if rate > ERROR_RATE_WARN:
            status = WARN
    if report.backoff_until is not None and report.backoff_until > now:
        parts.append(f"backing off for {report.backoff_until - now:.0f} s more")
    if (
        report.last_error
        and report.last_error_at
        and now - report.last_error_at < RECENT_ERROR_SECONDS
    ):
        parts.append(f"last error {now - report.last_error_at:.0f} s ago: {report.last_error}")
        status = WARN
    if not parts:
        return Check("errors", SKIP if report.counters is None else OK, "no requests counted")
    return Check("errors", status, "; ".join(parts))


def _check_runner(report: StatusReport, found: _Findings, db_path: Path, now: float) -> None:
    """Check a live runner: its process, its progress (judged by the status model), the database."""
    runner = report.runner
    how = {"lock": "holds the lock", "pid-file": "pid file", "progress": "progress file"}
    by = how.get(runner.found_by, runner.found_by)
    found.add(Check("process", OK, f"runner pid {runner.pid} is alive ({by})"))
    reason = report.reason or ""
    if report.state == StatusState.STALLED:
        found.add(Check("progress", FAIL, reason), Verdict.STALLED, f"stalled: {reason}")
    elif report.state == StatusState.RATE_LIMITED:
        found.add(Check("progress", WARN, reason), Verdict.RATE_LIMITED)
    elif report.state == StatusState.DEGRADED:
        found.add(Check("progress", WARN, reason), Verdict.DEGRADED)
    else:
        age = runner.heartbeat_age
        beat = f"last heartbeat {age:.0f} s ago" if age is not None else "no heartbeat yet"
        progress_age = (
            f"; last progress {now - report.last_progress_at:.0f} s ago"
            if report.last_progress_at is not None
            else ""
        )
        found.add(Check("progress", OK, f"{beat}{progress_age} (phase {runner.phase})"))
    if db_path.exists():
        found.add(Check("database", OK, f"held by the runner ({report.db_bytes or 0:,} bytes)"))
    else:
        found.add(Check("database", WARN, f"{db_path} does not exist yet"))


def _last_run_code(report: StatusReport) -> int | None:
    """Return the last run's exit code: its snapshot's, else the database's run record."""
    if report.runner.exit_code is not None:
        return report.runner.exit_code
    code = (report.last_run or {}).get("exit_code")
    return int(code) if isinstance(code, (int, float)) else None


def _check_supervised(supervisor: SupervisorRecord, found: _Findings, now: float) -> None:
    """Check a backfill between two tries of the tmux supervisor: an outage, not one left alone."""
    if supervisor.failing_since is not None:
        detail = "the API is failing: " + describe_wait(supervisor, now)
        found.add(Check("process", FAIL, f"no run alive; {detail}"), Verdict.STALLED, detail)
    else:
        found.add(Check("process", OK, "the tmux supervisor is starting the run"))
    found.add(Check("progress", SKIP, "between two tries"))


def _check_idle(
    report: StatusReport, found: _Findings, db_path: Path, *, expect_running: bool
) -> None:
    """Check a backfill with no live runner, which is fine when it is complete and its last run
    ended well (cron, done).
    """
    last_code = _last_run_code(report)
    ended = ""
    if report.runner.phase is not None or last_code is not None:
        ended = f"; last run {report.runner.phase or 'ended'}"
        if last_code is not None:
            ended += f" with exit code {last_code}"
    complete = report.state in (StatusState.COMPLETE, StatusState.REACHED_CHAIN_START)
    problem = report.state == StatusState.DATABASE_PROBLEM
    if complete and last_code == ExitCode.OK and not expect_running:
        found.add(Check("process", OK, f"complete, no runner needed{ended}"))
    elif problem:
        found.add(Check("process", SKIP, "no runner is alive"))
    else:
        days = f", {report.days_verified}/{report.target_days} days"
        reason = f"no runner is alive (backfill {report.label.lower()}{days}{ended})"
        found.add(Check("process", FAIL, reason), Verdict.NOT_RUNNING)
    found.add(Check("progress", SKIP, "no runner"))
    if problem:
        detail = report.reason or "the database cannot be read"
        found.add(Check("database", FAIL, detail), Verdict.DATABASE_PROBLEM)
    elif report.source == "database":
        found.add(Check("database", OK, f"readable: {report.transactions:,} transactions"))
    elif db_path.exists():
        found.add(Check("database", WARN, "exists but holds no backfill yet"))
    else:
        found.add(Check("database", SKIP, f"{db_path} does not exist yet (no run so far)"))


def build_health(
    paths: DataPaths,
    *,
    target_days: int,
    stall_seconds: float = defaults.STALL_SECONDS,
    expect_running: bool = False,
    tmux_probe: Callable[[], bool | None] | None = None,
    now: float | None = None,
    cache: DatabaseCache | None = None,
    status: StatusReport | None = None,
) -> HealthReport:
    """Run every check and decide the verdict.

    `tmux_probe` says whether the session exists (None: tmux is not installed). A `status` that is
    already built (`stxbf metrics` prints both) is judged as it is rather than built again.
    """
    now = time.time() if now is None else now
    found = _Findings()
    config = _check_config(paths.db)
    report: StatusReport | None = None
    if config.status == FAIL:
        found.add(config, Verdict.CONFIG_ERROR)
    else:
        found.add(config)
        report = status or build_status(
            paths,
            target_days=target_days,
            stall_seconds=stall_seconds,
            now=now,
            cache=cache,
        )
        if report.runner.alive:
            _check_runner(report, found, paths.db, now)
        elif (supervisor := active_supervisor(paths)) is not None:
            _check_supervised(supervisor, found, now)
        else:
            _check_idle(report, found, paths.db, expect_running=expect_running)
        found.add(_check_errors(report, now))
    disk = _check_disk(paths.db)
    if disk.status == FAIL:
        found.add(disk, Verdict.DATABASE_PROBLEM, f"disk almost full: {disk.detail}")
    else:
        found.add(disk)
    if tmux_probe is not None:
        alive = report is not None and report.runner.alive
        found.add(_check_tmux(tmux_probe(), runner_alive=alive))
    return _decide(report, found, now)


def config_error(message: str, *, now: float | None = None) -> HealthReport:
    """Return the report for settings that cannot be loaded at all."""
    found = _Findings()
    found.add(Check("config", FAIL, message), Verdict.CONFIG_ERROR)
    return _decide(None, found, time.time() if now is None else now)


def _decide(report: StatusReport | None, found: _Findings, now: float) -> HealthReport:
    """Turn the findings into the report: the worst verdict, its exit code and the reasons."""
    runner_alive = report is not None and report.runner.alive
    healthy_reason = (
        "runner alive and making progress" if runner_alive else "complete, no runner needed"
    )
    worst, reasons = found.decide(healthy_reason)
    return HealthReport(
        verdict=str(worst),
        exit_code=VERDICT_OUTCOMES[worst].exit_code,
        checked_at=now,
        reasons=reasons,
        checks=found.checks,
        status=report.state if report is not None else None,
        hint=report.hint if report is not None else None,
        runner_pid=report.runner.pid if report is not None else None,
        runner_alive=runner_alive,
        heartbeat_age=report.runner.heartbeat_age if report is not None else None,
        target_days=report.target_days if report is not None else None,
        run_target_days=report.run_target_days if report is not None else None,
    )


def _check_tmux(present: bool | None, *, runner_alive: bool) -> Check:
    """Check that the tmux session is there; its absence is only a warning."""
    if present is None:
        return Check("tmux", SKIP, "tmux is not installed")
    if present:
        return Check("tmux", OK, "session present")
    if runner_alive:
        return Check("tmux", WARN, "runner alive but no tmux session (started by hand?)")
    return Check("tmux", WARN, "no tmux session")
