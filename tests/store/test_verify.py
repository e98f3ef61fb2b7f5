"""The store pieces behind `stxbf verify`: schema 3, replacing a window, checks, damage scans."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from stxbf.errors import DatabaseCorrupt
from stxbf.models import TX_COLUMN_NAMES, tx_row
from stxbf.store import Store, WindowRecord
from stxbf.store.schema import MIGRATIONS, SCHEMA_VERSION, TX_COLUMNS_V2, TX_COLUMNS_V3_ADDED
from tests.fakes import build_file, damage, make_row

V2_WINDOWS = (
    "CREATE TABLE windows (start_time BIGINT PRIMARY KEY, end_time BIGINT NOT NULL, "
    "api_total BIGINT NOT NULL, rows_stored BIGINT NOT NULL, state VARCHAR NOT NULL, "
    "pages INTEGER NOT NULL, fetched_at DOUBLE NOT NULL)"
)


def commit(store: Store, start: int, end: int, rows: list[tuple[object, ...]]) -> None:
    store.commit_window(WindowRecord(start, end, len(rows), len(rows), "verified", 1), rows)


def write_v2_file(path: Path) -> list[tuple[object, ...]]:
    """A database exactly as stxbf's schema 2 left it, with one verified window."""
    con = duckdb.connect(str(path))
    columns = ", ".join(f"{name} {kind}" for name, kind in TX_COLUMNS_V2)
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(f"CREATE TABLE transactions ({columns})")
    con.execute(V2_WINDOWS)
    con.execute(
        "CREATE TABLE runs (run_id BIGINT PRIMARY KEY, pid INTEGER, started_at DOUBLE, "
        "ended_at DOUBLE, api_url VARCHAR, target_days INTEGER, range_start BIGINT, "
        "range_end BIGINT, requests BIGINT, pages BIGINT, transactions_fetched BIGINT, "
        "exit_code INTEGER)"
    )
    con.execute("INSERT INTO meta VALUES ('app', 'stxbf'), ('schema_version', '2')")
    rows = [make_row(f"0x{i:064x}", 1_700_000_000 + i, i, 0) for i in range(3)]
    placeholders = ", ".join("?" for _ in TX_COLUMNS_V2)
    con.executemany(
        f"INSERT INTO transactions VALUES ({placeholders})",
        [row[: len(TX_COLUMNS_V2)] for row in rows],
    )
    con.execute("INSERT INTO windows VALUES (1700000000, 1700000002, 3, 3, 'verified', 1, 42.0)")
    con.close()
    return rows


def test_a_version_2_file_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    rows = write_v2_file(path)
    with Store.open(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
        assert store.tx_ids() == {row[0] for row in rows}
        names = [
            row[0]
            for row in store._con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'transactions' "
                "ORDER BY column_index"
            ).fetchall()
        ]
        assert set(names) == set(TX_COLUMN_NAMES)
        (window,) = store.windows()
        assert window.checked_at == 42.0  # never re-counted: its fetch time stands
        commit(store, 1_700_000_000, 1_700_000_002, rows)  # writing all 23 columns works
        assert len(store.tx_ids()) == 3
    with Store.open(path) as store:  # opening again migrates nothing more
        assert store.get_meta("schema_version") == "4"


def test_a_version_2_file_reads_without_migrating(tmp_path: Path) -> None:
    """`status` opens read-only (no migration): the windows read as before, fetch time as check."""
    path = tmp_path / "v2.duckdb"
    write_v2_file(path)
    with Store.open(path, read_only=True) as store:
        assert [(w.start_time, w.checked_at) for w in store.windows()] == [(1_700_000_000, 42.0)]
        assert store.get_meta("schema_version") == "2"


def test_migration_3_is_idempotent() -> None:
    with Store.open(":memory:") as store:
        for statement in MIGRATIONS[3]:
            store._con.execute(statement)  # a second application changes nothing
        columns = store._con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'transactions'"
        ).fetchone()
        assert columns == (len(TX_COLUMN_NAMES),)
    assert {name for name, _ in TX_COLUMNS_V3_ADDED} == {
        "tenure_change_cause",
        "clarity_version",
        "coinbase_alt_recipient",
        "coinbase_vrf_proof",
    }


