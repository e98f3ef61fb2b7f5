"""This module creates the tables and migrates older files. The schema version lives in `meta`,
and a file of a newer version is refused.

Version 2 drops the PRIMARY KEY index on `transactions.tx_id`; the column and its meaning stay.
A tx_id is still stored once: a window's rows are keyed by tx_id before they are written, each
commit replaces its whole burn_block_time range, and a run ends with a duplicate audit
(`Store.duplicated_windows`). Measured on 2M transactions: the index took ~120 B of the ~250 B
per transaction of a file built in one go, and ~220 B of ~370 B when grown window by window;
DuckDB holds it in memory (the writer reached 859 MB and kept growing); inserts ran at half the
speed. See docs/performance.md.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from stxbf.errors import DatabaseCorrupt, DatabaseEmpty, SchemaTooNew
from stxbf.models import TX_COLUMNS
from stxbf.store.connection import table_names, transaction, write_meta

SCHEMA_VERSION = 4
APP_MARKER = "stxbf"
# The route that filled every window written before version 4: `windows.source`'s default, as
# migration 4 spells it (a migration's text stays as it ran).
LEGACY_SOURCE = "v1"

# Version 3 adds these transaction columns (fields of the real API's payloads, see
# stacks-blockchain-api src/api/controllers/db-controller.ts: tenure_change_payload.cause,
# smart_contract.clarity_version, coinbase_payload.alt_recipient / vrf_proof) and records when
# each window was last re-counted (`windows.checked_at`, by `stxbf verify`). Versions 1 and 2
# keep the column list they were written with, so every migration runs on the file it expects.
TX_COLUMNS_V3_ADDED: tuple[tuple[str, str], ...] = (
    ("tenure_change_cause", "VARCHAR"),
    ("clarity_version", "INTEGER"),
    ("coinbase_alt_recipient", "VARCHAR"),
    ("coinbase_vrf_proof", "VARCHAR"),
)
TX_COLUMNS_V2: tuple[tuple[str, str], ...] = tuple(
    column for column in TX_COLUMNS if column not in TX_COLUMNS_V3_ADDED
)
assert len(TX_COLUMNS_V2) + len(TX_COLUMNS_V3_ADDED) == len(TX_COLUMNS)

_tx_columns_v1 = ",\n    ".join(
    f"{name} {kind} PRIMARY KEY" if name == "tx_id" else f"{name} {kind}"
    for name, kind in TX_COLUMNS_V2
)
_tx_columns_v2 = ",\n    ".join(f"{name} {kind}" for name, kind in TX_COLUMNS_V2)

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS transactions (\n    {_tx_columns_v1}\n)",
        """
        CREATE TABLE IF NOT EXISTS windows (
            start_time BIGINT PRIMARY KEY,  -- burn_block_time, inclusive
            end_time BIGINT NOT NULL,       -- burn_block_time, inclusive
            api_total BIGINT NOT NULL,      -- the API's `total` for this window
            rows_stored BIGINT NOT NULL,    -- distinct tx_ids stored for it
            state VARCHAR NOT NULL,         -- verified | open (touches the chain head)
            pages INTEGER NOT NULL,
            fetched_at DOUBLE NOT NULL      -- unix time of the commit
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS runs (
            run_id BIGINT PRIMARY KEY,
            pid INTEGER,
            started_at DOUBLE,
            ended_at DOUBLE,
            api_url VARCHAR,
            target_days INTEGER,
            range_start BIGINT,
            range_end BIGINT,
            requests BIGINT,
            pages BIGINT,
            transactions_fetched BIGINT,
            exit_code INTEGER
        )
        """,
    ],
    2: [
        # DuckDB cannot drop a constraint in place: copy into a table without it (~5 s for
        # 2M rows). The file keeps its size; later windows fill the space the index freed.
        f"CREATE TABLE transactions_v2 (\n    {_tx_columns_v2}\n)",
        "INSERT INTO transactions_v2 SELECT * FROM transactions",
        "DROP TABLE transactions",
        "ALTER TABLE transactions_v2 RENAME TO transactions",
    ],
    3: [
        *(
            f"ALTER TABLE transactions ADD COLUMN IF NOT EXISTS {name} {kind}"
            for name, kind in TX_COLUMNS_V3_ADDED
        ),
        # unix time of the last re-count by `stxbf verify` (NULL: never re-counted since the
        # fetch, whose time is `fetched_at`)
        "ALTER TABLE windows ADD COLUMN IF NOT EXISTS checked_at DOUBLE",
    ],
    4: [
        # which route filled the window: 'v1' (/extended/v1/tx) or 'v3' (/extended/v3/
        # transactions); every window written before this version came from v1
        "ALTER TABLE windows ADD COLUMN IF NOT EXISTS source VARCHAR DEFAULT 'v1'",
        "UPDATE windows SET source = 'v1' WHERE source IS NULL",
    ],
}


def check_and_migrate(
    con: duckdb.DuckDBPyConnection, path: Path | None, *, read_only: bool
) -> None:
    """Refuse a file stxbf did not write or a newer stxbf did; bring an older one up to date.

    A read-only opening leaves an older file as it is: readers cope with its missing columns.
    """
    tables = set(table_names(con))
    if "meta" not in tables:
        if tables:
            raise DatabaseCorrupt(
                f"{path} is a DuckDB database but not one stxbf wrote "
                f"(tables: {', '.join(sorted(tables)[:5])})"
            )
        if read_only:
            raise DatabaseEmpty(f"database {path} is empty (no backfill has run)")
        _migrate(con, 0)
        return
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("app") != APP_MARKER:
        raise DatabaseCorrupt(f"{path} is a DuckDB database but not one stxbf wrote")
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database {path} has schema {version}, newer than this stxbf "
            f"understands ({SCHEMA_VERSION}); upgrade stxbf"
        )
    if version < SCHEMA_VERSION and not read_only:
        _migrate(con, version)


def _migrate(con: duckdb.DuckDBPyConnection, current: int) -> None:
    with transaction(con):
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                con.execute(statement)
        write_meta(con, "app", APP_MARKER)
        write_meta(con, "schema_version", str(SCHEMA_VERSION))
