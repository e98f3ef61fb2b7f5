"""Publish and read the progress snapshot that a running `stxbf run` writes for status, health
and the monitor.

DuckDB lets one process hold a database file open for writing, and a second process cannot even
open it read-only meanwhile. So the runner writes this small JSON file next to the database
(replaced atomically, about once a second) and readers use it while the lock is held; with no
runner, they read the database itself. The file never holds the API key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from stxbf.codes import Phase

SNAPSHOT_SCHEMA = 1
DAY = 86_400


@dataclass
class Counters:
    """Count what the engine has done in this process; the counts start again with each run."""

    requests: int = 0
    pages: int = 0
    transactions_fetched: int = 0
    responses_429: int = 0
    errors: int = 0
    retries: int = 0
    windows_verified: int = 0
    windows_refetched: int = 0


@dataclass
class ProgressSnapshot:
    """Hold what a running `stxbf run` tells status, health and the monitor about itself.

    Times are unix seconds.
    """

    pid: int  # the runner's process
    started_at: float  # when this process started the run
    updated_at: float  # when this snapshot was written
    phase: str  # a `stxbf.codes.Phase`
    api_url: str
    target_days: int  # the days back from `range_end` the run is to fill
    range_start: int  # unix seconds, inclusive
    range_end: int  # unix seconds, inclusive ("now" when the run planned its range)
    chain_start: int | None = None  # where the chain's history begins, if inside the range
    iteration: int = 0  # the iteration the run is on (each spends at most --max-pages)
    counters: Counters = field(default_factory=Counters)
    coverage: list[float] = field(default_factory=list)  # per day, oldest first, 0..1
    transactions_stored: int = 0  # rows the database holds
    wallets: int | None = None  # distinct senders stored (None: not counted yet)
    earliest_tx_time: int | None = None  # the oldest stored transaction's burn block time
    latest_tx_time: int | None = None  # the newest stored transaction's burn block time
    expected_total: int | None = None  # the API's total for the whole range, when known
    rate_rpm: float = 0.0  # achieved over the last minute
    limit_rpm: float | None = None  # the pacer's current ceiling (None = unthrottled)
    backoff_until: float | None = None  # wall-clock time the pacer waits for (429 / outage)
    last_error: str | None = None  # the last failure's one-line message
    last_error_at: float | None = None
    # Progress, not a heartbeat: when a page last arrived or a window was last committed.
    last_progress_at: float | None = None
    consecutive_failures: int = 0  # requests in a row that failed (0 once a page arrives)
    failing_since: float | None = None  # when the first of those failed (None: none failing)
    # A stated limit being waited out (a 429's retry-after, a used-up window or quota): not a stall.
    rate_limited_until: float | None = None
    rate_limited_reason: str | None = None  # e.g. "monthly quota", "retry-after"
    restarts: int = 0  # times a supervisor (the tmux runner pane) started this run again
    eta_seconds: float | None = None  # the time left to the target (None: no estimate yet)
    db_bytes: int = 0  # the database file's size
    exit_code: int | None = None  # the code the run ends with, once it is known
    source: str | None = None  # the route this run fetches from now: v1 or v3 (None: not yet)
    # The verified and open windows, counted by the route that filled them, as the database
    # holds them.
    window_sources: dict[str, int] = field(default_factory=dict)
    # The API's monthly quota (x-ratelimit-limit/remaining-stacks-month), as it last said.
    quota_limit: float | None = None
    quota_remaining: float | None = None
    requests_needed: int | None = None  # about what the rest of the range needs (v1's total)
    max_requests: int | None = None  # this run's budget (--max-requests)
    in_flight_limit: int | None = None  # requests the run may have in flight now
    schema: int = SNAPSHOT_SCHEMA  # the file's format, checked by `read`

    @property
    def days_verified(self) -> int:
        """Return how many days of the range are wholly covered."""
        return sum(1 for value in self.coverage if value >= 1.0)

    def to_json(self) -> str:
        """Return the snapshot as compact JSON, the form `publish` writes."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgressSnapshot:
        """Build a snapshot from decoded JSON, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        counters = values.get("counters") or {}
        counter_names = {f.name for f in fields(Counters)}
        values["counters"] = Counters(**{k: v for k, v in counters.items() if k in counter_names})
        return cls(**values)


def publish(path: Path, snapshot: ProgressSnapshot) -> None:
    """Write the snapshot to `path`, replacing it atomically so that a reader sees the old
    snapshot or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(snapshot.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> ProgressSnapshot | None:
    """Return the last published snapshot, or None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
        return None
    try:
        return ProgressSnapshot.from_dict(data)
    except (TypeError, ValueError):
        return None


def day_coverage(
    intervals: Iterable[tuple[int, int]], range_start: int, range_end: int
) -> list[float]:
    """Return the fraction of each day of [range_start, range_end] that the inclusive intervals
    cover.

    Days are counted back from `range_end`, so the last entry is the most recent 24 hours.
    """
    days = max(1, -(-(range_end - range_start + 1) // DAY))
    first_day_start = range_end + 1 - days * DAY
    covered = [0] * days
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        start, end = max(start, range_start), min(end, range_end)
        if start > end:
            continue
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        day = (start - first_day_start) // DAY
        while start <= end:
            day_end = first_day_start + (day + 1) * DAY - 1
            chunk_end = min(end, day_end)
            covered[day] += chunk_end - start + 1
            start = chunk_end + 1
            day += 1
    lengths = [DAY] * days
    lengths[0] = DAY - max(0, range_start - first_day_start)
    return [min(1.0, covered[i] / lengths[i]) if lengths[i] > 0 else 1.0 for i in range(days)]


def backing_off(phase: str, backoff_until: float | None, now: float) -> bool:
    """Return whether a runner in `phase` is waiting out failures rather than fetching pages.

    It is while its phase says so, and while a backoff it announced (`backoff_until`) lasts. The
    run's screen and the status model both ask, so that they say "backing off" at the same times.
    """
    return phase == Phase.BACKING_OFF or (backoff_until is not None and backoff_until > now)
