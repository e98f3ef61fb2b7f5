"""Where a backfill stands, as a model that `stxbf status`, `stxbf health` and the monitor all read.

DuckDB lets no other process open a database that a runner is writing, not even read-only. So
`build_status` first asks whether a runner is alive (`stxbf.process`) and, if one is, reads only
the snapshot that the runner publishes every second. It reads the database itself (through
`stxbf.report.database`, read-only and cached) only when no runner holds it.

This module also holds the one rule, `judge_activity`, that decides whether a live runner is
running, degraded, stalled or rate-limited, so that status and health cannot disagree. A rate and
an ETA are reported only while pages arrive (`not_progressing` below), in the JSON as on screen.

The target is the one the operator configured (flag > STXBF_TARGET_DAYS > config file > 365, as
`stxbf run` resolves it), never the last run's: a year left half done and then topped up nightly
by `run --target-days 7` must not read as complete. The run's own target is only shown.

Which days count as covered is decided by `stxbf.report.days`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from stxbf import defaults, snapshot
from stxbf.codes import STATUS_STATES, TERMINAL_PHASES, Phase, StatusState
from stxbf.errors import DatabaseBusy, StoreError
from stxbf.paths import DataPaths
from stxbf.process import RunnerProcess, detect_runner
from stxbf.report.database import DatabaseCache, StoredFacts, read_facts_cached
from stxbf.report.days import (
    DAY_BEFORE_CHAIN,
    DAY_MISSING,
    DAY_PARTIAL,
    DAY_VERIFIED,
    strip_from_fractions,
    strip_from_windows,
)
from stxbf.snapshot import DAY, ProgressSnapshot, backing_off
from stxbf.words import clock, days_count, plural

SCHEMA = 1


@dataclass
class StatusReport:
    """Hold everything `stxbf status --json` prints; its field names are an interface (schema 1)."""

    state: str
    label: str
    exit_code: int
    source: str  # progress (runner's snapshot) | database | none
    checked_at: float
    db_path: str
    target_days: int  # the configured target every day count is judged against
    run_target_days: int | None = None  # the current (or last) run's own target, for information
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
    runner: RunnerProcess = field(default_factory=RunnerProcess)
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
    # the API's monthly quota as the current (or last) run last heard it, and when
    quota_limit: float | None = None
    quota_remaining: float | None = None
    quota_at: float | None = None
    notes: list[str] = field(default_factory=list)
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- whether a live runner is making progress ----------------------------------------------------
#
# Stalled means no progress (no page arrived, no window committed) for `stall_seconds`, not a
# missing heartbeat: a runner can publish every second while every request fails. Waiting out a
# limit that the API stated (a retry-after, a used-up window, a quota) is its own state, not a
# stall. Degraded comes first: when the requests keep failing (an outage), for the last
# `DEGRADED_FAILURES` of them or for `DEGRADED_SECONDS` with no page between (stxbf.defaults), a
# monitor can warn long before the stall limit pages anyone.


@dataclass(frozen=True)
class Activity:
    """What a live runner is doing (RUNNING, DEGRADED, STALLED or RATE_LIMITED), and why."""

    state: StatusState
    reason: str


def _waits_on(snap: ProgressSnapshot, now: float) -> str:
    """Say what a runner without progress is waiting for, as far as its snapshot tells."""
    parts = []
    if snap.consecutive_failures:
        failures = f"{plural(snap.consecutive_failures, 'failure')} in a row"
        parts.append(f"{failures}, last: {snap.last_error}" if snap.last_error else failures)
    elif (
        snap.last_error
        and snap.last_error_at
        and snap.last_error_at >= (snap.last_progress_at or 0)
    ):
        parts.append(f"last error: {snap.last_error}")
    if snap.backoff_until is not None and snap.backoff_until > now:
        parts.append(f"a retry-after gate until {clock(snap.backoff_until)}")
    return "; ".join(parts) or f"phase {snap.phase}, no error reported"


def _stalled(quiet: float, limit: float, what: str, then: str = "") -> Activity | None:
    """Judge stalled once `what` was quiet over `limit`, worded `what N s (limit L s)then`."""
    if quiet <= limit:
        return None
    return Activity(StatusState.STALLED, f"{what} {quiet:.0f} s (limit {limit:.0f} s){then}")


def _degraded(snap: ProgressSnapshot, reference: float, now: float) -> Activity | None:
    """Judge an outage from the snapshot, or return None while requests succeed.

    The reason reads like `backing off: 111 failures in a row for 41 s, last page 31 s ago, last
    error: connection refused`.
    """
    failures = snap.consecutive_failures
    if not failures:
        return None
    failing = max(0.0, now - (snap.failing_since or reference))
    if failures < defaults.DEGRADED_FAILURES and failing < defaults.DEGRADED_SECONDS:
        return None
    backing_off = snap.phase == Phase.BACKING_OFF or (
        snap.backoff_until is not None and snap.backoff_until > now
    )
    what = "backing off" if backing_off else "requests failing"
    row = "failure in a row" if failures == 1 else "failures in a row"
    parts = [f"{what}: {failures} {row} for {failing:.0f} s"]
    if snap.last_progress_at is not None:
        parts.append(f"last page {max(0.0, now - snap.last_progress_at):.0f} s ago")
    else:
        parts.append("no page yet")
    if snap.last_error:
        parts.append(f"last error: {snap.last_error}")
    return Activity(StatusState.DEGRADED, ", ".join(parts))


def judge_activity(
    snap: ProgressSnapshot | None, runner: RunnerProcess, *, stall_seconds: float, now: float
) -> Activity:
    """Judge a live runner running, degraded, stalled or rate-limited, for status and health.

    A snapshot without `last_progress_at` (written by an older stxbf, or before the first page)
    falls back to its start when no page has arrived yet, and else to its heartbeat.
    """
    if snap is None:
        since = now - (runner.started_at or now)
        quiet = f"the runner has published no progress in the {since:.0f} s since it started"
        if since > stall_seconds:
            return Activity(StatusState.STALLED, f"{quiet} (limit {stall_seconds:.0f} s)")
        return Activity(StatusState.RUNNING, "the runner has not published progress yet")
    hung = _stalled(
        max(0.0, now - snap.updated_at),
        stall_seconds,
        "no progress heartbeat for",
        ": the runner is alive but not publishing (hung?)",
    )
    if hung is not None:
        return hung
    if snap.rate_limited_until is not None and snap.rate_limited_until > now:
        what = snap.rate_limited_reason or "a stated rate limit"
        return Activity(
            StatusState.RATE_LIMITED,
            f"rate-limited until {clock(snap.rate_limited_until)}: waiting out {what}",
        )
    reference = snap.last_progress_at
    if reference is None:
        reference = snap.started_at if snap.counters.pages == 0 else snap.updated_at
    idle = max(0.0, now - reference)
    waiting = _stalled(
        idle,
        stall_seconds,
        "no page has arrived and no window was committed for",
        f"; waiting on: {_waits_on(snap, now)}" if idle > stall_seconds else "",
    )
    if waiting is not None:
        return waiting
    return _degraded(snap, reference, now) or Activity(
        StatusState.RUNNING, "runner alive and making progress"
    )


# -- the model ---------------------------------------------------------------------------------


def _fill_coverage(report: StatusReport, coverage: str) -> None:
    """Set the coverage strip and the day counts and percentage that follow from it."""
    report.coverage = coverage
    report.days_before_chain = coverage.count(DAY_BEFORE_CHAIN)
    report.days_verified = coverage.count(DAY_VERIFIED) + report.days_before_chain
    report.days_partial = coverage.count(DAY_PARTIAL)
    report.days_missing = coverage.count(DAY_MISSING)
    report.percent = round(100.0 * report.days_verified / max(1, report.target_days), 1)


def _set_state(report: StatusReport, state: StatusState) -> None:
    """Set the state with its label and exit code from the registry (`stxbf.codes`)."""
    outcome = STATUS_STATES[state]
    report.state, report.label, report.exit_code = str(state), outcome.label, outcome.exit_code


def _finished_state(report: StatusReport) -> StatusState:
    """Return the state of a backfill that no runner is working on: complete or incomplete."""
    if report.days_verified < report.target_days:
        return StatusState.INCOMPLETE
    if report.days_before_chain:
        return StatusState.REACHED_CHAIN_START
    return StatusState.COMPLETE


def _copy(report: StatusReport, source: object, names: tuple[str, ...]) -> None:
    """Copy the fields named `names` from a snapshot or the stored facts onto the report."""
    for name in names:
        setattr(report, name, getattr(source, name))


# The report fields a progress snapshot and the stored facts fill under the same name.
_SNAPSHOT_FIELDS = (
    "wallets", "earliest_tx_time", "latest_tx_time", "rate_rpm", "limit_rpm", "eta_seconds",
    "backoff_until", "last_error", "last_error_at", "last_progress_at", "consecutive_failures",
    "rate_limited_until", "rate_limited_reason", "restarts",
)  # fmt: skip
_FACTS_FIELDS = (
    "transactions", "wallets", "earliest_tx_time", "latest_tx_time", "db_bytes", "last_run",
    "oldest_check_at",
)  # fmt: skip


def _from_snapshot(report: StatusReport, snap: ProgressSnapshot) -> None:
    """Fill the report from a runner's progress snapshot, judged against the configured target."""
    report.source = "progress"
    days = report.target_days
    start = snap.range_end - days * DAY + 1 if days != snap.target_days else snap.range_start
    report.range_start, report.range_end, report.chain_start = (
        start,
        snap.range_end,
        snap.chain_start,
    )
    strip = strip_from_fractions(
        snap.coverage, days=days, start=start, end=snap.range_end, chain_start=snap.chain_start
    )
    _fill_coverage(report, strip)
    _copy(report, snap, _SNAPSHOT_FIELDS)
    report.transactions = snap.transactions_stored
    report.db_bytes = snap.db_bytes or None
    report.counters = asdict(snap.counters)
    report.sources = dict(snap.window_sources)
    report.run_source = snap.source
    _quota_from(report, snap)


