"""The data directory's files, each named in one place, and the records kept beside the database.

Every file that a run leaves beside its database is named `<db>` plus a suffix, so two databases
in one data directory never share a lock or a progress file. `DataPaths` names them all and is
the one value that is passed around to say which backfill a command is about. The records (who
holds the lock, which tmux session runs the backfill, what its supervisor is doing) are read and
written only here, each by its own record type, so that the writer and its readers cannot drift
apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stxbf.errors import ConfigError

LOCK_SUFFIX = ".lock"
PROGRESS_SUFFIX = ".progress.json"
RUNNER_SUFFIX = ".runner.json"
SESSION_SUFFIX = ".tmux.json"
SUPERVISOR_SUFFIX = ".supervisor.json"
SUMMARY_SUFFIX = ".summary.json"
DEFAULT_DB_NAME = "stxbf.duckdb"


@dataclass(frozen=True)
class DataPaths:
    """Name every file of one backfill: `home` holds the logs and hand-off files, `db` the rest."""

    home: Path
    db: Path

    @classmethod
    def of(cls, home: Path, db: Path | None = None) -> DataPaths:
        return cls(home=home, db=db if db is not None else home / DEFAULT_DB_NAME)

    def _beside_db(self, suffix: str) -> Path:
        return self.db.with_name(self.db.name + suffix)

    @property
    def lock(self) -> Path:
        return self._beside_db(LOCK_SUFFIX)

    @property
    def progress(self) -> Path:
        """Name the snapshot that the runner publishes about once a second (stxbf.snapshot)."""
        return self._beside_db(PROGRESS_SUFFIX)

    @property
    def runner_record(self) -> Path:
        """Name the record of who holds the lock (pid, start time, host, tmux pane)."""
        return self._beside_db(RUNNER_SUFFIX)

    @property
    def session_record(self) -> Path:
        """Name the record of the tmux server and session that run this backfill."""
        return self._beside_db(SESSION_SUFFIX)

    @property
    def supervisor_record(self) -> Path:
        """Name the record of what the tmux pane's supervisor is doing: running, or waiting."""
        return self._beside_db(SUPERVISOR_SUFFIX)

    @property
    def summary(self) -> Path:
        """Name the cache of the database's facts that the idle commands keep."""
        return self._beside_db(SUMMARY_SUFFIX)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "stxbf.log"

    @property
    def run_dir(self) -> Path:
        """Name the directory of short-lived hand-offs: a tmux runner's API key, how a run ended."""
        return self.home / "run"

    def run_ending(self, supervisor_pid: int) -> Path:
        """Name the file where the run of this supervisor writes how it ended (a `RunEnding`)."""
        return self.run_dir / f"outcome.{supervisor_pid}.json"


def prepare_home(home: Path) -> None:
    """Create the data directory (private), or say in one line why it cannot be used.

    `stxbf run` calls this before it writes anything, and `stxbf tmux start` calls it before any
    tmux server exists, so both refuse an unusable directory with the same usage error (exit 2).
    """
    if home.exists() and not home.is_dir():
        raise ConfigError(f"data directory {home} is a file, not a directory")
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"data directory {home} is not writable")


# -- the runner record -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerRecord:
    """Say which process holds the lock, so that status can tell a live runner from a stale file."""

    pid: int
    started_at: float
    host: str = ""
    tmux: str | None = None  # $TMUX of the runner: "socket_path,server_pid,session_id"
    tmux_pane: str | None = None  # $TMUX_PANE, e.g. "%3"


@dataclass(frozen=True)
class SessionRecord:
    """How to reach the tmux session of a backfill, and start it again, without retyping flags.

    `options` are the options the last `stxbf tmux start` was given on its command line (run
    options by their parameter names, and `inhibit` / `interval`), so a start with no flags
    repeats it; `stxbf tmux stop` keeps the record for that. The API key is never among them:
    `api_key_given` only says whether that start handed one to the runner.
    """

    socket_name: str | None
    session_name: str
    started_at: float
    options: dict[str, Any] = field(default_factory=dict)
    api_key_given: bool = False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically with a file that only this user can read.

    The data directory is created (private) on first use. The file is created 0600 whatever the
    umask, because `stxbf tmux start` writes the session record from the user's shell, whose
    umask (often 022) would otherwise let other users read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a file left by a crash would keep its old mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_runner_record(path: Path, record: RunnerRecord) -> None:
    _write_json(path, asdict(record))


def read_runner_record(path: Path) -> RunnerRecord | None:
    data = _read_json(path)
    if data is None:
        return None
    try:
        return RunnerRecord(
            pid=int(data["pid"]),
            started_at=float(data.get("started_at") or 0.0),
            host=str(data.get("host") or ""),
            tmux=str(data["tmux"]) if data.get("tmux") else None,
            tmux_pane=str(data["tmux_pane"]) if data.get("tmux_pane") else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def this_runner(host: str) -> RunnerRecord:
    """Make the record of this process; tmux tells a process its pane through the environment."""
    return RunnerRecord(
        pid=os.getpid(),
        started_at=time.time(),
        host=host,
        tmux=os.environ.get("TMUX") or None,
        tmux_pane=os.environ.get("TMUX_PANE") or None,
    )


def remove_record(path: Path) -> None:
    """Delete a record, if it is there: a record that outlived its process only misleads readers."""
    with contextlib.suppress(OSError):
        path.unlink()


@dataclass(frozen=True)
class SupervisorRecord:
    """Say what the tmux pane's supervisor is doing, so that health can report the outage."""

    pid: int
    state: str  # running | waiting
    restarts: int = 0
    failing_since: float | None = None  # when the current run of failed tries began
    restart_at: float | None = None  # while waiting: when the next try starts
    reason: str | None = None  # why the last try ended


def write_supervisor_record(path: Path, record: SupervisorRecord) -> None:
    _write_json(path, asdict(record))


def read_supervisor_record(path: Path) -> SupervisorRecord | None:
    data = _read_json(path)
    if data is None:
        return None
    known = {f.name for f in fields(SupervisorRecord)}
    try:
        return SupervisorRecord(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None


def write_session_record(path: Path, record: SessionRecord) -> None:
    _write_json(path, asdict(record))


def read_session_record(path: Path) -> SessionRecord | None:
    data = _read_json(path)
    if data is None:
        return None
    known = {f.name for f in fields(SessionRecord)}
    try:
        record = SessionRecord(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None
    if not isinstance(record.session_name, str) or not record.session_name:
        return None
    if not isinstance(record.options, dict):
        return replace(record, options={})
    return record


def file_key(db_path: Path) -> list[Any]:
    """Return a key that changes when the database or its WAL is written, replaced or damaged."""
    key: list[Any] = []
    for path in (db_path, Path(f"{db_path}.wal")):
        try:
            st = path.stat()
            key += [st.st_mtime_ns, st.st_size, st.st_ino]
        except OSError:
            key += [None]
    return key
