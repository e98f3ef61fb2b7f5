"""Schema 4: each window records the route that filled it (v1 or v3), for status and the log."""

from __future__ import annotations

from pathlib import Path

import duckdb

from stxbf.codes import WindowState
from stxbf.store import Store, WindowRecord
from stxbf.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.fakes import make_row


def write_v3_file(path: Path) -> None:
    """A database as schema 3 left it: two verified windows, no `source` column."""
    with Store.open(path) as store:
        rows = [make_row(f"0x{i:064x}", 1_700_000_000 + i, i, 0) for i in range(3)]
        store.commit_window(WindowRecord(1_700_000_000, 1_700_000_002, 3, 3, "verified", 1), rows)
        store.commit_window(WindowRecord(1_700_000_003, 1_700_000_009, 0, 0, "verified", 1), [])
        store._con.execute("ALTER TABLE windows DROP COLUMN source")
        store._con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def test_a_schema_3_file_reads_its_windows_as_v1_without_migrating(tmp_path: Path) -> None:
    path = tmp_path / "v3schema.duckdb"
    write_v3_file(path)
    with Store.open(path, read_only=True) as store:  # `status` opens read-only
        assert store.get_meta("schema_version") == "3"
        assert {w.source for w in store.windows()} == {"v1"}
        assert store.window_sources() == {"v1": 2}


def test_migration_4_marks_every_existing_window_v1_and_new_ones_keep_their_source(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3schema.duckdb"
    write_v3_file(path)
    with Store.open(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
        assert [w.source for w in store.windows()] == ["v1", "v1"]
        row = make_row("0x" + "ab" * 32, 1_700_000_020, 9, 0)
        store.commit_window(
            WindowRecord(1_700_000_010, 1_700_000_029, 1, 1, "verified", 2, source="v3"), [row]
        )
        assert store.window_sources() == {"v1": 2, "v3": 1}
    with Store.open(path) as store:  # opening again migrates nothing more
        assert [w.source for w in store.windows()] == ["v1", "v1", "v3"]


def test_migration_4_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "twice.duckdb"
    write_v3_file(path)
    with Store.open(path) as store:
        for statement in MIGRATIONS[4]:
            store._con.execute(statement)  # a second application changes nothing
        assert store.window_sources() == {"v1": 2}
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*) FROM windows WHERE source IS NULL").fetchone() == (0,)
    con.close()


def test_a_window_short_of_its_total_is_incomplete_and_counts_for_no_source() -> None:
    """The store, not its caller, decides `incomplete`: the stored count is what proves a window."""
    with Store.open(":memory:") as store:
        rows = [make_row(f"0x{i:064x}", 1_700_000_000 + i, i, 0) for i in range(2)]
        short = WindowRecord(1_700_000_000, 1_700_000_009, 3, 3, WindowState.VERIFIED, 1)
        assert store.commit_window(short, rows) == 2
        open_ = WindowRecord(1_700_000_010, 1_700_000_019, 0, 0, WindowState.OPEN, 1, source="v3")
        store.commit_window(open_, [])
        assert [w.state for w in store.windows()] == [WindowState.INCOMPLETE, WindowState.OPEN]
        assert store.windows(state=WindowState.INCOMPLETE)[0].rows_stored == 2
        assert store.window_sources() == {"v3": 1}
        assert store.window_checks() == []  # only verified windows are re-counted
