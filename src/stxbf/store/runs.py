"""The runs table: one row per `stxbf run`, started and ended by the runner."""

from __future__ import annotations

from typing import Any

import duckdb

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


def _check_columns(fields: dict[str, Any]) -> None:
    """Column names go into the SQL text, so only the table's own may pass."""
    unknown = set(fields) - RUN_COLUMNS
    if unknown:
        raise ValueError(f"not columns of runs: {sorted(unknown)}")


def start(con: duckdb.DuckDBPyConnection, fields: dict[str, Any]) -> int:
    _check_columns(fields)
    row = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()
    run_id = int(row[0]) if row else 1
    names = ["run_id", *fields]
    placeholders = ", ".join("?" for _ in names)
    con.execute(
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({placeholders})",  # noqa: S608
        [run_id, *fields.values()],
    )
    return run_id


def end(con: duckdb.DuckDBPyConnection, run_id: int, fields: dict[str, Any]) -> None:
    _check_columns(fields)
    assignments = ", ".join(f"{name} = ?" for name in fields)
    con.execute(
        f"UPDATE runs SET {assignments} WHERE run_id = ?",  # noqa: S608
        [*fields.values(), run_id],
    )


def last(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    cursor = con.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1")
    row = cursor.fetchone()
    if row is None:
        return None
    names = [column[0] for column in cursor.description or []]
    return dict(zip(names, row, strict=True))
