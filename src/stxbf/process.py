"""Whether a runner is alive, as the kernel (/proc, /proc/locks) and the runner's own files tell.

DuckDB lets no other process open a database that a runner is writing, so status and health must
decide whether a runner is alive without touching the lock or the database. They look at the
lock file's holder (from /proc/locks), the runner record and the progress snapshot's pid, and
check each pid against the process's start time, because a pid may have been recycled.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stxbf.codes import TERMINAL_PHASES, SupervisorState
from stxbf.paths import DataPaths, SupervisorRecord, read_runner_record, read_supervisor_record
from stxbf.snapshot import ProgressSnapshot

# -- /proc/<pid>/stat, parsed here only ---------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    """Hold the fields of /proc/<pid>/stat that stxbf uses (see proc(5))."""

    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    start_ticks: int  # clock ticks after boot


def proc_stat(pid: int) -> ProcStat | None:
    """Read /proc/<pid>/stat, or return None where there is no /proc or no such process.

    The command name (field 2) may hold spaces and parentheses, so the fields are counted from the
    last ")".
    """
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return ProcStat(
            state=after_name[0], ppid=int(after_name[1]), start_ticks=int(after_name[19])
        )
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    return None


def pid_alive(pid: int) -> bool:
    """Tell whether `pid` is a live process; a zombie counts as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    stat = proc_stat(pid)
    return stat is None or stat.state not in ("Z", "X")


def process_start_time(pid: int) -> float | None:
    """Return when `pid` started (unix time) where /proc tells, to guard against a recycled pid."""
    stat, boot = proc_stat(pid), _boot_time()
    if stat is None or boot is None:
        return None
    return boot + stat.start_ticks / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int | None:
    """Return the parent of `pid`, from /proc or else from `ps` (macOS)."""
    stat = proc_stat(pid)
    if stat is not None:
        return stat.ppid
    try:
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout
        return int(out.strip())
    except (OSError, ValueError):
        return None


def is_descendant(pid: int, ancestor: int) -> bool:
    """Tell whether `ancestor` is `pid` or one of its parents, looking 64 levels up at most."""
    current: int | None = pid
    for _ in range(64):
        if current is None or current <= 1:
            return False
        if current == ancestor:
            return True
        current = parent_pid(current)
    return False


def lock_holder(lock_path: Path) -> int | bool | None:
    """Return the pid holding the flock on `lock_path`: False if nobody does, None if unknown.

    It reads /proc/locks instead of trying to acquire the lock: a probe that takes the lock even for
    a microsecond could make a runner that starts at that moment fail with "lock held".
    """
    try:
        st = lock_path.stat()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4234 fe:00:2148928 0 EOF" (blocked waiters have "->")
        if len(parts) >= 6 and parts[1] != "->" and parts[5] == wanted:
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return False


# -- putting it together ------------------------------------------------------------------------


@dataclass
class RunnerProcess:
    """Hold what we know about the runner process, whichever way we found out.

    Its liveness comes from the kernel and the runner record; its phase, heartbeat and exit code
    come from its snapshot.
    """

    alive: bool = False
    pid: int | None = None
    found_by: str = "none"  # lock | pid-file | progress | none
    started_at: float | None = None
    host: str | None = None
    phase: str | None = None
    heartbeat_age: float | None = None
    exit_code: int | None = None


def _pid_matches(pid: int, started_at: float | None) -> bool:
    if not pid_alive(pid):
        return False
    if started_at:
        began = process_start_time(pid)
        if began is not None and began > started_at + 2.0:
            return False  # the pid was recycled by a newer process
    return True


def detect_runner(paths: DataPaths, *, snap: ProgressSnapshot | None, now: float) -> RunnerProcess:
    """Decide whether a runner is alive without touching the lock or the database."""
    record = read_runner_record(paths.runner_record)
    result = RunnerProcess()
    if snap is not None:
        result.phase = snap.phase
        result.heartbeat_age = max(0.0, now - snap.updated_at)
        result.exit_code = snap.exit_code
    holder = lock_holder(paths.lock)
    if isinstance(holder, int) and not isinstance(holder, bool):
        result.alive, result.pid, result.found_by = True, holder, "lock"
    elif record is not None and record.host and record.host != socket.gethostname():
        # A runner on another host (shared filesystem): only its heartbeat can tell.
        fresh = snap is not None and snap.phase not in TERMINAL_PHASES
        result.alive, result.pid, result.found_by = fresh, record.pid, "pid-file"
    elif record is not None and _pid_matches(record.pid, record.started_at):
        result.alive, result.pid, result.found_by = True, record.pid, "pid-file"
    elif (
        snap is not None
        and snap.phase not in TERMINAL_PHASES
        and _pid_matches(snap.pid, snap.started_at)
    ):
        result.alive, result.pid, result.found_by = True, snap.pid, "progress"
    if record is not None:
        result.pid = result.pid or record.pid
        result.started_at = record.started_at
        result.host = record.host or None
    if snap is not None and (result.pid in (None, snap.pid)):
        result.pid = snap.pid
        result.started_at = result.started_at or snap.started_at
    return result


def active_supervisor(paths: DataPaths) -> SupervisorRecord | None:
    """Return the record of a live supervisor (waiting to restart, or running the run), or None."""
    record = read_supervisor_record(paths.supervisor_record)
    if record is None or not pid_alive(record.pid):
        return None
    return record


def describe_wait(record: SupervisorRecord, now: float) -> str:
    """Say in one line what failed, since when, and when the next try is (health, tmux status)."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.failing_since or now))
    if record.state != SupervisorState.WAITING:
        return f"failing since {since}; restart {record.restarts} is starting"
    next_try = max(0.0, (record.restart_at or now) - now)
    return f"failing since {since} ({record.reason}); restart {record.restarts} in {next_try:.0f} s"
