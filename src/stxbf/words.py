"""How stxbf writes times, durations, sizes and counts, in logs and on screen alike.

Every message, log line and view words a figure through these functions, so that `status`,
`health`, the monitor, `run`'s live line and the log never disagree on how a number reads.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone


def clock(when: float) -> str:
    """A unix time as the operator reads it (UTC)."""
    return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_time(ts: float | None) -> str:
    return "—" if ts is None else clock(ts)


def fmt_duration(seconds: float | None) -> str:
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
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fmt_count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def days_count(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def utc_iso(ts: int | float) -> str:
    """A time as the log and the messages write it: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """A count and its noun as the logs and the messages write them: `1 day`, `1,234 pages`."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
