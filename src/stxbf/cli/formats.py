"""How figures read on screen: times, durations, sizes, counts, the rate and ETA, the last error.

Plain text, no rich: `status`, `health`, the monitor and `run`'s live line all word things alike.
"""

from __future__ import annotations

from stxbf.report.status import StatusReport, not_progressing
from stxbf.words import clock, days_count, fmt_duration


def days_text(report: StatusReport) -> str:
    """`12/30 days (40.0%)`: how far the backfill is, worded the same on every screen."""
    return f"{report.days_verified}/{report.target_days} days ({report.percent:.1f}%)"


def target_text(target_days: int, run_target_days: int | None, *, running: bool = False) -> str:
    """`365 days (last run: 7 days)`: the target judged, and the run's own when it is known."""
    if run_target_days is None:
        return days_count(target_days)
    if run_target_days == target_days:
        return f"{days_count(target_days)} (as {'this run' if running else 'the last run'})"
    which = "this run" if running else "last run"
    return f"{days_count(target_days)} ({which}: {days_count(run_target_days)})"


def progress_line(report: StatusReport) -> str:
    return f"Progress: {days_text(report)}"


def quota_text(report: StatusReport) -> str:
    """`148,210 of 150,000 requests left (at 14:02 UTC)`: what the API's headers said last."""
    assert report.quota_remaining is not None
    of = f" of {report.quota_limit:,.0f}" if report.quota_limit is not None else ""
    when = f" (at {clock(report.quota_at)})" if report.quota_at is not None else ""
    return f"{report.quota_remaining:,.0f}{of} requests left{when}"


def rate_text(report: StatusReport) -> str:
    if report.rate_rpm is None:
        return "—"
    limit = f" (limit {report.limit_rpm:.0f})" if report.limit_rpm else " (no limit)"
    return f"{report.rate_rpm:.0f} requests/min{limit}"


def rate_and_eta(report: StatusReport, now: float) -> tuple[str, str]:
    """The rate and ETA to show: dashes (and why) while no progress is being made."""
    why = not_progressing(report, now)
    if why is not None:
        return f"— ({why})", f"— ({why})"
    return rate_text(report), fmt_duration(report.eta_seconds)


def describe_last_error(
    error: str, error_at: float | None, progress_at: float | None, now: float
) -> tuple[str, bool]:
    """`HTTP 503 from the API (2m 10s ago, recovered)`, and whether pages arrived since."""
    recovered = error_at is not None and progress_at is not None and progress_at > error_at
    notes = []
    if error_at is not None:
        notes.append(f"{fmt_duration(max(0.0, now - error_at))} ago")
    if recovered:
        notes.append("recovered")
    return (f"{error} ({', '.join(notes)})" if notes else error), recovered


def last_error_of(report: StatusReport, now: float) -> tuple[str, bool] | None:
    """The report's last error as `describe_last_error` words it, or None when there is none."""
    if not report.last_error:
        return None
    return describe_last_error(
        report.last_error, report.last_error_at, report.last_progress_at, now
    )
