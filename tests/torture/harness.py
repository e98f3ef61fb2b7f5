"""What the reliability, bad-input, security and torture tests share.

- `Recorder`: every request the simulator answers (path, parameters, headers), to check what left
  stxbf: no key outside the header, no committed window fetched again, no request too early.
- `spawn` / `crash_run`: `stxbf` (or `crashpoint.py` around it) as a real subprocess, as cron would
  start it: no terminal, plain output.
- `assert_verified_exact`: every verified window holds exactly the chain's tx_ids, no duplicates.
- `fingerprint`: a database's contents (tx_ids, windows, meta) to prove a command changed nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from stxbf.simulator import SimServer
from stxbf.state import ProgressSnapshot, read
from stxbf.store import Store

CRASHPOINT = Path(__file__).with_name("crashpoint.py")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
PAGE_LIMIT = 50


# -- the simulator's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    at: float
    method: str
    target: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def window(self) -> tuple[int, int] | None:
        """(start_time, end_time) of a window page (not the preflight's one-row requests)."""
        if self.params.get("limit") != str(PAGE_LIMIT):
            return None
        if "start_time" not in self.params or "end_time" not in self.params:
            return None
        return int(self.params["start_time"]), int(self.params["end_time"])


class Recorder:
    """Wraps `sim.api.handle`: every request the simulator sees, in arrival order."""

    def __init__(self, sim: SimServer) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = sim.api
        original = api.handle

        def handle(
            method: str,
            target: str,
            headers: Any,
            client: str = "127.0.0.1",
            now: float | None = None,
        ) -> Any:
            split = urlsplit(target)
            if not split.path.startswith("/_sim/"):
                request = Request(
                    time.time(),
                    method,
                    target,
                    split.path,
                    dict(parse_qsl(split.query, keep_blank_values=True)),
                    {str(k).lower(): str(v) for k, v in dict(headers).items()},
                )
                with self._lock:
                    self.requests.append(request)
            return original(method, target, headers, client=client, now=now)

        api.handle = handle  # type: ignore[method-assign]

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.requests[mark:])


# -- running stxbf -------------------------------------------------------------------------------


def cron_env(**extra: str) -> dict[str, str]:
    """The environment of the test (already isolated by conftest), as cron would pass it."""
    env = {k: v for k, v in os.environ.items() if k not in ("TERM", "TMUX")}
    env.update(extra)
    return env


def spawn(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """`python -m stxbf ARGS` with no terminal (stdin closed, output captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stxbf", *args],
        env=env if env is not None else cron_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def stxbf(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **popen: Any
) -> subprocess.CompletedProcess[str]:
    proc = spawn(*args, env=env, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"stxbf {' '.join(args)} did not end in {timeout} s:\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def crash_run(
    site: str, nth: int, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`stxbf ARGS` that kill -9s itself the nth time it reaches `site` (see crashpoint.py)."""
    proc = subprocess.run(
        [sys.executable, str(CRASHPOINT), site, str(nth), *args],
        env=env if env is not None else cron_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def error_lines(stderr: str) -> list[str]:
    """stderr without the runner's timestamped log lines: the error and its hint, if any."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`; one `stxbf: error:` line, at most one indented hint, never a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = error_lines(result.stderr)
    errors = [line for line in lines if line.startswith("stxbf: error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in lines if not line.startswith("stxbf: error:")]
    assert all(line.startswith("  ") for line in others), result.stderr
    assert len(others) <= 1, result.stderr
    return errors[0]


def wait_for_snapshot(
    progress: Path,
    predicate: Callable[[ProgressSnapshot], bool],
    *,
    proc: subprocess.Popen[str] | None = None,
    timeout: float = 60.0,
) -> ProgressSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snap = read(progress)
        if snap is not None and predicate(snap):
            return snap
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before the condition")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; last snapshot: {snap}")
        time.sleep(0.05)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


# -- the database's side -------------------------------------------------------------------------


def assert_verified_exact(db: Path, sim: SimServer) -> int:
    """Every verified window holds exactly the simulator's tx_ids; returns how many there are."""
    with Store.open(db, read_only=True) as store:
        verified = store.windows(state="verified")
        for window in verified:
            stored = store.tx_ids(window.start_time, window.end_time)
            truth = set(sim.chain.tx_ids(window.start_time, window.end_time))
            assert stored == truth, (
                f"window {window.start_time}..{window.end_time}: "
                f"{len(truth - stored)} missing, {len(stored - truth)} extra"
            )
            assert window.rows_stored == window.api_total == len(truth)
        total, distinct = store._con.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
        assert total == distinct, "duplicate tx_ids"
        spans = sorted((w.start_time, w.end_time) for w in store.windows())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start > end, "overlapping windows"
    return len(verified)


def assert_range_exact(db: Path, sim: SimServer) -> set[str]:
    """The whole target range (as the last run planned it) equals the simulator's ground truth."""
    with Store.open(db, read_only=True) as store:
        start = int(store.get_meta("range_start") or 0)
        end = int(store.get_meta("range_end") or 0)
        stored = store.tx_ids(start, end)
    truth = set(sim.chain.tx_ids(start, end))
    missing, extra = truth - stored, stored - truth
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    return stored


def verified_spans(db: Path) -> list[tuple[int, int]]:
    with Store.open(db, read_only=True) as store:
        return [(w.start_time, w.end_time) for w in store.windows(state="verified")]


def fingerprint(db: Path) -> str | None:
    """A digest of what a backfill stored: tx_ids, windows and meta (None: no database)."""
    if not db.exists():
        return None
    with Store.open(db, read_only=True) as store:
        con = store._con
        parts = [
            con.execute(
                "SELECT string_agg(tx_id, ',' ORDER BY tx_id) FROM transactions"
            ).fetchone(),
            con.execute("SELECT * FROM windows ORDER BY start_time").fetchall(),
            con.execute("SELECT * FROM meta ORDER BY key").fetchall(),
        ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def file_digest(path: Path) -> str | None:
    """The bytes of a file (None when it does not exist)."""
    with contextlib.suppress(FileNotFoundError):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return None


def tree_modes(root: Path) -> dict[str, int]:
    """Permission bits of `root` and everything below it."""
    modes = {str(root): root.stat().st_mode & 0o777}
    for path in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            modes[str(path)] = path.lstat().st_mode & 0o777
    return modes


def processes_mentioning(needle: str) -> list[str]:
    """`/proc/PID/cmdline` of every process whose argv contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle in argv:
                found.append(f"{entry.name}: {argv}")
    return found


def limit_file_size(limit: int) -> Callable[[], None]:
    """A `preexec_fn`: the child may not grow any file past `limit` bytes (writes fail, EFBIG)."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[None]:
    """Make `path` refuse new entries, even for root: chattr +i as root, chmod a-w otherwise."""
    if os.geteuid() == 0:
        try:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        except FileNotFoundError:
            done = subprocess.CompletedProcess([], 1, "", "chattr is not installed")
        if done.returncode != 0:
            import pytest

            pytest.skip(f"cannot make {path} read-only as root: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        mode = path.stat().st_mode & 0o777
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
