"""This module exports the transactions as Parquet partitioned by day, for other engines to read:
`DIR/transactions/date=YYYY-MM-DD/data.parquet`.

One file per UTC day of `burn_block_time`, written by DuckDB itself (`COPY … (FORMAT parquet)`:
no pyarrow at run time), zstd, rows sorted by (block_height, tx_index) so each file's statistics
let a reader skip by block height. Every stored column keeps its type, except that HUGEINT (which
DuckDB's Parquet writer turns into a DOUBLE, losing digits) is written as DECIMAL(38, 0): exact,
and read as a decimal by Spark, Trino, pyarrow and Polars. Two TIMESTAMPTZ columns,
`block_timestamp` and `burn_block_timestamp`, give the unix-second times as timestamps.

Incremental: `manifest.json` in DIR records each day's row count and a checksum of its rows (the
XOR of every whole row's hash: a reorg that keeps a tx_id but moves it to another block changes
it too). An export rewrites only the days whose checksum, count or file differ, removes
the days the database no longer holds, and with nothing changed writes no file at all.

Atomic per day: a day is written into DIR's hidden temporary directory (same filesystem), then
renamed over the old file, so a reader or a crash sees the old day or the new one, never half of
one. The manifest is replaced (atomically) last, and only when it changed.

DuckDB lets one process open a file, so the export cannot read while `stxbf run` writes. It holds
the file for at most `hold_seconds` at a time, and between two holds asks `run_waiting` whether a
run has taken the lock: a run then opens the database within its own patience (5 s) and the export
stops, reporting the days it left for next time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from stxbf.codes import WindowState
from stxbf.errors import ConfigError, DatabaseBusy, DatabaseEmpty, LockHeld, StoreError
from stxbf.models import TX_COLUMNS
from stxbf.paths import file_key
from stxbf.store import checkpoints
from stxbf.store.connection import connect
from stxbf.store.faults import store_error
from stxbf.store.schema import check_and_migrate

DAY = 86_400
TABLE = "transactions"
FILE_NAME = "data.parquet"
MANIFEST_NAME = "manifest.json"
TEMP_DIR = ".stxbf-tmp"  # hidden: Spark, Trino and a `*/*.parquet` glob never look inside
LAYOUT = 1  # the manifest's and the files' shape; another value rewrites every day
# How `checksum` is made; another value rewrites every day. DuckDB's hash() is not promised to
# stay the same across its releases, so its version is part of the name: an upgrade rewrites
# every day once (a year: ~15 s), in exchange for a checksum 20x faster than MD5 (0.6 s).
CHECKSUM = f"xor-hash-row-duckdb-{duckdb.__version__}"
SORT = ("block_height", "tx_index", "tx_id")
# A run caps DuckDB at 64 MB to stay flat for hours; an export is short, and sorting each day
# inside 64 MB cost it 60 % more time (2.6 s against 1.6 s for 60 days of a 2M-row year).
MEMORY_LIMIT = "512MB"
OPEN_PATIENCE = 5.0  # seconds to wait for a reader (`status`) that holds the file for a moment


def select_sql(stored: set[str]) -> str:
    """Return the SELECT that makes a day's rows: every column of `TX_COLUMNS` with its type,
    and two timestamps. HUGEINT would reach Parquet as DOUBLE; DECIMAL(38, 0) holds every STX amount
    exactly. A column an older, unmigrated file lacks (opened read-only, it stays as it is) is
    written as NULL, so every export has the same columns."""
    columns = []
    for name, kind in TX_COLUMNS:
        value = name if name in stored else f"CAST(NULL AS {kind})"
        if kind == "HUGEINT":
            value = f"CAST({value} AS DECIMAL(38, 0))"
        columns.append(value if value == name else f"{value} AS {name}")
    return (
        f"SELECT {', '.join(columns)}, to_timestamp(block_time) AS block_timestamp, "  # noqa: S608
        f"to_timestamp(burn_block_time) AS burn_block_timestamp FROM {TABLE}"
    )


def stored_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [TABLE]
    ).fetchall()
    return {str(row[0]) for row in rows}


@dataclass(frozen=True)
class DayEntry:
    """What the manifest says of one exported day."""

    rows: int
    checksum: str
    verified: bool
    bytes: int
    written_at: str  # UTC, ISO 8601: when this day's file was last written

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "checksum": self.checksum,
            "verified": self.verified,
            "bytes": self.bytes,
            "written_at": self.written_at,
        }


@dataclass
class ExportReport:
    """What an export did; `stxbf export --json` prints it."""

    directory: str
    include_unverified: bool
    full: bool
    days_written: int = 0
    days_unchanged: int = 0
    days_removed: int = 0
    days_unverified_left_out: int = 0  # days with rows not yet verified, not exported
    days_left: int = 0  # days still to write when the export stopped for a run
    rows_written: int = 0
    rows_exported: int = 0  # rows in DIR when the export ended
    bytes_written: int = 0
    bytes_exported: int = 0  # the Parquet files' size in DIR when the export ended
    seconds: float = 0.0
    stopped_for_run: bool = False
    written: list[str] = field(default_factory=list)  # the days rewritten, as YYYY-MM-DD
    removed: list[str] = field(default_factory=list)


def day_name(day: int) -> str:
    """Return the date (YYYY-MM-DD) of the UTC day number `day`, counted from 1970-01-01."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


