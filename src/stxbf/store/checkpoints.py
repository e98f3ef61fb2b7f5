"""The windows table records which `burn_block_time` ranges the store holds, and how far each
is proven.

A window's row says how many transactions the API counted for it, how many distinct tx_ids are
stored, and its `WindowState`; `checked_at` is when it was last fetched or re-counted and `source`
the route that filled it. A file opened read-only is not migrated, so the reads here cope with
the columns a schema 2 or 3 file lacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from stxbf.codes import WindowState
from stxbf.store.schema import LEGACY_SOURCE

# A stretch of burn_block_time, (start_time, end_time), both ends inclusive: a window's bounds.
TimeRange = tuple[int, int]


@dataclass(frozen=True, slots=True)
class WindowRecord:
    start_time: int
    end_time: int
    api_total: int
    rows_stored: int
    state: WindowState
    pages: int
    checked_at: float | None = None  # last fetch or re-count (unix time); None when not read
    source: str = LEGACY_SOURCE  # the route that filled it: v1 or v3 (schema 4)


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """What the store holds for a verified window, which `stxbf verify` compares with the API's
    one-row answer for the same range."""

    start_time: int
    end_time: int
    api_total: int
    rows_stored: int
    first_tx_id: str | None  # in the order stxbf pages: block_height, tx_index ascending


def _has_column(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'windows' AND column_name = ?",
        [name],
    ).fetchone()
    return bool(found and found[0])


def read(con: duckdb.DuckDBPyConnection, state: WindowState | None = None) -> list[WindowRecord]:
    checked = "coalesce(checked_at, fetched_at)" if _has_column(con, "checked_at") else "fetched_at"
    source = "coalesce(source, ?)" if _has_column(con, "source") else "?"
    columns = f"start_time, end_time, api_total, rows_stored, state, pages, {checked}, {source}"
    sql = f"SELECT {columns} FROM windows"  # noqa: S608 (constants only)
    params: list[Any] = [LEGACY_SOURCE]
    if state is not None:
        sql += " WHERE state = ?"
        params.append(state)
    rows = con.execute(sql + " ORDER BY start_time", params).fetchall()
    return [
        WindowRecord(start, end, total, stored, WindowState(kind), *rest)
        for start, end, total, stored, kind, *rest in rows
    ]


def ranges(con: duckdb.DuckDBPyConnection) -> list[TimeRange]:
    rows = con.execute("SELECT start_time, end_time FROM windows ORDER BY start_time").fetchall()
    return [(int(start), int(end)) for start, end in rows]


def sources(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Count the verified and open windows by the source that filled them."""
    # an older file opened read-only has no source column: every window in it came from v1
    source = "coalesce(source, ?)" if _has_column(con, "source") else "?"
    rows = con.execute(
        f"SELECT {source}, count(*) FROM windows "  # noqa: S608 (constants only)
        "WHERE state IN (?, ?) GROUP BY 1 ORDER BY 1",
        [LEGACY_SOURCE, WindowState.VERIFIED, WindowState.OPEN],
    ).fetchall()
    return {str(name): int(count) for name, count in rows if count}


def record(con: duckdb.DuckDBPyConnection, window: WindowRecord, stored: int) -> None:
    """Replace every checkpoint overlapping the window by its own, fetched and checked now.

    It is recorded `incomplete`, never `verified`, when `stored` differs from the API's total.
    """
    state = window.state if stored == window.api_total else WindowState.INCOMPLETE
    now = time.time()
    con.execute(
        "DELETE FROM windows WHERE start_time <= ? AND end_time >= ?",
        [window.end_time, window.start_time],
    )
    con.execute(
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


def forget(con: duckdb.DuckDBPyConnection, ranges: Sequence[TimeRange]) -> None:
    for start, end in ranges:
        con.execute("DELETE FROM windows WHERE start_time = ? AND end_time = ?", [start, end])


def checks(con: duckdb.DuckDBPyConnection) -> list[WindowCheck]:
    """Return each verified window with its stored count and first row, read in one range join."""
    rows = con.execute(
        """
        SELECT w.start_time, w.end_time, w.api_total, count(t.tx_id),
               arg_min(t.tx_id, (t.block_height, t.tx_index, t.tx_id))
        FROM windows AS w
        LEFT JOIN transactions AS t
          ON t.burn_block_time BETWEEN w.start_time AND w.end_time
        WHERE w.state = ?
        GROUP BY ALL
        ORDER BY w.start_time
        """,
        [WindowState.VERIFIED],
    ).fetchall()
    return [WindowCheck(int(a), int(b), int(c), int(d), e) for a, b, c, d, e in rows]


def mark_checked(con: duckdb.DuckDBPyConnection, ranges: Sequence[TimeRange], at: float) -> None:
    con.executemany(
        "UPDATE windows SET checked_at = ? WHERE start_time = ? AND end_time = ?",
        [[at, start, end] for start, end in ranges],
    )


def oldest_check(con: duckdb.DuckDBPyConnection) -> float | None:
    row = con.execute(
        "SELECT min(coalesce(checked_at, fetched_at)) FROM windows WHERE state = ?",
        [WindowState.VERIFIED],
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
