"""`stxbf health`: a list of checks, each ok / warn / fail with a reason, and one verdict.

Verdicts and exit codes follow the seed's health check: 0 healthy, 1 not running, 2 stalled,
3 database problem, 4 configuration error. A warning (a high 429 rate, low disk, no tmux session)
is reported but does not change the verdict; a failed check decides it, worst first.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stxbf.errors import StoreError
from stxbf.ops.status import DEFAULT_STALL_SECONDS, StatusReport, build_status

SCHEMA = 1
VERDICTS: dict[str, int] = {
    "healthy": 0,
    "not_running": 1,
    "stalled": 2,
    "database_problem": 3,
    "config_error": 4,
}
LOW_DISK_BYTES = 1 << 30  # warn below 1 GiB free
FULL_DISK_BYTES = 100 << 20  # fail below 100 MiB free
ERROR_RATE_WARN = 0.2  # errors + 429s per request
RECENT_ERROR_SECONDS = 300.0


@dataclass
class Check:
    name: str  # config | process | heartbeat | errors | database | disk | tmux
    status: str  # ok | warn | fail | skip
    detail: str


@dataclass
class HealthReport:
    """Everything `stxbf health --json` prints (schema 1)."""

    verdict: str
    exit_code: int
    checked_at: float
    reasons: list[str]
    checks: list[Check]
    status: str | None = None  # the status model's state, when it could be built
    runner_pid: int | None = None
    runner_alive: bool = False
    heartbeat_age: float | None = None
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Verdicts:
    found: list[tuple[str, str]] = field(default_factory=list)  # (verdict, reason)

    def add(self, verdict: str, reason: str) -> None:
        self.found.append((verdict, reason))


def _check_config(db_path: Path) -> Check:
    if db_path.is_dir():
        return Check("config", "fail", f"database path {db_path} is a directory")
    parent = next((p for p in [db_path.parent, *db_path.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        return Check("config", "fail", f"cannot write under {db_path.parent}")
    return Check("config", "ok", f"database path {db_path}")


def _active_supervisor(db_path: Path) -> Any:
    from stxbf.ops.supervise import active_supervisor
    from stxbf.paths import DataPaths

    return active_supervisor(DataPaths(home=db_path.parent, db=db_path).supervisor_record)


def _check_disk(db_path: Path) -> Check:
    where = next((p for p in [db_path.parent, *db_path.parents] if p.exists()), Path("/"))
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check("disk", "warn", f"cannot measure free space in {where}: {exc.strerror}")
    text = f"{free / (1 << 30):.1f} GiB free in {where}"
    if free < FULL_DISK_BYTES:
        return Check("disk", "fail", text)
    if free < LOW_DISK_BYTES:
        return Check("disk", "warn", text)
    return Check("disk", "ok", text)


def _check_errors(report: StatusReport, now: float) -> Check:
    counters = report.counters or {}
    requests = int(counters.get("requests", 0))
    bad = int(counters.get("errors", 0)) + int(counters.get("responses_429", 0))
    parts = []
    status = "ok"
    if requests:
        rate = bad / requests
        parts.append(
            f"{counters.get('responses_429', 0)} × 429 and {counters.get('errors', 0)} errors "
            f"in {requests} requests"
        )
        if rate > ERROR_RATE_WARN:
            status = "warn"
    if report.backoff_until is not None and report.backoff_until > now:
        parts.append(f"backing off for {report.backoff_until - now:.0f} s more")
    if (
        report.last_error
        and report.last_error_at
        and now - report.last_error_at < RECENT_ERROR_SECONDS
    ):
        parts.append(f"last error {now - report.last_error_at:.0f} s ago: {report.last_error}")
        status = "warn"
    if not parts:
        return Check("errors", "skip" if report.counters is None else "ok", "no requests counted")
    return Check("errors", status, "; ".join(parts))


def build_health(
    *,
    db_path: Path,
    progress_path: Path,
    lock_path: Path,
    target_days: int,
    runner_path: Path | None = None,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    tmux_probe: Callable[[], bool | None] | None = None,
    now: float | None = None,
) -> HealthReport:
    """Run every check. `tmux_probe` says whether the session exists (None: tmux unavailable)."""
    now = time.time() if now is None else now
    checks: list[Check] = []
    verdicts = _Verdicts()

    config = _check_config(db_path)
    checks.append(config)
    if config.status == "fail":
        verdicts.add("config_error", config.detail)

    report: StatusReport | None = None
    if config.status != "fail":
        try:
            report = build_status(
                db_path=db_path,
                progress_path=progress_path,
                lock_path=lock_path,
                target_days=target_days,
                runner_path=runner_path,
                explicit_days=False,
                stall_seconds=stall_seconds,
                now=now,
            )
        except StoreError as exc:
            checks.append(Check("database", "fail", exc.message))
            verdicts.add("database_problem", exc.message)

    runner_alive = False
    if report is not None:
        runner = report.runner
        runner_alive = runner.alive
        if runner.alive:
            how = {"lock": "holds the lock", "pid-file": "pid file", "progress": "progress file"}
            found = how.get(runner.found_by, runner.found_by)
            checks.append(Check("process", "ok", f"runner pid {runner.pid} is alive ({found})"))
            age = runner.heartbeat_age
            if age is None:
                started = runner.started_at or now
                detail = f"no progress published yet ({now - started:.0f} s since start)"
                stalled = now - started > stall_seconds
            else:
                detail = f"last heartbeat {age:.0f} s ago (phase {runner.phase})"
                stalled = age > stall_seconds
            checks.append(Check("heartbeat", "fail" if stalled else "ok", detail))
            if stalled:
                verdicts.add(
                    "stalled", f"no progress for more than {stall_seconds:.0f} s: {detail}"
                )
            if db_path.exists():
                checks.append(
                    Check("database", "ok", f"held by the runner ({report.db_bytes or 0:,} bytes)")
                )
            else:
                checks.append(Check("database", "warn", f"{db_path} does not exist yet"))
        elif (supervisor := _active_supervisor(db_path)) is not None:
            # Between two tries of the tmux supervisor: an outage, not a backfill left alone.
            from stxbf.ops.supervise import describe_wait

            if supervisor.failing_since is not None:
                detail = "the API is failing: " + describe_wait(supervisor, now)
                checks.append(Check("process", "fail", f"no run alive; {detail}"))
                verdicts.add("stalled", detail)
            else:
                checks.append(Check("process", "ok", "the tmux supervisor is starting the run"))
        else:
            ended = ""
            if runner.phase in ("finished", "failed", "interrupted"):
                ended = f"; last run {runner.phase}"
                if runner.exit_code is not None:
                    ended += f" with exit code {runner.exit_code}"
            reason = f"no runner is alive (backfill {report.label.lower()}{ended})"
            checks.append(Check("process", "fail", reason))
            verdicts.add("not_running", reason)
            checks.append(Check("heartbeat", "skip", "no runner"))
            if report.source == "database":
                checks.append(
                    Check("database", "ok", f"readable: {report.transactions:,} transactions")
                )
            elif db_path.exists():
                checks.append(Check("database", "warn", "exists but holds no backfill yet"))
            else:
                checks.append(Check("database", "skip", f"{db_path} does not exist yet"))
        checks.append(_check_errors(report, now))

    disk = _check_disk(db_path)
    checks.append(disk)
    if disk.status == "fail":
        verdicts.add("database_problem", f"disk almost full: {disk.detail}")

    if tmux_probe is not None:
        present = tmux_probe()
        if present is None:
            checks.append(Check("tmux", "skip", "tmux is not installed"))
        elif present:
            checks.append(Check("tmux", "ok", "session present"))
        elif runner_alive:
            checks.append(
                Check("tmux", "warn", "runner alive but no tmux session (started by hand?)")
            )
        else:
            checks.append(Check("tmux", "warn", "no tmux session"))

    order = list(VERDICTS)[::-1]  # config_error first … healthy last
    worst = "healthy"
    reasons: list[str] = []
    for verdict in order:
        hits = [reason for found, reason in verdicts.found if found == verdict]
        if hits:
            worst = verdict
            reasons = hits
            break
    reasons += [
        reason for found, reason in verdicts.found if found != worst and reason not in reasons
    ]
    if worst == "healthy":
        reasons = ["runner alive and making progress"]
    return HealthReport(
        verdict=worst,
        exit_code=VERDICTS[worst],
        checked_at=now,
        reasons=reasons,
        checks=checks,
        status=report.state if report is not None else None,
        runner_pid=report.runner.pid if report is not None else None,
        runner_alive=runner_alive,
        heartbeat_age=report.runner.heartbeat_age if report is not None else None,
    )
