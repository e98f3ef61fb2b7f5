"""The one rule that says whether a live runner is running, degraded, stalled or rate-limited.

`stxbf status` and `stxbf health` both ask `judge_activity`, so they cannot disagree. Stalled means
no progress (no page arrived, no window committed) for `stall_seconds`, not a missing heartbeat: a
runner can publish every second while every request fails. Waiting out a limit the API stated (a
retry-after, a used-up window, a quota) is its own state, not a stall. Degraded comes first: the
requests keep failing (an outage), the last `DEGRADED_FAILURES` of them or for `DEGRADED_SECONDS`
with no page between (stxbf.defaults), so a monitor can warn long before the stall limit pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stxbf import defaults
from stxbf.codes import Phase, StatusState
from stxbf.words import clock, plural

if TYPE_CHECKING:
    from stxbf.process import RunnerState
    from stxbf.snapshot import ProgressSnapshot


@dataclass(frozen=True)
class Activity:
    state: StatusState  # RUNNING | DEGRADED | STALLED | RATE_LIMITED
    reason: str


def _waits_on(snap: ProgressSnapshot, now: float) -> str:
    """What a runner without progress is waiting for, as far as its snapshot says."""
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
    """Stalled once `what` has been quiet longer than `limit`, worded `what N s (limit L s)then`."""
    if quiet <= limit:
        return None
    return Activity(StatusState.STALLED, f"{what} {quiet:.0f} s (limit {limit:.0f} s){then}")


def _degraded(snap: ProgressSnapshot, reference: float, now: float) -> Activity | None:
    """An outage as the snapshot shows it, worded `backing off: 111 failures in a row for 41 s,
    last page 31 s ago, last error: connection refused`; None while requests succeed."""
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
    snap: ProgressSnapshot | None, runner: RunnerState, *, stall_seconds: float, now: float
) -> Activity:
    """Running, degraded, stalled or rate-limited: the rule `status` and `health` share.

    A snapshot without `last_progress_at` (written by an older stxbf, or before the first page)
    falls back to its start when no page has arrived yet, else to the heartbeat.
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
