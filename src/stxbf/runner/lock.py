"""The one-writer lock on a database, and the record that names its holder."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from stxbf.errors import LockHeld
from stxbf.paths import read_runner_record, remove_record, this_runner, write_runner_record


@contextlib.contextmanager
def run_lock(lock_path: Path, runner_path: Path, db_path: Path) -> Iterator[None]:
    """Hold the one-writer lock; a second run fails at once, naming the holder's pid."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = FileLock(str(lock_path), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        record = read_runner_record(runner_path)
        pid = record.pid if record is not None else None
        holder = f" (pid {pid})" if pid else ""
        raise LockHeld(
            f"another stxbf run{holder} is already backfilling into {db_path}; "
            "watch it with `stxbf status`",
            pid=pid,
        ) from None
    try:
        write_runner_record(runner_path, this_runner(socket.gethostname()))
        yield
    finally:
        remove_record(runner_path)
        lock.release()
