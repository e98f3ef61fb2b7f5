"""The damage scan: read every stored block, so that DuckDB checks each one's checksum.

DuckDB verifies a block's checksum whenever it loads it from disk, but queries load only what
they need, so damage in rows nothing reads stays unseen until a full scan.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from stxbf.errors import DatabaseCorrupt
from stxbf.store import checkpoints
from stxbf.store.checkpoints import Span
from stxbf.store.connection import table_names
from stxbf.store.faults import describe


def _scan_sql(table: str, where: str = "") -> str:
    # bit_xor(hash(...)) of every column: DuckDB must load, and so checksum, every block
    # (a count(*) or min/max could be answered from metadata without touching the data).
    return f'SELECT bit_xor(hash(COLUMNS(*))) FROM "{table}" {where}'  # noqa: S608


def damaged_tables(con: duckdb.DuckDBPyConnection, path: Path | None) -> list[str]:
    """The tables whose blocks fail to load, reading every column of every table."""
    try:
        tables = table_names(con)
    except duckdb.Error as exc:
        raise DatabaseCorrupt(f"database {path}: {describe(exc)}") from None
    damaged: list[str] = []
    for table in tables:
        try:
            con.execute(_scan_sql(table)).fetchall()
        except duckdb.Error:
            damaged.append(table)
    return damaged


def damaged_windows(con: duckdb.DuckDBPyConnection, path: Path | None) -> list[Span]:
    """(start, end) of each window whose rows cannot be read back: fetch those again."""
    try:
        spans = checkpoints.spans(con)
    except duckdb.Error as exc:
        raise DatabaseCorrupt(
            f"database {path}: the window checkpoints cannot be read ({describe(exc)})"
        ) from None
    sql = _scan_sql("transactions", "WHERE burn_block_time BETWEEN $start AND $end")
    damaged = []
    for start, end in spans:
        try:
            con.execute(sql, {"start": start, "end": end}).fetchall()
        except duckdb.Error:
            damaged.append((start, end))
    return damaged
