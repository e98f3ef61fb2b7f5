"""Where a backfill stands, as a model: `stxbf status`, `health` and the monitor all read this.

DuckDB lets no other process open a database a runner is writing, not even read-only. So the
builder first asks whether a runner is alive (`ops.process`) and, if so, reads only the snapshot
the runner publishes every second. The database itself is read (`ops.database`, read-only and
cached) only when no runner holds it.

Whether a live runner is running, stalled or rate-limited is decided once, by
`ops.activity.judge_activity`, for status and health alike.

Days count as covered only when the engine verified them (a window's stored rows matched the API's
total for it), so a gap in the middle of the range shows as missing even when older days exist.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stxbf import state as progress
from stxbf.codes import STATUS_STATES, TERMINAL_PHASES, StatusState
from stxbf.errors import DatabaseBusy, StoreError
from stxbf.ops.activity import Activity, judge_activity
from stxbf.ops.database import DatabaseCache, StoredFacts, read_facts_cached
from stxbf.ops.formats import clock
from stxbf.ops.process import (
    RunnerState,
    detect_runner,
    lock_holder,
    pid_alive,
    read_runner_info,
    runner_info_path,
)
from stxbf.state import DAY, ProgressSnapshot

__all__ = [
    "STATES",
    "Activity",
    "DatabaseCache",
    "RunnerState",
    "StatusReport",
    "build_status",
    "day_states",
    "detect_runner",
    "judge_activity",
    "lock_holder",
    "pid_alive",
    "read_runner_info",
    "runner_info_path",
]

SCHEMA = 1
DEFAULT_STALL_SECONDS = 600.0

# state: (label printed as "Status: …", exit code of `stxbf status`), from the one registry.
STATES: dict[str, tuple[str, int]] = {
    str(state): (outcome.label, outcome.exit_code) for state, outcome in STATUS_STATES.items()
}

# One character per day in `StatusReport.coverage`, oldest day first.
DAY_VERIFIED = "V"
DAY_PARTIAL = "p"
DAY_MISSING = "."
DAY_BEFORE_CHAIN = "-"


@dataclass
class StatusReport:
    """Everything `stxbf status --json` prints. Field names are a stable interface (schema 1)."""

    state: str
    label: str
    exit_code: int
    source: str  # progress (runner's snapshot) | database | none
    checked_at: float
    db_path: str
    target_days: int
    days_verified: int = 0  # includes days_before_chain: provably empty, so covered
    days_partial: int = 0
    days_missing: int = 0
    days_before_chain: int = 0
    percent: float = 0.0
    range_start: int | None = None
    range_end: int | None = None
    chain_start: int | None = None
    coverage: str = (
        ""  # one char per day, oldest first: V verified, p partial, . missing, - pre-chain
    )
    transactions: int | None = None
    wallets: int | None = None
    earliest_tx_time: int | None = None
    latest_tx_time: int | None = None
    db_bytes: int | None = None
    runner: RunnerState = field(default_factory=RunnerState)
    rate_rpm: float | None = None
    limit_rpm: float | None = None
    eta_seconds: float | None = None
    backoff_until: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_progress_at: float | None = None
    consecutive_failures: int | None = None
    rate_limited_until: float | None = None
    rate_limited_reason: str | None = None
    restarts: int | None = None
    reason: str | None = None  # why the state is what it is (stalled, rate-limited, a problem)
    hint: str | None = None  # what to do about it (a damaged database)
    counters: dict[str, int] | None = None
    last_run: dict[str, Any] | None = None
    # unix time of the least recent fetch or `stxbf verify` re-count of a verified window
    oldest_check_at: float | None = None
    # verified and open windows by the route that filled them: {"v1": n, "v3": m}
    sources: dict[str, int] = field(default_factory=dict)
    run_source: str | None = None  # the route the current (or last) run fetches from: v1 | v3
    notes: list[str] = field(default_factory=list)
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the model ---------------------------------------------------------------------------------


def day_states(
    verified: list[float],
    *,
    partial_hint: list[bool] | None,
    range_start: int,
    range_end: int,
    chain_start: int | None,
) -> str:
    """One char per day from the verified fraction of each day (and where incomplete windows lie).

    Days wholly before the chain's first transaction are provably empty: marked apart, and counted
    as covered.
    """
    days = len(verified)
    first_day_start = range_end + 1 - days * DAY
    out = []
    for index, fraction in enumerate(verified):
        day_end = first_day_start + (index + 1) * DAY - 1
        if chain_start is not None and day_end < chain_start:
            out.append(DAY_BEFORE_CHAIN)
        elif fraction >= 1.0:
            out.append(DAY_VERIFIED)
        elif fraction > 0.0 or (partial_hint is not None and partial_hint[index]):
            out.append(DAY_PARTIAL)
        else:
            out.append(DAY_MISSING)
    return "".join(out)


def _fit(values: list[float], days: int) -> list[float]:
    """The last `days` entries, padded with 0 (unknown = missing) at the oldest end."""
    if len(values) >= days:
        return values[len(values) - days :]
    return [0.0] * (days - len(values)) + values


def _fill_coverage(report: StatusReport, coverage: str) -> None:
    report.coverage = coverage
    report.days_before_chain = coverage.count(DAY_BEFORE_CHAIN)
    report.days_verified = coverage.count(DAY_VERIFIED) + report.days_before_chain
    report.days_partial = coverage.count(DAY_PARTIAL)
    report.days_missing = coverage.count(DAY_MISSING)
    report.percent = round(100.0 * report.days_verified / max(1, report.target_days), 1)


def _set_state(report: StatusReport, state: StatusState) -> None:
    outcome = STATUS_STATES[state]
    report.state, report.label, report.exit_code = str(state), outcome.label, outcome.exit_code


def _finished_state(report: StatusReport) -> StatusState:
    if report.days_verified < report.target_days:
        return StatusState.INCOMPLETE
    if report.days_before_chain:
        return StatusState.REACHED_CHAIN_START
    return StatusState.COMPLETE


def _from_snapshot(report: StatusReport, snap: ProgressSnapshot) -> None:
    report.source = "progress"
    days = report.target_days
    report.range_end = snap.range_end
    report.range_start = (
        snap.range_end - days * DAY + 1 if days != snap.target_days else snap.range_start
    )
    report.chain_start = snap.chain_start
    verified = _fit([float(v) for v in snap.coverage], days) if snap.coverage else [0.0] * days
    _fill_coverage(
        report,
        day_states(
            verified,
            partial_hint=None,
            range_start=report.range_start,
            range_end=snap.range_end,
            chain_start=snap.chain_start,
        ),
    )
    report.transactions = snap.transactions_stored
    report.wallets = snap.wallets
    report.earliest_tx_time = snap.earliest_tx_time
    report.latest_tx_time = snap.latest_tx_time
    report.db_bytes = snap.db_bytes or None
    report.rate_rpm = snap.rate_rpm
    report.limit_rpm = snap.limit_rpm
    report.eta_seconds = snap.eta_seconds
    report.backoff_until = snap.backoff_until
    report.last_error = snap.last_error
    report.last_error_at = snap.last_error_at
    report.last_progress_at = snap.last_progress_at
    report.consecutive_failures = snap.consecutive_failures
    report.rate_limited_until = snap.rate_limited_until
    report.rate_limited_reason = snap.rate_limited_reason
    report.restarts = snap.restarts
    report.counters = asdict(snap.counters)
    report.sources = dict(snap.window_sources)
    report.run_source = snap.source


def _from_facts(
    report: StatusReport, facts: StoredFacts, *, explicit_days: bool, now: float
) -> None:
    if not explicit_days and facts.target_days:
        report.target_days = facts.target_days
    days = report.target_days
    end = facts.range_end if facts.range_end is not None else int(now)
    start = (
        facts.range_start
        if (facts.range_start is not None and facts.target_days == days)
        else end - days * DAY + 1
    )
    report.source = "database"
    report.range_start, report.range_end, report.chain_start = start, end, facts.chain_start
    good = [(s, e) for s, e, kind in facts.windows if kind in ("verified", "open")]
    bad = [(s, e) for s, e, kind in facts.windows if kind not in ("verified", "open")]
    verified = _fit(progress.day_coverage(good, start, end), days)
    touched = [v > 0 for v in _fit(progress.day_coverage(bad, start, end), days)] if bad else None
    _fill_coverage(
        report,
        day_states(
            verified,
            partial_hint=touched,
            range_start=start,
            range_end=end,
            chain_start=facts.chain_start,
        ),
    )
    report.transactions = facts.transactions
    report.wallets = facts.wallets
    report.earliest_tx_time = facts.earliest_tx_time
    report.latest_tx_time = facts.latest_tx_time
    report.db_bytes = facts.db_bytes
    report.last_run = facts.last_run
    report.oldest_check_at = facts.oldest_check_at
    report.sources = dict(facts.sources)


def build_status(
    *,
    db_path: Path,
    progress_path: Path,
    lock_path: Path,
    target_days: int,
    runner_path: Path | None = None,
    explicit_days: bool = True,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    now: float | None = None,
    cache: DatabaseCache | None = None,
) -> StatusReport:
    """Build the status model; never opens the database while a runner is alive.

    `explicit_days=False` lets the last run's `target_days` (meta) replace `target_days`. A
    database that cannot be read gives the `database_problem` state with the store's hint.
    """
    now = time.time() if now is None else now
    snap = progress.read(progress_path)
    runner = detect_runner(
        lock_path=lock_path,
        info_path=runner_path or runner_info_path(db_path),
        snapshot=snap,
        now=now,
    )
    if snap is not None and not explicit_days:
        target_days = snap.target_days
    report = StatusReport(
        state="",
        label="",
        exit_code=0,
        source="none",
        checked_at=now,
        db_path=str(db_path),
        target_days=target_days,
        runner=runner,
    )
    _set_state(report, StatusState.NOT_STARTED)
    _fill_coverage(report, DAY_MISSING * target_days)
    if runner.alive:
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    try:
        facts = read_facts_cached(db_path, cache)
    except DatabaseBusy:
        # A runner took the database between our check and our open: use its snapshot.
        report.runner.alive = True
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    except StoreError as exc:
        _set_state(report, StatusState.DATABASE_PROBLEM)
        report.reason, report.hint = exc.message, exc.hint
        return report
    if snap is not None and snap.phase not in TERMINAL_PHASES:
        report.notes.append(
            f"the last run (pid {snap.pid}) ended without finishing: crashed or killed"
        )
    if snap is not None and snap.rate_limited_until and snap.rate_limited_until > now:
        what = snap.rate_limited_reason or "a stated limit"
        report.notes.append(
            f"the last run stopped on {what}; it resets at {clock(snap.rate_limited_until)}"
        )
    if facts is None or not facts.has_data:
        if snap is not None:
            _from_snapshot(report, snap)
            _set_state(report, _finished_state(report))
        return report
    _from_facts(report, facts, explicit_days=explicit_days, now=now)
    if snap is not None:
        report.run_source = snap.source
    _set_state(report, _finished_state(report))
    return report


def _running(
    report: StatusReport, snap: ProgressSnapshot | None, *, stall_seconds: float, now: float
) -> None:
    own = snap if snap is not None and report.runner.pid in (None, snap.pid) else None
    if own is not None:
        _from_snapshot(report, own)
    activity = judge_activity(own, report.runner, stall_seconds=stall_seconds, now=now)
    _set_state(report, activity.state)
    report.reason = activity.reason
    if activity.state is StatusState.RATE_LIMITED and own is not None and own.rate_limited_until:
        report.label = f"Rate-limited until {clock(own.rate_limited_until)}"
    if activity.state is not StatusState.RUNNING or own is None:
        report.notes.append(activity.reason)
