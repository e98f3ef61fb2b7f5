"""DDL and migrations. The schema version lives in `meta`; a newer file is refused."""

from __future__ import annotations

from stxbf.models import TX_COLUMNS

SCHEMA_VERSION = 1
APP_MARKER = "stxbf"

_tx_columns = ",\n    ".join(
    f"{name} {kind} PRIMARY KEY" if name == "tx_id" else f"{name} {kind}"
    for name, kind in TX_COLUMNS
)

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS transactions (\n    {_tx_columns}\n)",
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
}
