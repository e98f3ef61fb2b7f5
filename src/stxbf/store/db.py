"""`Store` is the one object the rest of stxbf holds to read and write the DuckDB file.

It keeps the connection and turns DuckDB's errors into `StoreError`s. The work on the windows
and transactions tables, and the summary figures, lives in modules of their own (`checkpoints`,
`transactions`, `figures`), each given the connection; the run records and the damage scan are
a few statements each and are written here. A window's transactions and its checkpoint row
commit in a single transaction, so a crash leaves either both or neither. Re-committing a window
first deletes what the database held for that `burn_block_time` range, so fetching a window again
is idempotent and its rows are exactly the API's answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from stxbf.codes import WindowState
from stxbf.errors import DatabaseCorrupt
from stxbf.models import Row
from stxbf.store import checkpoints, figures, transactions
from stxbf.store.checkpoints import TimeRange, WindowCheck, WindowRecord
from stxbf.store.connection import (
    connect,
    delete_meta,
    read_meta,
    table_names,
    transaction,
    write_meta,
)
from stxbf.store.faults import as_store_error, damaged_hint, describe, store_error
from stxbf.store.figures import StoreSummary
from stxbf.store.schema import check_and_migrate
from stxbf.store.transactions import Replaced

__all__ = ["Replaced", "Store", "StoreSummary", "WindowCheck", "WindowRecord", "damaged_hint"]

# The columns of the runs table a run may set: their names go into the SQL text, so only these pass.
RUN_COLUMNS = frozenset(
    (
        "pid",
        "started_at",
        "ended_at",
        "api_url",
        "target_days",
        "range_start",
        "range_end",
        "requests",
        "pages",
        "transactions_fetched",
        "exit_code",
    )
)


class Store:
    """An open DuckDB file (or ":memory:"): its windows, transactions, run records and figures.

    Every public method raises a `StoreError` (or `DatabaseCorrupt`) naming the file instead of
    a DuckDB error, so a command can print one line and exit with the matching code.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self._con = con
        self.path = path

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False) -> Store:
        """Open the database at `path` (or ":memory:"), creating and migrating it when writable."""
        con, target = connect(path, read_only=read_only)
        try:
            con.execute("SET enable_progress_bar = false")  # a migration's bar in the log pane
            check_and_migrate(con, target, read_only=read_only)
        except duckdb.Error as exc:
            con.close()
            raise store_error(target, exc, "cannot open") from None
        except BaseException:
            con.close()
            raise
        if target is not None and not read_only:
            with contextlib.suppress(OSError):
                target.chmod(0o600)
        return cls(con, target)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self._con)

    def checkpoint(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self._con.execute("CHECKPOINT")

    # -- meta --------------------------------------------------------------------------------

    @as_store_error()
    def set_meta(self, key: str, value: str | int | float | None) -> None:
        if value is None:
            delete_meta(self._con, key)
        else:
            write_meta(self._con, key, str(value))

    @as_store_error()
    def get_meta(self, key: str) -> str | None:
        return read_meta(self._con, key)

    # -- windows and their rows --------------------------------------------------------------

    @as_store_error()
    def windows(self, state: WindowState | None = None) -> list[WindowRecord]:
        return checkpoints.read(self._con, state)

    @as_store_error()
    def window_sources(self) -> dict[str, int]:
        """Count the verified and open windows by the source that filled them (`status --json`)."""
        return checkpoints.sources(self._con)

    # a write error, or damage: replacing a range reads it first, so damage shows up here too
    @as_store_error("cannot write to", catch=(duckdb.Error, orjson.JSONEncodeError))
    def commit_window(self, window: WindowRecord, rows: Sequence[Row]) -> int:
        """Replace the window's range with `rows` and record its checkpoint, atomically.

        Returns the number of distinct tx_ids now stored in the window's range. When that differs
        from the API's total the window is recorded as `incomplete`, never `verified`.
        """
        with self.transaction():
            stored = transactions.replace_range(self._con, window.start_time, window.end_time, rows)
            checkpoints.record(self._con, window, stored)
        return stored

    def replace_window(self, window: WindowRecord, rows: Sequence[Row]) -> Replaced:
        """Commit the window as `commit_window` does, and count the rows it added and removed.

        `stxbf verify` reports those counts.

        Rows whose transaction the API no longer lists (no longer canonical) disappear.
        """
        before = self.tx_ids(window.start_time, window.end_time)
        return Replaced.between(before, rows, self.commit_window(window, rows))

    @as_store_error()
    def tx_ids(self, start_time: int | None = None, end_time: int | None = None) -> set[str]:
        """Return every stored tx_id, or those within a burn_block_time range."""
        return transactions.tx_ids(self._con, start_time, end_time)

    @as_store_error()
    def window_checks(self) -> list[WindowCheck]:
        """Return each verified window with its stored count and first row, read in one join."""
        return checkpoints.checks(self._con)

    @as_store_error()
    def mark_checked(self, ranges: Sequence[TimeRange], at: float) -> None:
        """Record that these windows were re-counted against the API at `at`."""
        if not ranges:
            return
        with self.transaction():
            checkpoints.mark_checked(self._con, ranges, at)

    @as_store_error()
    def oldest_check(self) -> float | None:
        """Return when the verified window looked at least recently was last fetched or
        re-counted."""
        return checkpoints.oldest_check(self._con)

    @as_store_error()
    def duplicated_windows(self) -> list[TimeRange]:
        """Return the bounds of each window that holds a tx_id stored more than once."""
        return transactions.duplicated_windows(self._con)

    @as_store_error()
    def forget_windows(self, ranges: Sequence[TimeRange]) -> None:
        """Drop these windows' checkpoints, so that the next pass fetches them again."""
        with self.transaction():
            checkpoints.forget(self._con, ranges)

    # -- the damage scan ---------------------------------------------------------------------
    # DuckDB verifies a block's checksum whenever it loads it from disk, but queries load only
    # what they need, so damage in rows that nothing reads stays unseen until a full scan.

    def read_every_block(self) -> list[str]:
        """Read every column of every table, and return the tables whose blocks fail to load."""
        try:
            tables = table_names(self._con)
        except duckdb.Error as exc:
            raise DatabaseCorrupt(f"database {self.path}: {describe(exc)}") from None
        damaged: list[str] = []
        for table in tables:
            try:
                self._con.execute(_scan_sql(table)).fetchall()
            except duckdb.Error:
                damaged.append(table)
        return damaged

    def damaged_windows(self) -> list[TimeRange]:
        """Return the bounds of each window whose rows cannot be read back, to fetch them again."""
        try:
            ranges = checkpoints.ranges(self._con)
        except duckdb.Error as exc:
            raise DatabaseCorrupt(
                f"database {self.path}: the window checkpoints cannot be read ({describe(exc)})"
            ) from None
        sql = _scan_sql("transactions", "WHERE burn_block_time BETWEEN $start AND $end")
        damaged = []
        for start, end in ranges:
            try:
                self._con.execute(sql, {"start": start, "end": end}).fetchall()
            except duckdb.Error:
                damaged.append((start, end))
        return damaged

    # -- run records: one row per `stxbf run`, started and ended by the runner ----------------

    @as_store_error()
    def start_run(self, **fields: Any) -> int:
        """Record a run that starts now, and return its id (one more than the last)."""
        _check_run_columns(fields)
        row = self._con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()
        run_id = int(row[0]) if row else 1
        names = ["run_id", *fields]
        placeholders = ", ".join("?" for _ in names)
        self._con.execute(
            f"INSERT INTO runs ({', '.join(names)}) VALUES ({placeholders})",  # noqa: S608
            [run_id, *fields.values()],
        )
        return run_id

    @as_store_error()
    def end_run(self, run_id: int, **fields: Any) -> None:
        """Record what the run `run_id` did, as it ends."""
        _check_run_columns(fields)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._con.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = ?",  # noqa: S608
            [*fields.values(), run_id],
        )

    @as_store_error()
    def last_run(self) -> dict[str, Any] | None:
        """Return the newest run's record by column name, or None when no run was recorded."""
        cursor = self._con.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1")
        row = cursor.fetchone()
        if row is None:
            return None
        names = [column[0] for column in cursor.description or []]
        return dict(zip(names, row, strict=True))

    # -- figures -----------------------------------------------------------------------------

    @as_store_error()
    def summary(self, *, wallets: bool = True) -> StoreSummary:
        return figures.count(self._con, self.path, wallets=wallets)

    @as_store_error()
    def save_summary(self) -> StoreSummary:
        """Compute the summary (wallets too) and keep it in `meta` for `saved_summary`."""
        counted = self.summary(wallets=True)
        figures.save(self._con, counted)
        return counted

    @as_store_error()
    def saved_summary(self) -> StoreSummary | None:
        """Return the summary a run saved, or None when there is none or the data changed since."""
        return figures.saved(self._con, self.path)

    def file_bytes(self) -> int:
        return figures.file_bytes(self.path)


def _scan_sql(table: str, where: str = "") -> str:
    # bit_xor(hash(...)) of every column: DuckDB must load, and so checksum, every block
    # (a count(*) or min/max could be answered from metadata without touching the data).
    return f'SELECT bit_xor(hash(COLUMNS(*))) FROM "{table}" {where}'  # noqa: S608


def _check_run_columns(fields: dict[str, Any]) -> None:
    unknown = set(fields) - RUN_COLUMNS
    if unknown:
        raise ValueError(f"not columns of runs: {sorted(unknown)}")
