"""`stxbf export` on a year of data: the first (full) export, a second with nothing changed, and
one after a day's rows were replaced; seconds, files and bytes of each.

    python benchmarks/export.py [--dir DIR] [--rows 2000000] [--repeat 1]

Builds (once, then reuses) a database shaped as a finished `stxbf run` leaves it: 365 days of
verified windows (two per day, written newest first, as a run commits them), ~2M transactions with
the columns' realistic widths (66-character tx_ids and hashes, a skewed pool of senders, u128
amounts), made by DuckDB from `range()` in seconds rather than by the simulator in an hour. Each
export runs as `python -m stxbf export` in a subprocess, as a user runs it; the JSON summary it
prints is the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DAY = 86_400
WINDOWS_PER_DAY = 2


def build(db: Path, *, rows: int, days: int = 365) -> None:
    """A year of verified windows and their rows, inserted window by window, newest first."""
    import duckdb

    from stxbf.store import Store

    end = int(time.time()) // DAY * DAY - 1
    start = end - days * DAY + 1
    with Store.open(db) as store:
        store.set_meta("target_days", days)
        store.set_meta("range_start", start)
        store.set_meta("range_end", end)
    con = duckdb.connect(str(db))
    windows = days * WINDOWS_PER_DAY
    span = days * DAY // windows
    per_window = rows // windows
    for index in reversed(range(windows)):
        w_start = start + index * span
        w_end = w_start + span - 1
        first = index * per_window
        con.execute(
            f"""
            INSERT INTO transactions
            SELECT '0x' || md5(i::VARCHAR) || md5((i + 1)::VARCHAR),
                   ['token_transfer', 'contract_call', 'coinbase', 'smart_contract'][1 + i % 4],
                   'success', 'SP' || upper(md5((hash(i) % 237523)::VARCHAR)), NULL, i % 5000,
                   180 + i % 9000, 100000 + i // 40, '0x' || md5((i // 40)::VARCHAR) || md5('b'),
                   {w_start} + (i - {first}) * {span} // {per_window}, 800000 + i // 400,
                   {w_start} + (i - {first}) * {span} // {per_window}, i % 40, true, 1 + i % 3,
                   CASE WHEN i % 4 = 0 THEN 'SP' || upper(md5((i % 9999)::VARCHAR)) END,
                   CASE WHEN i % 4 = 0 THEN (i * 7919)::HUGEINT * 1000003 END,
                   CASE WHEN i % 4 = 1 THEN 'SP000.contract-' || (i % 300) END,
                   CASE WHEN i % 4 = 1 THEN 'transfer' END, NULL, NULL, NULL, NULL
            FROM range({first}, {first + per_window}) AS r(i)
            """
        )
        con.execute(
            "INSERT INTO windows (start_time, end_time, api_total, rows_stored, state, pages, "
            "fetched_at, checked_at, source) VALUES (?, ?, ?, ?, 'verified', 80, ?, ?, 'v1')",
            [w_start, w_end, per_window, per_window, time.time(), time.time()],
        )
    con.execute("CHECKPOINT")
    con.close()


def export(db: Path, out: Path, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STXBF_", "HIRO_"))}
    env.update(STXBF_HOME=str(db.parent), STXBF_DB=str(db))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stxbf", "export", str(out), "--json", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"export failed ({done.returncode}): {done.stderr.strip()}")
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["wall_seconds"] = round(wall, 2)
    summary.pop("written", None)
    summary.pop("removed", None)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=Path("/tmp/stxbf-export-bench"))
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    home: Path = args.dir
    home.mkdir(parents=True, exist_ok=True)
    db = home / "stxbf.duckdb"
    if not db.exists():
        began = time.time()
        build(db, rows=args.rows)
        print(f"built {db} in {time.time() - began:.0f} s", file=sys.stderr)
    out = home / "export"
    shutil.rmtree(out, ignore_errors=True)
    result: dict[str, Any] = {"db_bytes": db.stat().st_size}
    result["first"] = export(db, out)
    result["unchanged"] = export(db, out)
    import duckdb

    with duckdb.connect(str(db)) as con:  # a verify that replaced one day's rows
        middle = con.execute("SELECT median(burn_block_time) FROM transactions").fetchone()
        day = int(middle[0]) // DAY if middle else 0
        con.execute(
            "UPDATE transactions SET fee_ustx = fee_ustx + 1 WHERE burn_block_time // ? = ?",
            [DAY, day],
        )
    result["one_day_changed"] = export(db, out)
    result["full"] = export(db, out, "--full")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
