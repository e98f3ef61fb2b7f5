"""This module holds what a run is asked to do (`RunParams`) and what it reports (`RunReport`,
`VerifyReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stxbf import defaults
from stxbf.codes import ExitCode
from stxbf.paths import DataPaths
from stxbf.snapshot import ProgressSnapshot


@dataclass(frozen=True)
class RunParams:
    api_url: str
    api_key: str | None = field(repr=False)  # a traceback or debug log shows reprs
    paths: DataPaths  # the database and every file beside it (the lock, snapshot, record)
    target_days: int = defaults.TARGET_DAYS
    max_pages: int = defaults.MAX_PAGES
    max_iterations: int = 0
    concurrency: int = defaults.CONCURRENCY
    rpm: float | None = None
    request_timeout: float = defaults.REQUEST_TIMEOUT
    give_up_after: float = defaults.GIVE_UP_AFTER
    restarts: int = 0  # times a supervisor started this run again (published in the snapshot)
    settle_hours: float = defaults.SETTLE_HOURS
    verify: bool = False
    source: str = "auto"  # auto | v1 | v3 (see `RequestPath.may_switch`)
    max_requests: int | None = None  # requests this run may send (None: no budget)

    @property
    def db_path(self) -> Path:
        """Return the database file's path (`paths.db`)."""
        return self.paths.db


@dataclass
class ChangedWindow:
    """A verified window whose API answer no longer matches what is stored."""

    start_time: int
    end_time: int
    api_total: int  # the API's total now
    rows_stored: int  # before it was fetched again
    reason: str


@dataclass
class VerifyReport:
    """What `stxbf verify` (or `stxbf run --verify`) found and did."""

    windows_checked: int = 0
    windows_changed: int = 0
    windows_incomplete: int = 0  # changed, but fetching them again did not settle them
    windows_reopened: int = 0  # open or incomplete: fetched again whole by `stxbf verify`
    # stretches of the last run's range (and since its end) that no window holds: `run`'s job
    not_stored: list[tuple[int, int]] = field(default_factory=list)
    rows_added: int = 0
    rows_removed: int = 0
    requests: int = 0
    changed: list[ChangedWindow] = field(default_factory=list)
    damaged_tables: list[str] = field(default_factory=list)
    damaged_windows: list[tuple[int, int]] = field(default_factory=list)
    exit_code: int = 0
    message: str = ""


@dataclass
class RunReport:
    exit_code: ExitCode
    message: str
    snapshot: ProgressSnapshot | None = None
    verification: VerifyReport | None = None


class ProgressView(Protocol):
    """Receives the live snapshot besides the progress file: a terminal display, or nothing."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...