def _quota_from(report: StatusReport, snap: ProgressSnapshot) -> None:
    """Copy the monthly quota a run heard of last; it outlives the run (and plans the next one)."""
    if snap.quota_remaining is not None:
        report.quota_limit, report.quota_remaining = snap.quota_limit, snap.quota_remaining
        report.quota_at = snap.updated_at


def _from_facts(report: StatusReport, facts: StoredFacts, *, now: float) -> None:
    """Fill the report from the database's facts, judged against the configured target."""
    days = report.target_days
    end = facts.range_end if facts.range_end is not None else int(now)
    start = (
        facts.range_start
        if (facts.range_start is not None and facts.target_days == days)
        else end - days * DAY + 1
    )
    report.source = "database"
    report.range_start, report.range_end, report.chain_start = start, end, facts.chain_start
    strip = strip_from_windows(
        facts.windows, days=days, start=start, end=end, chain_start=facts.chain_start
    )
    _fill_coverage(report, strip)
    _copy(report, facts, _FACTS_FIELDS)
    report.sources = dict(facts.sources)


# -- building it -------------------------------------------------------------------------------


def build_status(
    paths: DataPaths,
    *,
    target_days: int,
    stall_seconds: float = defaults.STALL_SECONDS,
    now: float | None = None,
    cache: DatabaseCache | None = None,
) -> StatusReport:
    """Build the status model of the backfill in `paths`, judged against `target_days`.

    It never opens the database while a runner is alive. A database that cannot be read gives
    the `database_problem` state, with the store's hint.
    """
    now = time.time() if now is None else now
    snap = snapshot.read(paths.progress)
    runner = detect_runner(paths, snap=snap, now=now)
    report = StatusReport(
        state="",
        label="",
        exit_code=0,
        source="none",
        checked_at=now,
        db_path=str(paths.db),
        target_days=target_days,
        runner=runner,
    )
    _set_state(report, StatusState.NOT_STARTED)
    _fill_coverage(report, DAY_MISSING * target_days)
    if runner.alive:
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    try:
        facts = read_facts_cached(paths.db, cache)
    except DatabaseBusy:
        # A runner took the database between our check and our open: use its snapshot.
        report.runner.alive = True
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    except StoreError as exc:
        _set_state(report, StatusState.DATABASE_PROBLEM)
        report.reason, report.hint = exc.message, exc.hint
        return report
    _idle(report, snap, facts, now=now)
    return report


