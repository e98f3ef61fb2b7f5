"""Logging set-up for the entry points, and reading the log back (`stxbf logs`).

Library modules only call `logging.getLogger(__name__)`; handlers are configured here, once, by the
command that runs. The file is appended to and rotated, never truncated on restart, and is readable
by the user only. A redacting filter masks the API key should any message ever carry it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5


class RedactSecrets(logging.Filter):
    """Replace each secret with `***` in the formatted message, as a defence in depth."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            if any(secret in message for secret in self._secrets):
                for secret in self._secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def configure_logging(
    log_path: Path | None,
    *,
    level: str = "INFO",
    console: logging.Handler | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Attach the rotating file handler (and a console handler, if given) to the `stxbf` logger."""
    logger = logging.getLogger("stxbf")
    logger.setLevel(level.upper())
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    redact = RedactSecrets(secrets)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_path, mode="a", maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
        os.chmod(log_path, 0o600)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        handler.addFilter(redact)
        logger.addHandler(handler)
    if console is not None:
        console.addFilter(redact)
        logger.addHandler(console)
    logger.propagate = False


# -- reading the log back (`stxbf logs`, the monitor) ------------------------------------------

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}
_LEVEL_RE = re.compile(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")


def line_level(line: str) -> str | None:
    """Return the level of a record's first line, or None for a continuation line (a traceback)."""
    match = _LEVEL_RE.match(line)
    return match.group(1) if match else None


def _records(lines: Iterable[str]) -> list[list[str]]:
    """Group lines into records, so that a record's continuation lines (tracebacks) stay with it."""
    records: list[list[str]] = []
    for line in lines:
        if line_level(line) is None and records:
            records[-1].append(line)
        else:
            records.append([line])
    return records


def _at_least(level: str | None) -> Callable[[str | None], bool]:
    if level is None:
        return lambda _found: True
    wanted = level.upper()
    if wanted not in LEVELS:
        raise ValueError(f"unknown level {level!r}: choose one of {', '.join(LEVELS)}")
    floor = LEVELS.index(wanted)
    return lambda found: found is not None and LEVELS.index(found) >= floor


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def tail(path: Path, lines: int = 50, *, level: str | None = None) -> list[str]:
    """Return the last `lines` records at `level` or above, from older rotated files if need be."""
    keep = _at_least(level)
    picked: list[list[str]] = []
    for candidate in [path, *(Path(f"{path}.{i}") for i in range(1, BACKUP_COUNT + 1))]:
        if not candidate.exists():
            break
        records = [r for r in _records(_read_lines(candidate)) if keep(line_level(r[0]))]
        picked = records + picked
        if len(picked) >= lines:
            break
    chosen = picked[-lines:] if lines > 0 else []
    return [line for record in chosen for line in record]


def _rotation_chain(path: Path) -> list[tuple[Path, os.stat_result]]:
    """List the log's files oldest first (`path.5` … `path.1`, then `path`), if they exist."""
    chain: list[tuple[Path, os.stat_result]] = []
    for candidate in [*(Path(f"{path}.{i}") for i in range(BACKUP_COUNT, 0, -1)), path]:
        try:
            chain.append((candidate, candidate.stat()))
        except OSError:
            continue
    return chain


def _open_after(path: Path, done: os.stat_result | None) -> TextIO | None:
    """Open the log file written after the one `done` describes (None: `path` itself).

    The file is found by its inode in the rotation chain. If that file has left the chain (rotated
    past the last backup, or deleted), the next is the oldest file last written after it. It returns
    None when there is nothing to open yet, or when the chain moved between the listing and the
    open, so that the caller polls again.
    """
    if done is None:
        target, expected = path, None
    else:
        chain = _rotation_chain(path)
        inodes = [stat.st_ino for _, stat in chain]
        if done.st_ino in inodes:
            later = chain[inodes.index(done.st_ino) + 1 :]
        else:
            later = [(p, stat) for p, stat in chain if stat.st_mtime_ns >= done.st_mtime_ns]
        if not later:
            return None
        target, expected = later[0][0], later[0][1].st_ino
    try:
        handle = target.open("r", encoding="utf-8", errors="replace")
    except OSError:
        return None
    if expected is not None and os.fstat(handle.fileno()).st_ino != expected:
        handle.close()
        return None
    return handle


def follow(
    path: Path,
    *,
    level: str | None = None,
    offset: int | None = None,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield lines appended to `path` after byte `offset` (None: from the start), across rotation.

    Rotation renames the file away (`path` → `path.1` → `path.2` …) and starts a new one. Once
    the open handle is drained and `path` names another inode, the reader goes on with the file
    written after its own (`_open_after`) from its start: a reader that slept through several
    rotations reads each rotated file in order instead of skipping to the newest. A file that
    shrank (truncated in place) is read again from its start. `sleep` waits between polls.
    """
    keep = _at_least(level)
    handle: TextIO | None = None
    done: os.stat_result | None = None  # the file just drained, when rotation moved it away
    keeping = True
    pending = ""
    try:
        while not stop():
            if handle is None:
                handle = _open_after(path, done)
                if handle is None:
                    sleep(poll)
                    continue
                done = None
                if offset is not None:
                    size = os.fstat(handle.fileno()).st_size
                    handle.seek(offset if offset <= size else 0)
                    offset = None
            chunk = handle.readline()
            if chunk.endswith("\n"):
                text = (pending + chunk).rstrip("\n")
                pending = ""
                found = line_level(text)
                if found is not None:
                    keeping = keep(found)
                if keeping:
                    yield text
                continue
            pending += chunk  # a line still being written, or nothing new
            mine = os.fstat(handle.fileno())
            try:
                current = path.stat()
            except OSError:
                current = None  # between a rename and the new file: poll again
            rotated = current is not None and current.st_ino != mine.st_ino
            if rotated or (current is not None and current.st_size < handle.tell()):
                if pending and keeping:
                    yield pending  # the old file's unterminated last line
                pending = ""
                handle.close()
                handle = None
                done = mine if rotated else None  # a truncated file is read again from its start
                continue
            sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def log_size(path: Path) -> int:
    """Return the log's current size, so that `follow` can start where a printed tail ended."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
