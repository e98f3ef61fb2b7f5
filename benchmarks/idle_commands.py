"""Idle `stxbf status`, `health` and `metrics` on a year of data, against `stxbf --help`.

    python benchmarks/idle_commands.py [--dir DIR] [--rows 2000000] [--senders 237523] [--repeat 7]

Builds (once, then reuses) a database the way a finished `stxbf run` leaves it, straight through
the Store API rather than the simulator (a minute instead of an hour): 365 days of verified
windows, ~2M transactions, senders drawn with a skew from a pool of realistic size (a year of the
simulator had 237,523 distinct senders in 1,991,907 transactions), a run record ending with exit
0, and the summary the run saves at its end. Then it times each command as a subprocess, with no
run active, and prints the medians as JSON.

Two idle states are timed: the first call after a run (opens DuckDB read-only, reads the saved
summary, writes `<db>.summary.json`) and later calls (read `<db>.summary.json` only). Set
`STXBF_BENCH_PYTHONPATH` to time another checkout's code on the same file (an older stxbf
ignores the saved summary and counts).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

DAY = 86_400
WINDOW_ROWS = 4_000


def build(db: Path, *, rows: int, senders: int, seed: int = 7) -> None:
    from stxbf.models import TX_COLUMN_NAMES
    from stxbf.store import Store, WindowRecord

    rng = random.Random(seed)
    pool = [f"SP{rng.getrandbits(160):040X}" for _ in range(senders)]
    end = int(time.time()) // DAY * DAY - 1
    start = end - 365 * DAY + 1
    windows = max(1, rows // WINDOW_ROWS)
    span = (end - start + 1) // windows
    with Store.open(db) as store:
        store.set_meta("target_days", 365)
        store.set_meta("range_start", start)
        store.set_meta("range_end", end)
        run_id = store.start_run(pid=1, started_at=time.time(), target_days=365)
        made = 0
        for index in range(windows):
            w_start = start + index * span
            w_end = end if index == windows - 1 else w_start + span - 1
            count = rows - made if index == windows - 1 else WINDOW_ROWS
            batch = []
            for _ in range(count):
                made += 1
                when = rng.randint(w_start, w_end)
                # A skewed draw: a few busy senders, a long tail of occasional ones.
                busy = rng.random() < 0.6
                pick = int(rng.paretovariate(1.2)) - 1 if busy else rng.randrange(senders)
                sender = pool[min(senders - 1, pick)]
                batch.append(
                    (
                        f"0x{rng.getrandbits(256):064x}", "token_transfer", "success", sender,
                        None, made, 180, 100_000 + made // 10, f"0x{rng.getrandbits(256):064x}",
                        when, 800_000 + made // 400, when, made % 50, True, 1,
                        pool[rng.randrange(senders)], rng.randrange(10**12), None, None,
                    ) + (None,) * (len(TX_COLUMN_NAMES) - 19)  # the columns of later schemas
                )  # fmt: skip
            store.commit_window(
                WindowRecord(w_start, w_end, len(batch), len(batch), "verified", 80), batch
            )
        store.end_run(run_id, ended_at=time.time(), exit_code=0)
        store.save_summary()  # as `stxbf run` does when it ends
        store.checkpoint()


def timed(
    args: list[str], env: dict[str, str], repeat: int, before: list[str] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        for setup in before or []:
            Path(setup).unlink(missing_ok=True)
        began = time.perf_counter()
        subprocess.run(args, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=Path("/tmp/stxbf-idle-bench"))
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--senders", type=int, default=237_523)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    home: Path = args.dir
    home.mkdir(parents=True, exist_ok=True)
    db = home / "stxbf.duckdb"
    if not db.exists():
        began = time.time()
        build(db, rows=args.rows, senders=args.senders)
        print(f"built {db} in {time.time() - began:.0f} s", file=sys.stderr)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        found = con.execute(
            "SELECT count(*), count(DISTINCT sender_address) FROM transactions"
        ).fetchone()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STXBF_", "HIRO_"))}
    env.update(STXBF_HOME=str(home), COLUMNS="100")
    if os.environ.get("STXBF_BENCH_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["STXBF_BENCH_PYTHONPATH"]
    stxbf = [sys.executable, "-m", "stxbf"]
    cache = str(db) + ".summary.json"
    result: dict[str, object] = {
        "transactions": found[0] if found else None,
        "senders": found[1] if found else None,
        "db_bytes": db.stat().st_size,
        "help": timed([*stxbf, "--help"], env, args.repeat),
    }
    for command in ("status", "health", "metrics"):
        argv = [*stxbf, command]
        if command == "health":  # no tmux server to ask: the same for every version timed
            argv += ["--socket-name", "stxbf-bench-none"]
        result[f"{command}_first_call"] = timed(argv, env, args.repeat, before=[cache])
        result[f"{command}_later_calls"] = timed(argv, env, args.repeat)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
