"""`stxbf export`: a simulated backfill read back from Parquet by pyarrow and DuckDB; a second
export touches nothing; a verify that replaced rows rewrites only its day; days a run must settle
are left out; a run that holds or takes the database is given way to.

The backfills run in process against the simulator (`SimTransport`, no sleeping). The command's
own tests call its entry point in process, with its output captured (no terminal, as under cron);
the tests that kill or interrupt an export run `python -m stxbf` as a subprocess (marked slow).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.types as pat
import pytest

from stxbf.codes import ExitCode
from stxbf.runner import Runner
from stxbf.simulator import SimApi, SimConfig
from stxbf.simulator.transport import SimTransport
from stxbf.store import ExportReport, export_parquet
from tests.fakes import params
from tests.helpers import HANG, assert_one_line_error, cron_env, retry_until, run_cli, spawn, stxbf

DAY = 86_400
HOUR = 3_600


def backfill(home: Path, *, days: int, ends_hours_ago: float, seed: int = 3) -> SimApi:
    """A finished run over a simulated chain of `days` days (300 transactions a day)."""
    end = time.time() - ends_hours_ago * HOUR
    api = SimApi(SimConfig(seed=seed, days=days + 1, tx_per_day=300, end_time=end))
    backfill_again(api, home, days=days)
    return api


def backfill_again(api: SimApi, home: Path, *, days: int, verify: bool = False) -> None:
    p = params(home, target_days=days, verify=verify)
    report = asyncio.run(Runner(p, transport=SimTransport(api, sleep=False)).run())
    assert report.exit_code == ExitCode.OK, report.message


def db_of(home: Path) -> Path:
    return home / "data" / "stxbf.duckdb"


def stored_days(db: Path, *, verified_only: bool = True) -> dict[str, set[str]]:
    """tx_ids per UTC day, as the database holds them (days wholly inside verified windows)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT strftime(to_timestamp(burn_block_time), '%Y-%m-%d'), tx_id FROM transactions"
        ).fetchall()
        windows = con.execute("SELECT start_time, end_time, state FROM windows").fetchall()
    by_day: dict[str, set[str]] = {}
    for day, tx_id in rows:
        by_day.setdefault(day, set()).add(tx_id)
    if not verified_only:
        return by_day
    return {day: ids for day, ids in by_day.items() if day_verified(day, windows)}


def day_verified(day: str, windows: list[tuple[int, int, str]]) -> bool:
    start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    covered = sorted((a, b) for a, b, state in windows if state == "verified")
    reach = start
    for a, b in covered:
        if a <= reach <= b:
            reach = b + 1
    return reach > start + DAY - 1


def files(out: Path) -> dict[str, tuple[int, int]]:
    """Every file in DIR (temporary ones included) with its inode and mtime."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def parquet_days(out: Path) -> dict[str, set[str]]:
    table = ds.dataset(out / "transactions", format="parquet", partitioning="hive").to_table(
        columns=["date", "tx_id"]
    )
    by_day: dict[str, set[str]] = {}
    for day, tx_id in zip(table["date"].to_pylist(), table["tx_id"].to_pylist(), strict=True):
        by_day.setdefault(str(day), set()).add(tx_id)
    return by_day


@pytest.fixture(scope="module")
def ten_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 10-day backfill whose chain ended 30 hours ago (every day settled)."""
    home = tmp_path_factory.mktemp("ten")
    backfill(home, days=10, ends_hours_ago=30)
    return home


def copy_of_database(home: Path, to: Path) -> Path:
    """A copy of `home`'s finished database in `to`, for a test that changes its rows."""
    import shutil

    db = db_of(to)
    db.parent.mkdir(parents=True)
    shutil.copyfile(db_of(home), db)
    assert not db_of(home).with_name(db.name + ".wal").exists()  # the run closed it whole
    return db


