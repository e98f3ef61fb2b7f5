"""The one place that talks to DuckDB.

A window's transactions and its checkpoint row commit in a single transaction, so a crash leaves
either both or neither. Re-committing a window first deletes what the database held for that
`burn_block_time` range: refetching is idempotent and a window's rows are exactly the API's answer.

A window's rows travel to DuckDB as one JSON array per column (orjson builds them in ~2 ms for
4,000 rows), which DuckDB parses itself, without the GIL. Binding Python lists as LIST parameters
converted each of a window's ~76,000 values through Python's C API under the GIL: 67 ms against
41 ms per 4,000-row window, and time taken from the event loop. DuckDB's memory is capped
(`MEMORY_LIMIT`), so a long backfill keeps a flat footprint; what does not fit is re-read.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from stxbf.errors import DatabaseCorrupt
from stxbf.models import TX_COLUMN_NAMES, TX_COLUMNS, Row
from stxbf.store.connection import (
    connect,
    delete_meta,
    read_meta,
    table_names,
    transaction,
    write_meta,
)
from stxbf.store.faults import as_store_error, describe, store_error
from stxbf.store.faults import damaged_hint as damaged_hint  # the runner names it
from stxbf.store.schema import check_and_migrate

SUMMARY_KEY = "summary"  # meta: the last saved StoreSummary and the content stamp it matches

# HUGEINT values (u128 token amounts) travel as decimal strings: JSON numbers stop at 64 bits.
_AS_TEXT = frozenset(i for i, (_, kind) in enumerate(TX_COLUMNS) if kind == "HUGEINT")
_UNNEST_JSON = ", ".join(
    f"unnest(from_json(?, '[\"VARCHAR\"]'))::{kind}"
    if i in _AS_TEXT
    else f"unnest(from_json(?, '[\"{kind}\"]'))"
    for i, (_, kind) in enumerate(TX_COLUMNS)
)
_INSERT_SQL = "INSERT INTO transactions ({}) SELECT {}".format(
    ", ".join(TX_COLUMN_NAMES), _UNNEST_JSON
)  # built from constants only


def _column_payloads(rows: Sequence[Row]) -> list[str]:
    """One JSON array per column, in TX_COLUMNS order."""
    payloads = []
    for i, column in enumerate(zip(*rows, strict=True)):
        values: Any = column
        if i in _AS_TEXT:
            values = [None if value is None else str(value) for value in column]
        payloads.append(orjson.dumps(values).decode())
    return payloads


@dataclass(frozen=True, slots=True)
class WindowRecord:
    start_time: int
    end_time: int
    api_total: int
    rows_stored: int
    state: str  # "verified" or "open"
    pages: int
    checked_at: float | None = None  # last fetch or re-count (unix time); None when not read
    source: str = "v1"  # the route that filled it: v1 or v3 (schema 4)


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """What the store holds for a verified window, to compare with the API's one-row answer."""

    start_time: int
    end_time: int
    api_total: int
    rows_stored: int
    first_tx_id: str | None  # in the order stxbf pages: block_height, tx_index ascending


@dataclass(frozen=True, slots=True)
class Replaced:
    """The outcome of replacing a window's rows: how many are stored, and what changed."""

    stored: int
    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class StoreSummary:
    transactions: int
    wallets: int
    earliest_tx_time: int | None
    latest_tx_time: int | None
    db_bytes: int


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


def _check_run_columns(fields: dict[str, Any]) -> None:
    unknown = set(fields) - RUN_COLUMNS
    if unknown:
        raise ValueError(f"not columns of runs: {sorted(unknown)}")


