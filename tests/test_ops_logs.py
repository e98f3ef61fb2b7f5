"""Reading the log back: tail by level (tracebacks stay with their record), follow rotation."""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time
from pathlib import Path

import pytest

from stxbf.ops.logs import LOG_FORMAT, RedactSecrets, configure_logging, follow, line_level, tail
from tests.helpers import retry_until

LINES = [
    "2026-01-01T00:00:00+0000 INFO    stxbf.runner: started",
    "2026-01-01T00:00:01+0000 WARNING stxbf.pacer: 429: backing off 30 s",
    "2026-01-01T00:00:02+0000 ERROR   stxbf.runner: window failed",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "2026-01-01T00:00:03+0000 DEBUG   stxbf.engine: page 7",
    "2026-01-01T00:00:04+0000 INFO    stxbf.runner: window committed",
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "stxbf.log"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_line_level() -> None:
    assert [line_level(line) for line in LINES[:4]] == ["INFO", "WARNING", "ERROR", None]


def test_tail_counts_records_not_lines(log_file: Path) -> None:
    assert tail(log_file, 2) == LINES[-2:]
    assert tail(log_file, 3) == LINES[2:]  # the traceback comes with its record


@pytest.mark.parametrize(
    ("level", "expected"),
    [("WARNING", LINES[1:5]), ("error", LINES[2:5]), ("INFO", [*LINES[:5], LINES[6]])],
    ids=["warning", "error-lowercase", "info-drops-debug"],
)
def test_tail_filters_by_level(log_file: Path, level: str, expected: list[str]) -> None:
    assert tail(log_file, 50, level=level) == expected


def test_tail_reaches_into_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "stxbf.log"
    Path(f"{path}.1").write_text("\n".join(LINES[:2]) + "\n")
    path.write_text(LINES[-1] + "\n")
    assert tail(path, 3) == [*LINES[:2], LINES[-1]]


def test_follow_continues_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "stxbf.log"
    logger = logging.getLogger("test.follow")
    logger.propagate = False
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=300, backupCount=3)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("before following")
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for line in follow(path, offset=path.stat().st_size, poll=0.02, stop=done.is_set):
            seen.append(line)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.1)
        for i in range(20):  # ~60 bytes each: rotates several times
            logger.info("message %02d", i)
            time.sleep(0.02)
        retry_until(lambda: len(seen) >= 20, what="the follower to read all 20 lines")
    finally:
        done.set()
        thread.join(timeout=5)
        logger.removeHandler(handler)
        handler.close()
    assert Path(f"{path}.1").exists(), "the log rotated"
    assert [line.rsplit(" ", 1)[1] for line in seen] == [f"{i:02d}" for i in range(20)]


def test_configure_logging_redacts_the_key(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "stxbf.log"
    configure_logging(path, secrets=["sekrit-123"])
    try:
        logging.getLogger("stxbf.test").warning("header was %s", "sekrit-123")
    finally:
        configure_logging(None)
    text = path.read_text()
    assert "sekrit-123" not in text and "***" in text
    assert path.stat().st_mode & 0o777 == 0o600
    assert isinstance(RedactSecrets([]), logging.Filter)
