"""A stand-in for `stxbf run` in tmux tests: holds the lock, publishes progress, checkpoints.

    python tests/fake_runner.py --db PATH [--target-days N] [--seconds S] [--stale]

It takes the same lock and pid file as the runner (a filelock and `<db>.runner.json`), publishes a
ProgressSnapshot every 0.2 s, and on SIGINT/SIGTERM publishes phase "interrupted", writes
`<db>.checkpointed` and exits 130, as the real runner does. It reports whether an API key reached
it by writing the key's SHA-256 to `<db>.keyhash`, and prints only "api key: present/absent".
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from stxbf import snapshot
from stxbf.snapshot import DAY, Counters, ProgressSnapshot


@contextlib.contextmanager
def run_lock(lock_path: Path, runner_path: Path) -> Iterator[None]:
    lock = FileLock(str(lock_path))
    lock.acquire(timeout=0)
    info = {"pid": os.getpid(), "started_at": time.time(), "host": socket.gethostname()}
    runner_path.write_text(json.dumps(info), encoding="utf-8")
    try:
        yield
    finally:
        runner_path.unlink(missing_ok=True)
        lock.release()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--target-days", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stale", action="store_true", help="publish once, then go quiet")
    args, _unknown = parser.parse_known_args()
    db: Path = args.db
    lock_path = db.with_name(db.name + ".lock")
    runner_path = db.with_name(db.name + ".runner.json")
    progress_path = db.with_name(db.name + ".progress.json")
    key = os.environ.get("STXBF_API_KEY") or os.environ.get("HIRO_API_KEY") or ""
    db.with_name(db.name + ".keyhash").write_text(
        hashlib.sha256(key.encode()).hexdigest() if key else "", encoding="utf-8"
    )
    print(f"fake runner pid {os.getpid()}: api key: {'present' if key else 'absent'}", flush=True)
    stop = {"signal": ""}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signal.Signals(signum).name

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    end = int(started)
    snap = ProgressSnapshot(
        pid=os.getpid(),
        started_at=started,
        updated_at=started,
        phase="fetching",
        api_url="http://127.0.0.1:1",
        target_days=args.target_days,
        range_start=end - args.target_days * DAY + 1,
        range_end=end,
        counters=Counters(requests=10, pages=8, responses_429=1),
        coverage=[0.0] * args.target_days,
        rate_rpm=120.0,
        limit_rpm=500.0,
        eta_seconds=3600.0,
    )
    with run_lock(lock_path, runner_path):
        tick = 0
        while not stop["signal"] and time.time() - started < args.seconds:
            if not args.stale or tick == 0:
                done = min(args.target_days, tick // 2)
                snap.coverage = [
                    1.0 if i >= args.target_days - done else 0.0 for i in range(args.target_days)
                ]
                snap.transactions_stored = 100 * done
                snap.updated_at = time.time()
                snap.counters.requests += 1
                snapshot.publish(progress_path, snap)
            tick += 1
            time.sleep(0.2)
        code = 130 if stop["signal"] else 0
        snap.phase = "interrupted" if stop["signal"] else "finished"
        snap.exit_code = code
        snap.updated_at = time.time()
        snapshot.publish(progress_path, snap)
        if stop["signal"]:
            db.with_name(db.name + ".checkpointed").write_text(stop["signal"], encoding="utf-8")
            print(f"stopping ({stop['signal']}): checkpointed", flush=True)
    print(f"fake runner done: exit {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