def test_ten_days_read_back_by_pyarrow_and_duckdb_equal_the_database(
    ten_days: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = export_parquet(db_of(ten_days), out)
    expected = stored_days(db_of(ten_days))
    # the range's first day is cut by its start, its last by the settle period: both left out
    assert len(expected) >= 8 and 1 <= report.days_unverified_left_out <= 3
    assert report.days_written == len(expected)
    assert parquet_days(out) == expected
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT CAST(date AS VARCHAR), tx_id FROM read_parquet(?, hive_partitioning = true)",
            [str(out / "transactions" / "*" / "*.parquet")],
        ).fetchall()
    from_duckdb: dict[str, set[str]] = {}
    for day, tx_id in rows:
        from_duckdb.setdefault(day, set()).add(tx_id)
    assert from_duckdb == expected
    assert report.rows_exported == sum(len(ids) for ids in expected.values()) == len(rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {day: entry["rows"] for day, entry in manifest["days"].items()} == {
        day: len(ids) for day, ids in expected.items()
    }


def test_types_are_exact_and_times_are_timestamps(ten_days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_parquet(db_of(ten_days), out)
    schema = ds.dataset(out / "transactions", format="parquet", partitioning="hive").schema
    amount = schema.field("token_transfer_amount").type
    assert pat.is_decimal(amount) and (amount.precision, amount.scale) == (38, 0)
    for name in ("block_timestamp", "burn_block_timestamp"):
        assert pat.is_timestamp(schema.field(name).type) and schema.field(name).type.tz == "UTC"
    assert pat.is_int64(schema.field("burn_block_time").type)
    with duckdb.connect(str(db_of(ten_days)), read_only=True) as con:
        stored = con.execute(
            "SELECT tx_id, token_transfer_amount, burn_block_time FROM transactions "
            "WHERE token_transfer_amount IS NOT NULL"
        ).fetchall()
    table = ds.dataset(out / "transactions", format="parquet", partitioning="hive").to_table()
    exported = {
        row["tx_id"]: (row["token_transfer_amount"], row["burn_block_timestamp"])
        for row in table.select(
            ["tx_id", "token_transfer_amount", "burn_block_timestamp"]
        ).to_pylist()
    }
    assert stored
    for tx_id, amount_stored, burn_time in stored:
        if tx_id in exported:  # days not yet verified are left out
            assert int(exported[tx_id][0]) == amount_stored
            assert int(exported[tx_id][1].timestamp()) == burn_time


def test_each_file_is_sorted_by_block_height(ten_days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_parquet(db_of(ten_days), out)
    for path in sorted((out / "transactions").glob("*/data.parquet")):
        rows = ds.dataset(path, format="parquet").to_table(["block_height", "tx_index"]).to_pylist()
        keys = [(row["block_height"], row["tx_index"]) for row in rows]
        assert keys == sorted(keys), path


def test_a_second_export_with_nothing_changed_touches_no_file(
    ten_days: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_parquet(db_of(ten_days), out)
    before = files(out)
    again = export_parquet(db_of(ten_days), out)
    assert (again.days_written, again.days_removed) == (0, 0)
    assert again.days_unchanged == len(stored_days(db_of(ten_days)))
    assert files(out) == before


def test_an_export_leaves_only_the_dataset_and_its_manifest(ten_days: Path, tmp_path: Path) -> None:
    """No lock file or temporary file stays in DIR: a sync to object storage copies only data
    (and a lock file that an export touches would change DIR with nothing to export)."""
    out = tmp_path / "out"
    export_parquet(db_of(ten_days), out)
    assert {name for name in files(out) if not name.startswith("transactions/")} == {
        "manifest.json"
    }
    assert {p.name for p in out.iterdir()} == {"manifest.json", "transactions"}


def test_a_second_export_into_the_same_directory_is_refused_at_once(
    ten_days: Path, tmp_path: Path
) -> None:
    from stxbf.errors import LockHeld
    from stxbf.store.export import ExportDir

    out = tmp_path / "out"
    with ExportDir(out).locked(), pytest.raises(LockHeld, match="another stxbf export"):
        export_parquet(db_of(ten_days), out)


def test_full_rewrites_every_day(ten_days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = export_parquet(db_of(ten_days), out)
    again = export_parquet(db_of(ten_days), out, full=True)
    assert again.days_written == first.days_written and again.days_unchanged == 0


@pytest.mark.slow  # two whole runs (one a verify) and two exports: the quick loop keeps the
# moved-rows test, which rewrites one changed day without a run
def test_after_a_verify_replaced_rows_only_their_day_is_rewritten(tmp_path: Path) -> None:
    api = backfill(tmp_path / "home", days=6, ends_hours_ago=40, seed=21)
    out = tmp_path / "out"
    export_parquet(db_of(tmp_path / "home"), out)
    before_files, before_days = files(out), stored_days(db_of(tmp_path / "home"))
    old_time = api.chain.tenure_burn_time[api.chain.n_tenures // 2]  # days old: verify's job
    assert api.chain.late_insert(old_time, 5) > 0
    backfill_again(api, tmp_path / "home", days=6, verify=True)
    after_days = stored_days(db_of(tmp_path / "home"))
    changed = {day for day in after_days if after_days[day] != before_days.get(day)}
    assert len(changed) == 1
    report = export_parquet(db_of(tmp_path / "home"), out)
    assert set(report.written) == changed and report.days_removed == 0
    after_files = files(out)
    touched = {name for name in after_files if after_files[name] != before_files.get(name)}
    assert touched == {f"transactions/date={changed.pop()}/data.parquet", "manifest.json"}
    assert parquet_days(out) == after_days


def test_a_day_the_database_no_longer_holds_is_removed(ten_days: Path, tmp_path: Path) -> None:
    db, out = copy_of_database(ten_days, tmp_path / "home"), tmp_path / "out"
    export_parquet(db, out)
    gone = sorted(stored_days(db))[1]
    with duckdb.connect(str(db)) as con:  # as a reorg that emptied a day would leave it
        con.execute(
            "DELETE FROM transactions WHERE strftime(to_timestamp(burn_block_time), '%Y-%m-%d')"
            " = ?",
            [gone],
        )
    report = export_parquet(db, out)
    assert report.removed == [gone] and report.days_written == 0
    assert not (out / "transactions" / f"date={gone}").exists()
    assert gone not in json.loads((out / "manifest.json").read_text())["days"]
    assert parquet_days(out) == stored_days(db)


def test_days_in_the_settle_period_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    backfill(tmp_path / "home", days=4, ends_hours_ago=0, seed=23)
    db, out = db_of(tmp_path / "home"), tmp_path / "out"
    unsettled = set(stored_days(db, verified_only=False)) - set(stored_days(db))
    assert unsettled  # the last 24 h are open windows
    plain = export_parquet(db, out)
    assert set(parquet_days(out)) == set(stored_days(db))
    assert plain.days_unverified_left_out == len(unsettled)
    marked = export_parquet(db, out, include_unverified=True)
    assert set(marked.written) == unsettled
    assert parquet_days(out) == stored_days(db, verified_only=False)
    days = json.loads((out / "manifest.json").read_text())["days"]
    assert {day for day, entry in days.items() if not entry["verified"]} == unsettled
    export_parquet(db, out)  # without the flag again: DIR holds what was asked for
    assert set(parquet_days(out)) == set(stored_days(db))


def test_an_export_gives_the_database_to_a_run_that_starts(ten_days: Path, tmp_path: Path) -> None:
    """Between two holds of the file the export asks whether a run waits; it stops for one."""
    out = tmp_path / "out"
    asked: list[int] = []

    def run_waiting() -> bool:
        asked.append(1)
        return len(asked) >= 2  # a run takes the lock after the export's first two holds

    ticks = iter(range(1_000_000))
    stopped = export_parquet(
        db_of(ten_days), out, run_waiting=run_waiting, hold_seconds=1, clock=lambda: next(ticks)
    )
    assert stopped.stopped_for_run and stopped.days_written == 2
    assert stopped.days_left == len(stored_days(db_of(ten_days))) - 2
    assert set(json.loads((out / "manifest.json").read_text())["days"]) == set(stopped.written)
    rest = export_parquet(db_of(ten_days), out)
    assert rest.days_unchanged == 2 and not rest.stopped_for_run
    assert parquet_days(out) == stored_days(db_of(ten_days))


# -- the command --------------------------------------------------------------------------------


def cli_env(home: Path) -> dict[str, str]:
    return cron_env(STXBF_DB=str(db_of(home)))


def export_command(
    home: Path, *args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """`stxbf export ARGS` on `home`'s database, in this process (captured output is no
    terminal, as under cron); shaped as a finished process for the shared assertions."""
    monkeypatch.setenv("STXBF_DB", str(db_of(home)))
    argv = ["export", *args]
    return subprocess.CompletedProcess(argv, *run_cli(argv, capsys, monkeypatch))


def test_the_command_prints_only_its_summary_when_not_on_a_terminal(
    ten_days: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    done = export_command(ten_days, str(out), capsys=capsys, monkeypatch=monkeypatch)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Exported to {out}: ")
    as_json = export_command(ten_days, str(out), "--json", capsys=capsys, monkeypatch=monkeypatch)
    summary: dict[str, Any] = json.loads(as_json.stdout)
    assert as_json.returncode == summary["exit_code"] == 0
    assert summary["days_written"] == 0 and summary["days_unchanged"] > 0
    assert set(summary) >= {f.name for f in ExportReport.__dataclass_fields__.values()}


def test_the_command_refuses_while_a_run_holds_the_database(
    ten_days: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from filelock import FileLock

    lock = FileLock(str(db_of(ten_days).with_name("stxbf.duckdb.lock")))
    with lock:  # as `stxbf run` holds it (runner/lock.py)
        out = str(tmp_path / "out")
        done = export_command(ten_days, out, capsys=capsys, monkeypatch=monkeypatch)
    message = assert_one_line_error(done, ExitCode.LOCKED)
    assert "DuckDB lets one process open the file" in message
    assert not (tmp_path / "out" / "transactions").exists()


@pytest.mark.parametrize(
    ("case", "code"),
    [("dir-is-a-file", ExitCode.USAGE), ("foreign-dir", ExitCode.USAGE), ("no-db", ExitCode.ERROR)],
)
def test_bad_input_is_one_line_and_a_code(
    tmp_path: Path,
    case: str,
    code: ExitCode,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    out = tmp_path / "out"
    home = tmp_path / "home"
    if case != "no-db":  # the refusal comes before anything is read from the database
        home = request.getfixturevalue("ten_days")
    if case == "dir-is-a-file":
        out.write_text("x")
    elif case == "foreign-dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    done = export_command(home, str(out), capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line_error(done, code)
    if case == "foreign-dir":
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_day_whose_rows_changed_but_kept_their_tx_ids_is_rewritten(
    ten_days: Path, tmp_path: Path
) -> None:
    """A reorg can move a transaction to another block: same tx_id, new block hash and height."""
    db, out = copy_of_database(ten_days, tmp_path / "home"), tmp_path / "out"
    export_parquet(db, out)
    moved = sorted(stored_days(db))[1]
    with duckdb.connect(str(db)) as con:
        con.execute(
            "UPDATE transactions SET block_hash = '0x' || md5(block_hash), "
            "block_height = block_height + 1 "
            "WHERE strftime(to_timestamp(burn_block_time), '%Y-%m-%d') = ?",
            [moved],
        )
    report = export_parquet(db, out)
    assert report.written == [moved]


# -- a crash in the middle ----------------------------------------------------------------------


def many_days(db: Path, *, days: int, per_day: int) -> None:
    """A database of `days` verified days, made by DuckDB itself (a run would take minutes)."""
    from stxbf.store import Store

    end = int(time.time()) // DAY * DAY - 2 * DAY - 1
    start = end - days * DAY + 1
    Store.open(db).close()  # the schema, as a run creates it
    with duckdb.connect(str(db)) as con:
        con.execute(
            f"""
            INSERT INTO transactions (tx_id, tx_type, tx_status, sender_address, nonce, fee_ustx,
                block_height, block_hash, block_time, burn_block_height, burn_block_time,
                tx_index, canonical, event_count, token_transfer_amount)
            SELECT '0x' || md5(i::VARCHAR), 'token_transfer', 'success', 'SP' || (i % 97), i,
                   180 + i % 7, 1000 + i // 20, md5((i // 20)::VARCHAR),
                   {start} + i * {DAY} // {per_day}, 800 + i // 100,
                   {start} + i * {DAY} // {per_day}, i % 20, true, 1, i::HUGEINT * 1000003
            FROM range({days * per_day}) AS r(i)
            """
        )
        con.execute(
            "INSERT INTO windows (start_time, end_time, api_total, rows_stored, state, pages, "
            "fetched_at) VALUES (?, ?, ?, ?, 'verified', 1, 0)",
            [start, end, days * per_day, days * per_day],
        )


def fees_by_day(out: Path) -> dict[str, dict[str, int]]:
    """{day: {tx_id: fee}} of every partition file, each read on its own."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted((out / "transactions").glob("date=*/data.parquet")):
        rows = ds.dataset(path, format="parquet").to_table(["tx_id", "fee_ustx"]).to_pylist()
        found[path.parent.name.removeprefix("date=")] = {r["tx_id"]: r["fee_ustx"] for r in rows}
    return found


@pytest.mark.slow  # a subprocess exporting 150 days, killed in the middle, then again
def test_a_kill_9_in_the_middle_leaves_every_day_old_or_new(tmp_path: Path) -> None:
    db, out = tmp_path / "stxbf.duckdb", tmp_path / "out"
    many_days(db, days=150, per_day=400)
    export_parquet(db, out)
    old = fees_by_day(out)
    with duckdb.connect(str(db)) as con:  # every day changes: an export rewrites them all
        con.execute("UPDATE transactions SET fee_ustx = fee_ustx + 1")
    new = {day: {tx: fee + 1 for tx, fee in rows.items()} for day, rows in old.items()}
    inodes = {p: p.stat().st_ino for p in (out / "transactions").glob("date=*/data.parquet")}

    proc = spawn("export", str(out), env=cron_env(STXBF_DB=str(db)))

    def renamed() -> bool:
        """A day's file replaced (or, were the write not atomic, gone: readers would see that)."""
        try:
            return any(p.stat().st_ino != inode for p, inode in inodes.items())
        except FileNotFoundError:
            return True

    retry_until(lambda: renamed() or proc.poll() is not None, timeout=HANG, interval=0.001)
    assert proc.poll() is None, "the export ended before a day was seen renamed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    after = fees_by_day(out)
    assert set(after) == set(old)
    fresh = {day for day in after if after[day] == new[day]}
    assert all(after[day] in (old[day], new[day]) for day in after)
    assert 0 < len(fresh) < len(old)  # killed in the middle: some days new, some old
    assert [p.name for p in (out / "transactions").rglob("*") if p.is_file()] == [
        "data.parquet"
    ] * len(old)  # nothing half-written where readers look

    done = stxbf("export", str(out), "--json", env=cron_env(STXBF_DB=str(db)))
    assert done.returncode == 0, done.stderr
    assert fees_by_day(out) == new
    assert not (out / ".stxbf-tmp").exists()


@pytest.mark.slow  # a subprocess exporting 500 days while the runner's own lock and open happen
def test_a_run_that_starts_during_an_export_gets_the_database(tmp_path: Path) -> None:
    """The runner takes its lock, then opens the file with 5 s of patience: the export, which
    holds the file ~2 s at a time, gives it up, records what it wrote and exits 3."""
    from stxbf.paths import DataPaths
    from stxbf.runner import run_lock
    from stxbf.runner.storethread import open_store

    db, out = tmp_path / "stxbf.duckdb", tmp_path / "out"
    many_days(db, days=1500, per_day=50)  # many more days than one 2-second hold writes (500 took
    # one hold on an idle machine, and the export finished before the run came)
    proc = spawn("export", str(out), "--json", env=cron_env(STXBF_DB=str(db)))
    retry_until(
        lambda: any((out / "transactions").glob("date=*/data.parquet")) or proc.poll() is not None,
        interval=0.001,
    )
    assert proc.poll() is None, "the export ended before it wrote a day"
    paths = DataPaths.of(tmp_path, db)
    with run_lock(paths):
        open_store(db).close()  # as `stxbf run` opens it: this would raise DatabaseBusy
        stdout, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == ExitCode.INCOMPLETE, stderr
    summary = json.loads(stdout)
    assert summary["stopped_for_run"] and summary["days_left"] > 0
    assert set(json.loads((out / "manifest.json").read_text())["days"]) == set(summary["written"])
    done = stxbf("export", str(out), env=cron_env(STXBF_DB=str(db)))
    assert done.returncode == 0, done.stderr
    assert parquet_days(out) == stored_days(db)


def test_a_file_not_yet_migrated_exports_the_same_columns(tmp_path: Path) -> None:
    """A schema 2 file, opened read-only, is not migrated: the columns it lacks come out NULL."""
    from stxbf.store.schema import TX_COLUMNS_V3_ADDED

    current, old = tmp_path / "current.duckdb", tmp_path / "old.duckdb"
    many_days(current, days=3, per_day=10)
    many_days(old, days=3, per_day=10)
    with duckdb.connect(str(old)) as con:
        for name, _ in TX_COLUMNS_V3_ADDED:
            con.execute(f"ALTER TABLE transactions DROP COLUMN {name}")
        con.execute("ALTER TABLE windows DROP COLUMN checked_at")
        con.execute("ALTER TABLE windows DROP COLUMN source")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    export_parquet(current, tmp_path / "current")
    report = export_parquet(old, tmp_path / "old")
    assert report.days_written == 3
    schema_of = {
        name: ds.dataset(tmp_path / name / "transactions", format="parquet", partitioning="hive")
        for name in ("current", "old")
    }
    assert schema_of["old"].schema == schema_of["current"].schema
    assert parquet_days(tmp_path / "old") == parquet_days(tmp_path / "current")


@pytest.mark.slow  # a subprocess exporting 60 large days, interrupted in the middle, then again
def test_ctrl_c_in_the_middle_records_the_days_written_and_exits_130(tmp_path: Path) -> None:
    """Large days: the signal lands inside DuckDB's COPY, which reports it as its own error."""
    db, out = tmp_path / "stxbf.duckdb", tmp_path / "out"
    many_days(db, days=60, per_day=20_000)
    proc = spawn("export", str(out), env=cron_env(STXBF_DB=str(db)))
    retry_until(
        lambda: any((out / "transactions").glob("date=*/data.parquet")) or proc.poll() is not None,
        interval=0.001,
    )
    assert proc.poll() is None, "the export ended before it wrote a day"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    recorded = json.loads((out / "manifest.json").read_text())["days"]
    on_disk = {
        p.parent.name.removeprefix("date="): p.stat().st_size
        for p in (out / "transactions").glob("date=*/data.parquet")
    }
    assert 0 < len(recorded) < 60
    assert {day: entry["bytes"] for day, entry in recorded.items()} == on_disk
    again = export_parquet(db, out)
    assert again.days_unchanged == len(recorded) and again.days_written == 60 - len(recorded)


def test_a_first_export_killed_before_its_manifest_is_finished_by_the_next(
    ten_days: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = export_parquet(db_of(ten_days), out)
    (out / "manifest.json").unlink()  # as a kill -9 before the first manifest leaves DIR
    again = export_parquet(db_of(ten_days), out)
    assert again.days_written == first.days_written
    assert parquet_days(out) == stored_days(db_of(ten_days))


@pytest.mark.slow  # four exports of a small year in subprocesses
def test_the_export_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """`benchmarks/export.py` on a small year: structure only, no speed asserted."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "export.py"
    done = subprocess.run(
        [sys.executable, str(script), "--dir", str(tmp_path), "--rows", "7300"],
        capture_output=True,
        text=True,
        timeout=HANG * 5,
        env=cron_env(),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [result[name]["days_written"] for name in ("first", "unchanged", "one_day_changed")] == [
        365,
        0,
        1,
    ]
    assert result["full"]["days_written"] == 365 and result["first"]["rows_exported"] == 7300