def _idle(
    report: StatusReport,
    snap: ProgressSnapshot | None,
    facts: StoredFacts | None,
    *,
    now: float,
) -> None:
    """Fill the report when no runner is alive: from the database's facts (else from the last
    snapshot), with notes on how the last run ended.
    """
    if snap is not None:
        report.notes += _last_run_notes(snap, now)
    if facts is not None and facts.has_data:
        _from_facts(report, facts, now=now)
        report.run_target_days = facts.target_days
        if snap is not None:
            report.run_source = snap.source
            _quota_from(report, snap)
    elif snap is not None:
        _from_snapshot(report, snap)
    else:
        return
    if snap is not None and report.run_target_days is None:
        report.run_target_days = snap.target_days
    _set_state(report, _finished_state(report))
    _note_other_target(report, "last run")


def _note_other_target(report: StatusReport, which: str) -> None:
    """Say so when the run's own target is not the one judged, since the day counts then differ."""
    run_days = report.run_target_days
    if run_days is None or run_days == report.target_days:
        return
    judged = days_count(report.target_days)
    report.notes.append(
        f"the {which} targeted {days_count(run_days)}; this status judges {judged} "
        "(--target-days, STXBF_TARGET_DAYS or target_days in the config file)"
    )


def _last_run_notes(snap: ProgressSnapshot, now: float) -> list[str]:
    """Say how the last run ended when that matters: it crashed, or it stopped on a stated limit."""
    notes = []
    if snap.phase not in TERMINAL_PHASES:
        notes.append(f"the last run (pid {snap.pid}) ended without finishing: crashed or killed")
    if snap.rate_limited_until and snap.rate_limited_until > now:
        what = snap.rate_limited_reason or "a stated limit"
        notes.append(
            f"the last run stopped on {what}; it resets at {clock(snap.rate_limited_until)}"
        )
    return notes


