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

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5


class RedactSecrets(logging.Filter):
    """Replace each secret with `***` in the formatted message (defence in depth)."""

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
    """Attach the rotating file handler (and an optional console handler) to the `stxbf` logger."""
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
    """The level of a record's first line; None for a continuation line (a traceback)."""
    match = _LEVEL_RE.match(line)
    return match.group(1) if match else None


def _records(lines: Iterable[str]) -> list[list[str]]:
    """Group lines into records: a record's continuation lines (tracebacks) stay with it."""
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
    """The last `lines` records at `level` or above (older rotated files fill in when needed)."""
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


def follow(
    path: Path,
    *,
    level: str | None = None,
    offset: int | None = None,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[str]:
    """Yield lines appended to `path` after byte `offset` (None: from the start), across rotation.

    Rotation renames the file away and starts a new one: once the old handle is drained and the
    path's inode has changed (or the file shrank), we continue at the start of the new file.
    """
    keep = _at_least(level)
    handle = None
    inode = None
    keeping = True
    pending = ""
    try:
        while not stop():
            if handle is None:
                try:
                    handle = path.open("r", encoding="utf-8", errors="replace")
                except OSError:
                    time.sleep(poll)
                    continue
                stat = os.fstat(handle.fileno())
                inode = stat.st_ino
                if offset is not None:
                    handle.seek(offset if offset <= stat.st_size else 0)
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
            try:
                current = path.stat()
            except OSError:
                current = None
            if current is None or current.st_ino != inode or current.st_size < handle.tell():
                if pending and keeping:
                    yield pending  # the old file's unterminated last line
                pending = ""
                handle.close()
                handle = None
                continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def log_size(path: Path) -> int:
    """The log's current size: follow from here after printing a tail."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