def test_replacing_a_window_counts_what_it_added_and_removed() -> None:
    with Store.open(":memory:") as store:
        commit(store, 100, 199, [make_row(f"0x{i}", 150, 1, i) for i in range(4)])
        commit(store, 200, 299, [make_row("0xother", 250, 2, 0)])
        # a reorg: 0x2 and 0x3 are no longer canonical, 0xa and 0xb and 0xc took their place
        new = [make_row(t, 150, 1, i) for i, t in enumerate(["0x0", "0x1", "0xa", "0xb", "0xc"])]
        replaced = store.replace_window(WindowRecord(100, 199, 5, 5, "verified", 1), new)
        assert (replaced.stored, replaced.added, replaced.removed) == (5, 3, 2)
        assert store.tx_ids(100, 199) == {"0x0", "0x1", "0xa", "0xb", "0xc"}
        assert store.tx_ids(200, 299) == {"0xother"}


def test_window_checks_give_the_stored_count_and_first_row_in_paging_order() -> None:
    with Store.open(":memory:") as store:
        commit(store, 100, 199, [make_row("0xz", 150, 5, 0), make_row("0xy", 160, 4, 1)])
        commit(store, 200, 299, [])
        checks = store.window_checks()
        assert [(c.start_time, c.rows_stored, c.first_tx_id) for c in checks] == [
            (100, 2, "0xy"),  # the lower block height comes first, whatever its tx_id
            (200, 0, None),
        ]


def test_checked_at_records_the_last_recount() -> None:
    with Store.open(":memory:") as store:
        before = time.time()
        commit(store, 100, 199, [])
        commit(store, 200, 299, [])
        oldest = store.oldest_check()
        assert oldest is not None and oldest >= before
        store.mark_checked([(100, 199)], at=oldest + 1000)
        store.mark_checked([(200, 299)], at=oldest + 500)
        assert store.oldest_check() == oldest + 500
        assert [w.checked_at for w in store.windows()] == [oldest + 1000, oldest + 500]


def test_the_new_payload_fields_are_read_for_their_own_type_only() -> None:
    base = {"tx_id": "0x1", "burn_block_time": 1, "tx_status": "success"}
    column = TX_COLUMN_NAMES.index
    tenure = tx_row(
        {**base, "tx_type": "tenure_change", "tenure_change_payload": {"cause": "extended"}}
    )
    assert tenure[column("tenure_change_cause")] == "extended"
    contract = tx_row(
        {**base, "tx_type": "smart_contract", "smart_contract": {"clarity_version": 3}}
    )
    assert contract[column("clarity_version")] == 3
    coinbase = tx_row(
        {
            **base,
            "tx_type": "coinbase",
            "coinbase_payload": {"alt_recipient": "SP2.alt", "vrf_proof": "0xabc"},
        }
    )
    assert coinbase[column("coinbase_alt_recipient")] == "SP2.alt"
    assert coinbase[column("coinbase_vrf_proof")] == "0xabc"
    call = tx_row({**base, "tx_type": "contract_call", "tenure_change_payload": {"cause": "x"}})
    assert call[column("tenure_change_cause")] is None


@pytest.mark.slow  # writes and scans a 500k-row file
def test_a_full_scan_finds_damage_that_everyday_queries_miss(tmp_path: Path) -> None:
    path = tmp_path / "damaged.duckdb"
    build_file(path)
    with Store.open(path) as store:
        assert store.read_every_block() == []
    damage(path)
    with Store.open(path) as store:
        assert store.summary(wallets=False).transactions == 500_000  # still looks fine
        assert store.read_every_block() == ["transactions"]
        spans = store.damaged_windows()
        assert spans and len(spans) < 100
        assert all(span in [(w.start_time, w.end_time) for w in store.windows()] for span in spans)


def test_damaged_window_checkpoints_are_a_corrupt_database(tmp_path: Path) -> None:
    with Store.open(":memory:") as store:
        store._con.execute("DROP TABLE windows")
        with pytest.raises(DatabaseCorrupt):
            store.damaged_windows()
