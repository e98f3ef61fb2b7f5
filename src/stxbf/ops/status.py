"""Where a backfill stands, as a model: `stxbf status`, `health` and the monitor all read this.

DuckDB lets no other process open a database a runner is writing, not even read-only. So the
builder first asks whether a runner is alive (the lock file's holder, the runner's pid file, the
progress snapshot's pid) and, if so, reads only the snapshot the runner publishes every second. The
database itself is opened (read-only, briefly) only when no runner holds it.

Days count as covered only when the engine verified them (a window's stored rows matched the API's
total for it), so a gap in the middle of the range shows as missing even when older days exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stxbf import state as progress
from stxbf.errors import DatabaseBusy, StoreError
from stxbf.state import DAY, ProgressSnapshot

SCHEMA = 1
DEFAULT_STALL_SECONDS = 600.0
TERMINAL_PHASES = frozenset({"finished", "failed", "interrupted", "stopped"})

# One character per day in `StatusReport.coverage`, oldest day first.
DAY_VERIFIED = "V"
DAY_PARTIAL = "p"
DAY_MISSING = "."
DAY_BEFORE_CHAIN = "-"

STATES: dict[str, tuple[str, int]] = {
    # state: (label printed as "Status: …", exit code of `stxbf status`)
    "complete": ("Complete", 0),
    "reached_chain_start": ("Reached chain start", 0),
    "incomplete": ("Incomplete", 3),
    "running": ("Running", 5),
    "stalled": ("Stalled", 6),
    "not_started": ("Not started", 7),
}


# -- is a runner alive? ------------------------------------------------------------------------


def runner_info_path(db_path: Path) -> Path:
    """`<db>.runner.json`: the runner's pid file, written while it holds the lock."""
    return db_path.with_name(db_path.name + ".runner.json")


@dataclass(frozen=True)
class RunnerInfo:
    pid: int
    started_at: float
    argv_safe: list[str] = field(default_factory=list)
    host: str = ""