class Store:
    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self._con = con
        self.path = path

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False) -> Store:
        """Open (creating and migrating when writable) the database at `path` or ":memory:"."""
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

    # -- windows -----------------------------------------------------------------------------

    @as_store_error()
    def windows(self, state: str | None = None) -> list[WindowRecord]:
        # a schema-2 file opened read-only (not migrated) has no checked_at yet
        checked = "coalesce(checked_at, fetched_at)" if self._has_checked_at() else "fetched_at"
        source = "coalesce(source, 'v1')" if self._has_window_column("source") else "'v1'"
        columns = f"start_time, end_time, api_total, rows_stored, state, pages, {checked}, {source}"
        sql = f"SELECT {columns} FROM windows"  # noqa: S608 (constants only)
        params: list[Any] = []
        if state is not None:
            sql += " WHERE state = ?"
            params.append(state)
        rows = self._con.execute(sql + " ORDER BY start_time", params).fetchall()
        return [WindowRecord(*row) for row in rows]

    def _has_checked_at(self) -> bool:
        return self._has_window_column("checked_at")

    def _has_window_column(self, name: str) -> bool:
        found = self._con.execute(
            "SELECT count(*) FROM duckdb_columns() "
            "WHERE table_name = 'windows' AND column_name = ?",
            [name],
        ).fetchone()
        return bool(found and found[0])

    @as_store_error()
    def window_sources(self) -> dict[str, int]:
        """Verified and open windows by the route that filled them (`status --json`)."""
        if not self._has_window_column("source"):  # an older file opened read-only: all v1
            rows = self._con.execute(
                "SELECT 'v1', count(*) FROM windows WHERE state IN ('verified', 'open')"
            ).fetchall()
        else:
            rows = self._con.execute(
                "SELECT coalesce(source, 'v1'), count(*) FROM windows "
                "WHERE state IN ('verified', 'open') GROUP BY 1 ORDER BY 1"
            ).fetchall()
        return {str(source): int(count) for source, count in rows if count}

    def commit_window(self, window: WindowRecord, rows: Sequence[Row]) -> int:
        """Replace the window's range with `rows` and record its checkpoint, atomically.

        Returns the number of distinct tx_ids now stored in the window's range. When that differs
        from the API's total the window is recorded as `incomplete`, never `verified`.
        """
        try:
            with self.transaction():
                # Whatever was stored for this range before (an earlier attempt, the head window
                # of an earlier run) is replaced by exactly the API's answer.
                self._con.execute(
                    "DELETE FROM transactions WHERE burn_block_time BETWEEN ? AND ?",
                    [window.start_time, window.end_time],
                )
                self._con.execute(
                    "DELETE FROM windows WHERE start_time <= ? AND end_time >= ?",
                    [window.end_time, window.start_time],
                )
                if rows:
                    self._con.execute(_INSERT_SQL, _column_payloads(rows))
                stored_row = self._con.execute(
                    "SELECT count(*) FROM transactions WHERE burn_block_time BETWEEN ? AND ?",
                    [window.start_time, window.end_time],
                ).fetchone()
                stored = int(stored_row[0]) if stored_row else 0
                state = window.state if stored == window.api_total else "incomplete"
                now = time.time()
                self._con.execute(
                    "INSERT INTO windows (start_time, end_time, api_total, rows_stored, state, "
                    "pages, fetched_at, checked_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        window.start_time,
                        window.end_time,
                        window.api_total,
                        stored,
                        state,
                        window.pages,
                        now,
                        now,
                        window.source,
                    ],
                )
        except (duckdb.Error, orjson.JSONEncodeError) as exc:
            # replacing a range reads it first: damage shows up here too
            raise store_error(self.path, exc, "cannot write to") from None
        return stored

    def replace_window(self, window: WindowRecord, rows: Sequence[Row]) -> Replaced:
        """`commit_window`, also counting the rows it added and removed (for `stxbf verify`).

        Rows whose transaction the API no longer lists (no longer canonical) disappear; the ids
        are compared in Python because a re-fetched window holds a few thousand at most.
        """
        before = self.tx_ids(window.start_time, window.end_time)
        stored = self.commit_window(window, rows)
        after = {row[0] for row in rows}
        return Replaced(stored=stored, added=len(after - before), removed=len(before - after))

    @as_store_error()
    def window_checks(self) -> list[WindowCheck]:
        """Each verified window with its stored count and first row, in one range join."""
        rows = self._con.execute(
            """
            SELECT w.start_time, w.end_time, w.api_total, count(t.tx_id),
                   arg_min(t.tx_id, (t.block_height, t.tx_index, t.tx_id))
            FROM windows AS w
            LEFT JOIN transactions AS t
              ON t.burn_block_time BETWEEN w.start_time AND w.end_time
            WHERE w.state = 'verified'
            GROUP BY ALL
            ORDER BY w.start_time
            """
        ).fetchall()
        return [WindowCheck(int(a), int(b), int(c), int(d), e) for a, b, c, d, e in rows]

    @as_store_error()
    def mark_checked(self, spans: Sequence[tuple[int, int]], at: float) -> None:
        """Record that these windows were re-counted against the API at `at`."""
        if not spans:
            return
        with self.transaction():
            self._con.executemany(
                "UPDATE windows SET checked_at = ? WHERE start_time = ? AND end_time = ?",
                [[at, start, end] for start, end in spans],
            )

    @as_store_error()
    def oldest_check(self) -> float | None:
        """When the least recently fetched or re-counted verified window was last looked at."""
        row = self._con.execute(
            "SELECT min(coalesce(checked_at, fetched_at)) FROM windows WHERE state = 'verified'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # -- integrity ---------------------------------------------------------------------------

    def _scan_sql(self, table: str, where: str = "") -> str:
        # bit_xor(hash(...)) of every column: DuckDB must load, and so checksum, every block
        # (a count(*) or min/max could be answered from metadata without touching the data).
        return f'SELECT bit_xor(hash(COLUMNS(*))) FROM "{table}" {where}'  # noqa: S608

    def read_every_block(self) -> list[str]:
        """Read every column of every table; return the tables whose blocks fail to load.

        DuckDB verifies a block's checksum whenever it loads it from disk, but queries load only
        what they need, so damage in rows nothing reads stays unseen until this full scan.
        """
        damaged: list[str] = []
        try:
            tables = table_names(self._con)
        except duckdb.Error as exc:
            raise DatabaseCorrupt(f"database {self.path}: {describe(exc)}") from None
        for table in tables:
            try:
                self._con.execute(self._scan_sql(table)).fetchall()
            except duckdb.Error:
                damaged.append(table)
        return damaged

    def damaged_windows(self) -> list[tuple[int, int]]:
        """(start, end) of each window whose rows cannot be read back: fetch those again."""
        try:
            spans = [
                (int(a), int(b))
                for a, b in self._con.execute(
                    "SELECT start_time, end_time FROM windows ORDER BY start_time"
                ).fetchall()
            ]
        except duckdb.Error as exc:
            raise DatabaseCorrupt(
                f"database {self.path}: the window checkpoints cannot be read ({describe(exc)})"
            ) from None
        where = "WHERE burn_block_time BETWEEN $start AND $end"
        sql = self._scan_sql("transactions", where)
        damaged = []
        for start, end in spans:
            try:
                self._con.execute(sql, {"start": start, "end": end}).fetchall()
            except duckdb.Error:
                damaged.append((start, end))
        return damaged

    @as_store_error()
    def duplicated_windows(self) -> list[tuple[int, int]]:
        """(start, end) of each window holding a tx_id that is stored more than once.

        With no index on tx_id, the write path keeps it unique: a window's rows are keyed by
        tx_id, and each commit replaces its whole burn_block_time range. Only an API that moves
        a transaction to another burn_block_time between two window fetches (a reorg older than
        the head window) could leave a second copy; fetching both windows again settles it.
        A pass over tx_id hashes finds candidates (~0.2 s and a few tens of MB for 2M rows).
        """
        found = self._con.execute(
            "SELECT count(*) FROM "
            "(SELECT hash(tx_id) FROM transactions GROUP BY 1 HAVING count(*) > 1)"
        ).fetchone()
        if not found or not found[0]:
            return []
        rows = self._con.execute(
            """
            SELECT DISTINCT w.start_time, w.end_time
            FROM windows AS w
            JOIN transactions AS t ON t.burn_block_time BETWEEN w.start_time AND w.end_time
            WHERE t.tx_id IN (SELECT tx_id FROM transactions GROUP BY 1 HAVING count(*) > 1)
            ORDER BY 1
            """
        ).fetchall()
        return [(int(start), int(end)) for start, end in rows]

    @as_store_error()
    def forget_windows(self, spans: Sequence[tuple[int, int]]) -> None:
        """Drop these windows' checkpoints, so that the next pass fetches them again."""
        with self.transaction():
            for start, end in spans:
                self._con.execute(
                    "DELETE FROM windows WHERE start_time = ? AND end_time = ?", [start, end]
                )

    # -- runs --------------------------------------------------------------------------------

    @as_store_error()
    def start_run(self, **fields: Any) -> int:
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
        _check_run_columns(fields)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._con.execute(
            f"UPDATE runs SET {assignments} WHERE run_id = ?",  # noqa: S608
            [*fields.values(), run_id],
        )

    @as_store_error()
    def last_run(self) -> dict[str, Any] | None:
        cursor = self._con.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1")
        row = cursor.fetchone()
        if row is None:
            return None
        names = [column[0] for column in cursor.description or []]
        return dict(zip(names, row, strict=True))

    # -- reading -----------------------------------------------------------------------------

    @as_store_error()
    def summary(self, *, wallets: bool = True) -> StoreSummary:
        row = self._con.execute(
            "SELECT count(*), min(burn_block_time), max(burn_block_time) FROM transactions"
        ).fetchone()
        count, earliest, latest = row if row else (0, None, None)
        wallet_count = 0
        if wallets:
            wallet_row = self._con.execute(
                "SELECT count(DISTINCT sender_address) FROM transactions"
            ).fetchone()
            wallet_count = int(wallet_row[0]) if wallet_row else 0
        return StoreSummary(
            transactions=int(count),
            wallets=wallet_count,
            earliest_tx_time=earliest,
            latest_tx_time=latest,
            db_bytes=self.file_bytes(),
        )

    # What an idle `status`/`health` shows changes only while a run writes. Counting distinct
    # senders over a year (2M rows) took ~1 s per call, so a run saves its summary in `meta`
    # and readers take it back while the content stamp still matches.

    def _content_stamp(self) -> str:
        """Changes whenever a window is committed or forgotten (any stxbf version does both)."""
        windows = self._con.execute(
            "SELECT count(*), coalesce(max(fetched_at), 0), coalesce(sum(rows_stored), 0) "
            "FROM windows"
        ).fetchone()
        rows = self._con.execute("SELECT count(*) FROM transactions").fetchone()
        count, last_commit, stored = windows if windows else (0, 0, 0)
        return f"{count}:{float(last_commit)!r}:{stored}:{rows[0] if rows else 0}"

    @as_store_error()
    def save_summary(self) -> StoreSummary:
        """Compute the summary (wallets too) and keep it in `meta` for `saved_summary`."""
        summary = self.summary(wallets=True)
        record = {
            "transactions": summary.transactions,
            "wallets": summary.wallets,
            "earliest_tx_time": summary.earliest_tx_time,
            "latest_tx_time": summary.latest_tx_time,
            "stamp": self._content_stamp(),
        }
        write_meta(self._con, SUMMARY_KEY, json.dumps(record))
        return summary

    @as_store_error()
    def saved_summary(self) -> StoreSummary | None:
        """The summary a run saved, or None when there is none or the data changed since."""
        raw = self.get_meta(SUMMARY_KEY)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            if record.get("stamp") != self._content_stamp():
                return None
            return StoreSummary(
                transactions=int(record["transactions"]),
                wallets=int(record["wallets"]),
                earliest_tx_time=record.get("earliest_tx_time"),
                latest_tx_time=record.get("latest_tx_time"),
                db_bytes=self.file_bytes(),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def file_bytes(self) -> int:
        if self.path is None:
            return 0
        total = 0
        for suffix in ("", ".wal"):
            with contextlib.suppress(OSError):
                total += os.stat(str(self.path) + suffix).st_size
        return total

    @as_store_error()
    def tx_ids(self, start_time: int | None = None, end_time: int | None = None) -> set[str]:
        """Every stored tx_id, optionally within a burn_block_time range (tests and `verify`)."""
        sql = "SELECT tx_id FROM transactions"
        params: list[Any] = []
        if start_time is not None and end_time is not None:
            sql += " WHERE burn_block_time BETWEEN ? AND ?"
            params = [start_time, end_time]
        return {row[0] for row in self._con.execute(sql, params).fetchall()}

    def checkpoint(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self._con.execute("CHECKPOINT")