def _running(
    report: StatusReport, snap: ProgressSnapshot | None, *, stall_seconds: float, now: float
) -> None:
    """Fill the report for a live runner from its own snapshot, and judge what it is doing."""
    own = snap if snap is not None and report.runner.pid in (None, snap.pid) else None
    if own is not None:
        _from_snapshot(report, own)
        report.run_target_days = own.target_days
    activity = judge_activity(own, report.runner, stall_seconds=stall_seconds, now=now)
    _set_state(report, activity.state)
    report.reason = activity.reason
    if activity.state is StatusState.RATE_LIMITED and own is not None and own.rate_limited_until:
        report.label = f"Rate-limited until {clock(own.rate_limited_until)}"
    if not_progressing(report, now) is not None:  # the past's rate and ETA are not today's
        report.rate_rpm = report.eta_seconds = None
    if activity.state is not StatusState.RUNNING or own is None:
        report.notes.append(activity.reason)
    _note_other_target(report, "running backfill")


def not_progressing(report: StatusReport, now: float) -> str | None:
    """Say why a live runner is making no progress, or return None while it is.

    The reasons are stalled, degraded, rate-limited and backing off. A rate and an ETA are only true
    while pages arrive, so the status model drops them (JSON `null`) whenever this gives a reason.
    """
    if report.state == StatusState.STALLED:
        return "stalled"
    if report.state == StatusState.DEGRADED:
        return "degraded"
    if report.state == StatusState.RATE_LIMITED:
        return "rate-limited"
    if backing_off(report.runner.phase or "", report.backoff_until, now):
        return "backing off"
    return None
