"""This module opens the DuckDB connection, after refusing files stxbf must not use, and
provides transactions and the `meta` table's reads and writes.

DuckDB's memory is capped (`MEMORY_LIMIT`), so that a long backfill keeps a flat footprint; what
does not fit is read again from the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from stxbf.errors import ConfigError, DatabaseBusy, DatabaseCorrupt, StoreError
from stxbf.store.faults import damaged, damaged_hint, describe, is_damage, store_error

MEMORY_LIMIT = "64MB"  # DuckDB's buffer pool; it spills or re-reads beyond this
# Checkpoint every 128 MB of WAL rather than DuckDB's 16 MB: each checkpoint rewrote the table's
# last, still-growing row group, leaving freed blocks behind (~18 B/tx) and costing time.
CHECKPOINT_THRESHOLD = "128MB"


def connect(path: Path | str, *, read_only: bool) -> tuple[duckdb.DuckDBPyConnection, Path | None]:
    """Connect to the file at `path`, and return the connection with the path (None for
    ":memory:"); nothing is read from the file yet."""
    memory = str(path) == ":memory:"
    target = None if memory else Path(path)
    if target is not None:
        _check_target(target, read_only=read_only)
    try:
        con = duckdb.connect(
            ":memory:" if target is None else str(target),
            read_only=read_only,
            config={"memory_limit": MEMORY_LIMIT, "checkpoint_threshold": CHECKPOINT_THRESHOLD},
        )
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise DatabaseBusy(
                f"database {target} is held by another process (a running `stxbf run`?)"
            ) from None
        if is_damage(exc) or "invalid" in text.lower():
            raise DatabaseCorrupt(
                f"{target} is not a DuckDB database, or is damaged: {describe(exc)}",
                hint=damaged_hint(target),
            ) from None
        raise store_error(target, exc, "cannot open") from None
    except duckdb.Error as exc:
        raise damaged(target, exc) from None
    return con, target


def _check_target(target: Path, *, read_only: bool) -> None:
    """Refuse what DuckDB would refuse less clearly, and create the directory (private) for a
    writer."""
    if target.is_dir():
        raise ConfigError(f"database path {target} is a directory, not a file")
    if read_only and not target.exists():
        raise StoreError(f"no database at {target} yet (no backfill has run)")
    if target.exists() and target.stat().st_size == 0:
        # DuckDB refuses a 0-byte file; status and run must say the same about it.
        raise DatabaseCorrupt(
            f"{target} is empty (0 bytes), not a DuckDB database",
            hint=f"remove it (rm {target}); `stxbf run` then creates a new database",
        )
    if not read_only:
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create {target.parent}: {exc.strerror}") from None


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        str(row[0])
        for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
    ]


def write_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])


def read_meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def delete_meta(con: duckdb.DuckDBPyConnection, key: str) -> None:
    con.execute("DELETE FROM meta WHERE key = ?", [key])
