"""Word times, durations, sizes and counts the same way in logs and on screen.

Every message, log line and view words a figure through these functions, so that `status`,
`health`, the monitor, `run`'s live line and the log never disagree on how a number reads.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone


def clock(when: float) -> str:
    """Return a unix time as the operator reads it, in UTC."""
    return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_time(ts: float | None) -> str:
    """Return a unix time as `clock` words it, or a dash when there is none."""
    return "—" if ts is None else clock(ts)


def fmt_duration(seconds: float | None) -> str:
    """Return a duration as the operator reads it (`1d 2h 03m`, `3h 07m`, `2m 05s`, `9s`), or a
    dash when it is unknown, negative or not finite."""
    if seconds is None or seconds < 0 or math.isinf(seconds) or math.isnan(seconds):
        return "—"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_bytes(size: int | None) -> str:
    """Return a size in the largest unit (B to TB, steps of 1024) that keeps the figure under
    1024, such as `1.5 MB`, or a dash when it is unknown."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fmt_count(value: int | None) -> str:
    """Return a count with thousands separators (`1,234`), or a dash when it is unknown."""
    return "—" if value is None else f"{value:,}"


def days_count(count: int) -> str:
    """Return a number of days with its noun: `1 day`, `3 days`."""
    return f"{count} day" if count == 1 else f"{count} days"


def utc_iso(ts: int | float) -> str:
    """Return a time as the log and the messages write it: ISO 8601 in UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """Return a count and its noun as the logs and the messages write them: `1 day`,
    `1,234 pages`."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