def read_runner_info(path: Path) -> RunnerInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunnerInfo(
            pid=int(data["pid"]),
            started_at=float(data.get("started_at") or 0.0),
            argv_safe=[str(arg) for arg in data.get("argv_safe") or []],
            host=str(data.get("host") or ""),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        fields_after_name = stat.read_text().rsplit(")", 1)[1].split()
        return fields_after_name[0] not in ("Z", "X")
    return True


def process_start_time(pid: int) -> float | None:
    """When `pid` started (unix time), where /proc tells; guards against a recycled pid."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(after_name[19])
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def lock_holder(lock_path: Path) -> int | bool | None:
    """The pid holding the flock on `lock_path`, False when nobody does, None when we cannot tell.

    Reads /proc/locks (Linux) instead of trying to acquire the lock: a probe that takes the lock
    even for a microsecond could make a runner starting at that moment fail with "lock held".
    """
    try:
        st = lock_path.stat()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4234 fe:00:2148928 0 EOF" (blocked waiters have "->")
        if len(parts) >= 6 and parts[1] != "->" and parts[5] == wanted:
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return False


@dataclass
class RunnerState:
    """What we know about the runner process, whichever way we found out."""

    alive: bool = False
    pid: int | None = None
    found_by: str = "none"  # lock | pid-file | progress | none
    started_at: float | None = None
    host: str | None = None
    phase: str | None = None
    heartbeat_age: float | None = None
    exit_code: int | None = None


def _pid_matches(pid: int, started_at: float | None) -> bool:
    if not pid_alive(pid):
        return False
    if started_at:
        began = process_start_time(pid)
        if began is not None and began > started_at + 2.0:
            return False  # the pid was recycled by a newer process
    return True


def detect_runner(
    *,
    lock_path: Path,
    info_path: Path,
    snapshot: ProgressSnapshot | None,
    now: float,
) -> RunnerState:
    """Decide whether a runner is alive without touching the lock or the database."""
    info = read_runner_info(info_path)
    result = RunnerState()
    if snapshot is not None:
        result.phase = snapshot.phase
        result.heartbeat_age = max(0.0, now - snapshot.updated_at)
        result.exit_code = snapshot.exit_code
    holder = lock_holder(lock_path)
    if isinstance(holder, int) and not isinstance(holder, bool):
        result.alive, result.pid, result.found_by = True, holder, "lock"
    elif info is not None and info.host and info.host != socket.gethostname():
        # A runner on another host (shared filesystem): only its heartbeat can tell.
        fresh = snapshot is not None and snapshot.phase not in TERMINAL_PHASES
        result.alive, result.pid, result.found_by = fresh, info.pid, "pid-file"
    elif info is not None and _pid_matches(info.pid, info.started_at):
        result.alive, result.pid, result.found_by = True, info.pid, "pid-file"
    elif (
        snapshot is not None
        and snapshot.phase not in TERMINAL_PHASES
        and _pid_matches(snapshot.pid, snapshot.started_at)
    ):
        result.alive, result.pid, result.found_by = True, snapshot.pid, "progress"
    if info is not None:
        result.pid = result.pid or info.pid
        result.started_at = info.started_at
        result.host = info.host or None
    if snapshot is not None and (result.pid in (None, snapshot.pid)):
        result.pid = snapshot.pid
        result.started_at = result.started_at or snapshot.started_at
    return result


# -- the model ---------------------------------------------------------------------------------


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
    last_progress_at: float | None = None  # a page last arrived (after last_error: recovered)
    counters: dict[str, int] | None = None
    last_run: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _set_state(report: StatusReport, state: str) -> None:
    report.state = state
    report.label, report.exit_code = STATES[state]


def _finished_state(report: StatusReport) -> str:
    if report.days_verified < report.target_days:
        return "incomplete"
    return "reached_chain_start" if report.days_before_chain else "complete"


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
    report.counters = asdict(snap.counters)


def _int_or_none(value: str | None) -> int | None:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def _from_database(report: StatusReport, db_path: Path, *, explicit_days: bool, now: float) -> bool:
    """Fill the report from the database; False when there is no database (or nothing in it)."""
    from stxbf.store.db import Store  # duckdb is heavy: only when the database is read

    if not db_path.exists():
        return False
    try:
        store = Store.open(db_path, read_only=True)
    except StoreError as exc:
        if "empty" in exc.message:
            return False
        raise
    with store:
        meta_target = _int_or_none(store.get_meta("target_days"))
        range_start = _int_or_none(store.get_meta("range_start"))
        range_end = _int_or_none(store.get_meta("range_end"))
        chain_start = _int_or_none(store.get_meta("chain_start"))
        windows = store.windows()
        summary = store.summary(wallets=True)
        last_run = store.last_run()
    if not explicit_days and meta_target:
        report.target_days = meta_target
    days = report.target_days
    end = range_end if range_end is not None else int(now)
    start = (
        range_start if (range_start is not None and meta_target == days) else end - days * DAY + 1
    )
    report.source = "database"
    report.range_start, report.range_end, report.chain_start = start, end, chain_start
    good = [(w.start_time, w.end_time) for w in windows if w.state in ("verified", "open")]
    bad = [(w.start_time, w.end_time) for w in windows if w.state not in ("verified", "open")]
    verified = _fit(progress.day_coverage(good, start, end), days)
    touched = [v > 0 for v in _fit(progress.day_coverage(bad, start, end), days)] if bad else None
    _fill_coverage(
        report,
        day_states(
            verified,
            partial_hint=touched,
            range_start=start,
            range_end=end,
            chain_start=chain_start,
        ),
    )
    report.transactions = summary.transactions
    report.wallets = summary.wallets
    report.earliest_tx_time = summary.earliest_tx_time
    report.latest_tx_time = summary.latest_tx_time
    report.db_bytes = summary.db_bytes
    if last_run is not None:
        report.last_run = {k: v for k, v in last_run.items() if isinstance(v, (int, float, str))}
    return bool(windows) or summary.transactions > 0


_DB_FIELDS = (
    "target_days", "source", "range_start", "range_end", "chain_start", "coverage",
    "days_verified", "days_partial", "days_missing", "days_before_chain", "percent",
    "transactions", "wallets", "earliest_tx_time", "latest_tx_time", "db_bytes", "last_run",
)  # fmt: skip


@dataclass
class DatabaseCache:
    """The last database read, for the monitor: it re-reads only when the file has changed.

    Each read-only open is a moment in which a runner starting up could not open the database,
    so a screen refreshing every few seconds must not open it when nothing can have changed.
    """

    key: tuple[Any, ...] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    has_data: bool = False


def _file_key(db_path: Path) -> tuple[Any, ...]:
    key: list[Any] = []
    for path in (db_path, Path(f"{db_path}.wal")):
        try:
            st = path.stat()
            key += [st.st_mtime_ns, st.st_size, st.st_ino]
        except OSError:
            key += [None]
    return tuple(key)


def _from_database_cached(
    report: StatusReport,
    db_path: Path,
    *,
    explicit_days: bool,
    now: float,
    cache: DatabaseCache | None,
) -> bool:
    if cache is None:
        return _from_database(report, db_path, explicit_days=explicit_days, now=now)
    key = (report.target_days, explicit_days, *_file_key(db_path))
    if cache.key == key:
        for name, value in cache.fields.items():
            setattr(report, name, value)
        return cache.has_data
    has_data = _from_database(report, db_path, explicit_days=explicit_days, now=now)
    cache.key, cache.has_data = key, has_data
    cache.fields = {name: getattr(report, name) for name in _DB_FIELDS}
    return has_data


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

    `explicit_days=False` lets the last run's `target_days` (meta) replace `target_days`.
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
        state="not_started",
        label=STATES["not_started"][0],
        exit_code=STATES["not_started"][1],
        source="none",
        checked_at=now,
        db_path=str(db_path),
        target_days=target_days,
        runner=runner,
    )
    _fill_coverage(report, DAY_MISSING * target_days)
    if runner.alive:
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    try:
        has_data = _from_database_cached(
            report, db_path, explicit_days=explicit_days, now=now, cache=cache
        )
    except DatabaseBusy:
        # A runner took the database between our check and our open: use its snapshot.
        report.runner.alive = True
        _running(report, snap, stall_seconds=stall_seconds, now=now)
        return report
    if snap is not None and snap.phase not in TERMINAL_PHASES:
        report.notes.append(
            f"the last run (pid {snap.pid}) ended without finishing: crashed or killed"
        )
    if not has_data:
        if snap is not None:
            _from_snapshot(report, snap)
            _set_state(report, _finished_state(report))
        else:
            _set_state(report, "not_started")
        return report
    _set_state(report, _finished_state(report))
    return report


def _running(
    report: StatusReport, snap: ProgressSnapshot | None, *, stall_seconds: float, now: float
) -> None:
    runner = report.runner
    if snap is not None and (runner.pid is None or snap.pid == runner.pid):
        _from_snapshot(report, snap)
        age = runner.heartbeat_age if runner.heartbeat_age is not None else 0.0
        stalled = age > stall_seconds
        if stalled:
            report.notes.append(
                f"no progress heartbeat for {age:.0f} s (limit {stall_seconds:.0f} s)"
            )
    else:
        report.notes.append("the runner has not published progress yet")
        started = runner.started_at or now
        stalled = now - started > stall_seconds
    _set_state(report, "stalled" if stalled else "running")