def day_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[int, str]]:
    """Return (rows, checksum) of every UTC day holding transactions, in one pass over the table.

    The checksum is the XOR of each whole row's hash: any value that changes, any row added or
    removed, changes it (a reorg that keeps a tx_id but moves it to another block too); the
    order rows are stored in does not.
    """
    rows = con.execute(
        f"SELECT burn_block_time // {DAY} AS day, count(*), bit_xor(hash(tx)) "  # noqa: S608
        f"FROM {TABLE} AS tx GROUP BY day"
    ).fetchall()
    return {int(day): (int(count), f"{int(digest):016x}") for day, count, digest in rows}


def verified_days(windows: list[checkpoints.WindowRecord]) -> set[int]:
    """Return the UTC days that lie wholly inside verified windows (windows never overlap)."""
    spans = sorted((w.start_time, w.end_time) for w in windows if w.state == WindowState.VERIFIED)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    days: set[int] = set()
    for start, end in merged:
        first = -(-start // DAY)  # the first day starting inside the span
        last = (end + 1) // DAY - 1  # the last day ending inside it
        days.update(range(first, last + 1))
    return days


@dataclass
class _Plan:
    """The days to write (with their new entry's facts), keep, and remove."""

    to_write: list[tuple[int, int, str, bool]]  # day, rows, checksum, verified
    unchanged: dict[str, DayEntry]
    to_remove: list[str]
    unverified_left_out: int


def plan_days(
    fingerprints: dict[int, tuple[int, str]],
    verified: set[int],
    manifest: dict[str, DayEntry],
    on_disk: dict[str, int | None],
    *,
    full: bool,
    include_unverified: bool,
) -> _Plan:
    """Decide each day's fate from the database's days, the manifest and the files present."""
    wanted: dict[str, tuple[int, int, str, bool]] = {}
    left_out = 0
    for day, (rows, checksum) in sorted(fingerprints.items()):
        is_verified = day in verified
        if not is_verified and not include_unverified:
            left_out += 1
            continue
        wanted[day_name(day)] = (day, rows, checksum, is_verified)
    to_write: list[tuple[int, int, str, bool]] = []
    unchanged: dict[str, DayEntry] = {}
    for name, (day, rows, checksum, is_verified) in wanted.items():
        entry = manifest.get(name)
        if (
            not full
            and entry is not None
            and (entry.rows, entry.checksum) == (rows, checksum)
            and on_disk.get(name) == entry.bytes  # the file is there, as it was written
        ):
            unchanged[name] = DayEntry(rows, checksum, is_verified, entry.bytes, entry.written_at)
        else:
            to_write.append((day, rows, checksum, is_verified))
    # newest first: the days a run changes most are the ones a reader wants first
    to_write.sort(reverse=True)
    to_remove = sorted((set(on_disk) | set(manifest)) - set(wanted))
    return _Plan(to_write, unchanged, to_remove, left_out)


class ExportDir:
    """DIR: the partitions, the manifest, the temporary directory, and the lock of one export."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.table = root / TABLE
        self.temp = root / TEMP_DIR
        self.manifest_path = root / MANIFEST_NAME

    def check(self) -> None:
        """Refuse a DIR that is a file, or one holding things an export did not write."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"export directory {self.root} is a file")
        if not self.root.is_dir() or self.manifest_path.exists():
            return
        # a first export killed before its manifest left only its table and temporary dirs
        foreign = [p.name for p in self.root.iterdir() if p.name not in (TABLE, TEMP_DIR)]
        if foreign:
            raise ConfigError(
                f"{self.root} is not empty and holds no stxbf export ({', '.join(foreign[:3])}): "
                "export into an empty directory or a previous export's"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold DIR's lock (a second export into it fails at once) with a fresh temporary dir.

        The lock is an flock on DIR itself, not a lock file: an export with nothing to do must
        touch no file (filelock truncates its file on every acquire on Python 3.10), and the
        kernel drops it with the process, so a killed export leaves nothing to clean up."""
        try:
            self.table.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.root, os.O_RDONLY)
        except OSError as exc:
            raise StoreError(f"cannot write to {self.root}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(f"another stxbf export is writing to {self.root}") from None
            shutil.rmtree(self.temp, ignore_errors=True)  # what a crashed export left
            self.temp.mkdir()
            yield
        finally:
            shutil.rmtree(self.temp, ignore_errors=True)
            os.close(handle)

    def partition(self, name: str) -> Path:
        return self.table / f"date={name}" / FILE_NAME

    def days_on_disk(self) -> dict[str, int | None]:
        """Return each partition directory's day and its file's size (None when it holds none)."""
        found: dict[str, int | None] = {}
        for folder in self.table.glob("date=*") if self.table.is_dir() else []:
            try:
                found[folder.name.removeprefix("date=")] = (folder / FILE_NAME).stat().st_size
            except OSError:
                found[folder.name.removeprefix("date=")] = None
        return found

    def read_manifest(self) -> dict[str, DayEntry]:
        """Return the days the last export recorded, or none (so every day is written again)
        when the manifest cannot be read."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if data.get("layout") != LAYOUT or data.get("checksum") != CHECKSUM:
                return {}
            return {name: DayEntry(**entry) for name, entry in data["days"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def write_manifest(self, days: dict[str, DayEntry], columns: list[dict[str, str]]) -> None:
        """Replace the manifest atomically, and not at all when its content would not change."""
        record = {
            "format": "stxbf-export",
            "layout": LAYOUT,
            "checksum": CHECKSUM,
            "table": TABLE,
            "partitioning": "date = the UTC day of burn_block_time (hive style: date=YYYY-MM-DD)",
            "sorted_by": list(SORT),
            "columns": columns,
            "days": {name: days[name].to_json() for name in sorted(days)},
        }
        text = json.dumps(record, indent=1) + "\n"
        with contextlib.suppress(OSError):
            if self.manifest_path.read_text(encoding="utf-8") == text:
                return
        self._replace_with_text(self.manifest_path, text)

    def _replace_with_text(self, target: Path, text: str) -> None:
        """Write beside the file, then rename it into place, readable as the Parquet files are
        (the umask decides)."""
        staged = self.temp / f"{target.name}.{os.getpid()}"
        try:
            with open(staged, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)

    def remove_day(self, name: str) -> None:
        folder = self.table / f"date={name}"
        self.partition(name).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def write_day(con: duckdb.DuckDBPyConnection, select: str, day: int, where: ExportDir) -> int:
    """Write one day beside its partition, then rename it into place; return its size."""
    name = day_name(day)
    staged = where.temp / f"{name}.parquet"
    start, end = day * DAY, day * DAY + DAY - 1
    quoted = str(staged).replace("'", "''")
    con.execute(
        f"COPY ({select} WHERE burn_block_time BETWEEN {start} AND {end} "
        f"ORDER BY {', '.join(SORT)}) TO '{quoted}' (FORMAT parquet, COMPRESSION zstd)"
    )
    with open(staged, "rb") as handle:  # on disk before it is named: a crash leaves old or new
        os.fsync(handle.fileno())
    target = where.partition(name)
    target.parent.mkdir(exist_ok=True)
    os.replace(staged, target)
    return target.stat().st_size


def output_columns(con: duckdb.DuckDBPyConnection, select: str) -> list[dict[str, str]]:
    """Return the exported columns and their DuckDB types, which the manifest tells its readers."""
    described = con.execute(f"DESCRIBE {select}").fetchall()
    return [{"name": str(row[0]), "type": str(row[1])} for row in described]


def _open_reader(db_path: Path, patience: float = OPEN_PATIENCE) -> duckdb.DuckDBPyConnection:
    """Open a read-only connection, waiting while a reader (`status`) holds the file a moment."""
    deadline = time.monotonic() + patience
    while True:
        try:
            con, target = connect(db_path, read_only=True)
            break
        except DatabaseBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        check_and_migrate(con, target, read_only=True)
    except BaseException:
        con.close()
        raise
    return con


ProgressCallback = Callable[[int, int], None]  # (days done, days to write)


def export_parquet(
    db_path: Path,
    directory: Path,
    *,
    full: bool = False,
    include_unverified: bool = False,
    run_waiting: Callable[[], bool] | None = None,
    on_progress: ProgressCallback | None = None,
    hold_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> ExportReport:
    """Bring `directory` up to date with the database; see the module's docstring.

    `run_waiting` answers whether a run has taken the lock (asked between two holds of the file);
    `on_progress` hears (days written, days to write) after each day.
    """
    report = ExportReport(
        directory=str(directory), include_unverified=include_unverified, full=full
    )
    export = _Export(db_path, ExportDir(directory), report, run_waiting, on_progress, clock)
    try:
        return export.run(hold_seconds)
    except duckdb.InterruptException:
        raise KeyboardInterrupt from None  # Ctrl-C inside a query: the days done are recorded
    except duckdb.Error as exc:
        raise store_error(db_path, exc, "cannot export from") from None
    except RuntimeError as exc:  # DuckDB's COPY reports Ctrl-C as "Query interrupted"
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise


@dataclass
class _Export:
    """One export: what the database holds, what DIR holds, and the days written so far."""

    db_path: Path
    where: ExportDir
    report: ExportReport
    run_waiting: Callable[[], bool] | None
    on_progress: ProgressCallback | None
    clock: Callable[[], float]
    days: dict[str, DayEntry] = field(default_factory=dict)  # written or kept, this export

    def run(self, hold_seconds: float) -> ExportReport:
        began, report = self.clock(), self.report
        self.where.check()
        if not self.db_path.is_file():
            raise StoreError(f"no database at {self.db_path} yet (no backfill has run)")
        fingerprints, verified, columns, key = self.read_database()
        with self.where.locked():
            manifest = self.where.read_manifest()
            plan = plan_days(
                fingerprints,
                verified,
                manifest,
                self.where.days_on_disk(),
                full=report.full,
                include_unverified=report.include_unverified,
            )
            report.days_unchanged = len(plan.unchanged)
            report.days_unverified_left_out = plan.unverified_left_out
            self.days.update(plan.unchanged)
            try:
                self.write_days(plan.to_write, key, hold_seconds)
                for name in plan.to_remove:
                    self.where.remove_day(name)
                    report.removed.append(name)
            finally:  # also on Ctrl-C: the manifest says what DIR holds now
                recorded = _recorded(self.days, manifest, report.removed)
                self.where.write_manifest(recorded, columns)
        report.days_written = len(report.written)
        report.days_removed = len(report.removed)
        report.days_left = len(plan.to_write) - len(report.written)
        report.rows_exported = sum(entry.rows for entry in recorded.values())
        report.bytes_exported = sum(entry.bytes for entry in recorded.values())
        report.seconds = round(self.clock() - began, 3)
        return report

    def read_database(
        self,
    ) -> tuple[dict[int, tuple[int, str]], set[int], list[dict[str, str]], list[Any]]:
        """Read each day's fingerprint, the verified days, the columns and the file's key in one
        hold of the database."""
        try:
            with contextlib.closing(_open_reader(self.db_path)) as con:
                fingerprints = day_fingerprints(con)
                verified = verified_days(checkpoints.read(con))
                columns = output_columns(con, select_sql(stored_columns(con)))
                return fingerprints, verified, columns, file_key(self.db_path)
        except DatabaseEmpty:
            return {}, set(), [], file_key(self.db_path)

    def write_days(
        self, to_write: list[tuple[int, int, str, bool]], key: list[Any], hold_seconds: float
    ) -> None:
        """Write the days, holding the database `hold_seconds` at a time; between two holds,
        stop when a run waits for the file (or wrote to it: the plan is stale then)."""
        pending, report = list(to_write), self.report
        while pending:
            try:
                con = _open_reader(self.db_path, patience=1.0)
            except DatabaseBusy:  # a run took the file in the moment it was free
                report.stopped_for_run = True
                return
            with contextlib.closing(con):
                if file_key(self.db_path) != key:
                    report.stopped_for_run = True
                    return
                held, select = self.clock(), select_sql(stored_columns(con))
                while pending:  # at least one day per hold, however slow the machine
                    day, rows, checksum, is_verified = pending.pop(0)
                    size = write_day(con, select, day, self.where)
                    name = day_name(day)
                    self.days[name] = DayEntry(rows, checksum, is_verified, size, _utc_now())
                    report.written.append(name)
                    report.rows_written += rows
                    report.bytes_written += size
                    if self.on_progress is not None:
                        self.on_progress(len(report.written), len(to_write))
                    if self.clock() - held >= hold_seconds:
                        break
            if pending and self.run_waiting is not None and self.run_waiting():
                report.stopped_for_run = True
                return


def _recorded(
    days: dict[str, DayEntry], manifest: dict[str, DayEntry], removed: list[str]
) -> dict[str, DayEntry]:
    """Return the manifest's days: those written or kept now, and the old entry of each day not
    reached (it still describes that day's file on disk)."""
    left = {name: entry for name, entry in manifest.items() if name not in days}
    return {**{name: e for name, e in left.items() if name not in removed}, **days}


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
