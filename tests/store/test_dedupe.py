"""A tx_id is stored once without a primary-key index (schema 2): the audit and the migration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb

from stxbf.codes import ExitCode
from stxbf.models import BURN_TIME_INDEX, TX_COLUMN_NAMES
from stxbf.runner import Runner
from stxbf.store import Store, WindowRecord
from stxbf.store.schema import SCHEMA_VERSION, TX_COLUMNS_V2
from tests.fakes import make_row, params, recent_chain, transport_for

HEIGHT = TX_COLUMN_NAMES.index("block_height")


def window(store: Store, start: int, end: int, rows: list[tuple[object, ...]]) -> None:
    store.commit_window(WindowRecord(start, end, len(rows), len(rows), "verified", 1), rows)


def test_the_audit_names_the_windows_that_share_a_tx_id() -> None:
    with Store.open(":memory:") as store:
        window(store, 100, 199, [make_row("0xa", 150, 1, 0), make_row("0xb", 150, 1, 1)])
        window(store, 200, 299, [make_row("0xc", 250, 2, 0)])
        assert store.duplicated_windows() == []
        window(store, 300, 399, [make_row("0xb", 350, 3, 0)])  # 0xb moved from 150 to 350
        assert store.duplicated_windows() == [(100, 199), (300, 399)]
        store.forget_windows([(100, 199), (300, 399)])
        assert [w.start_time for w in store.windows()] == [200]


def test_a_transaction_moved_by_a_reorg_ends_up_stored_once(tmp_path: Path) -> None:
    chain = recent_chain(seed=5)
    p = params(tmp_path)
    assert asyncio.run(Runner(p, transport=transport_for(chain)).run()).exit_code == ExitCode.OK
    # A reorg re-mines an old transaction in the newest tenure: the API now lists it there only.
    moved = chain.rows.pop(10)
    last = chain.rows[-1]
    chain.rows.append(
        make_row(moved[0], last[BURN_TIME_INDEX], last[HEIGHT] + 1, 0)  # type: ignore[arg-type]
    )
    report = asyncio.run(Runner(p, transport=transport_for(chain)).run())
    assert report.exit_code == ExitCode.OK, report.message
    with Store.open(p.db_path, read_only=True) as store:
        assert store.duplicated_windows() == []
        assert store.tx_ids() == {row[0] for row in chain.rows}
        stored = store._con.execute(
            "SELECT burn_block_time FROM transactions WHERE tx_id = ?", [moved[0]]
        ).fetchall()
    assert stored == [(last[BURN_TIME_INDEX],)]


def test_a_version_1_database_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    columns = ", ".join(
        f"{name} {kind} PRIMARY KEY" if name == "tx_id" else f"{name} {kind}"
        for name, kind in TX_COLUMNS_V2
    )
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(f"CREATE TABLE transactions ({columns})")
    con.execute(
        "CREATE TABLE windows (start_time BIGINT PRIMARY KEY, end_time BIGINT NOT NULL, "
        "api_total BIGINT NOT NULL, rows_stored BIGINT NOT NULL, state VARCHAR NOT NULL, "
        "pages INTEGER NOT NULL, fetched_at DOUBLE NOT NULL)"
    )
    con.execute(
        "CREATE TABLE runs (run_id BIGINT PRIMARY KEY, pid INTEGER, started_at DOUBLE, "
        "ended_at DOUBLE, api_url VARCHAR, target_days INTEGER, range_start BIGINT, "
        "range_end BIGINT, requests BIGINT, pages BIGINT, transactions_fetched BIGINT, "
        "exit_code INTEGER)"
    )
    con.execute("INSERT INTO meta VALUES ('app', 'stxbf'), ('schema_version', '1')")
    rows = [make_row(f"0x{i:064x}", 1_700_000_000 + i, i, 0) for i in range(3)]
    placeholders = ", ".join("?" for _ in TX_COLUMNS_V2)
    con.executemany(
        f"INSERT INTO transactions VALUES ({placeholders})",
        [row[: len(TX_COLUMNS_V2)] for row in rows],
    )
    con.close()
    with Store.open(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
        assert store.tx_ids() == {row[0] for row in rows}
        indexes = store._con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'transactions'"
        ).fetchone()
        assert indexes == (0,)
        window(store, 1_700_000_000, 1_700_000_002, rows)  # rewriting a window still works
        assert len(store.tx_ids()) == 3
