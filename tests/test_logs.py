"""Reading the log back: tail by level (tracebacks stay with their record), follow rotation."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import pytest

from stxbf.logs import LOG_FORMAT, RedactSecrets, configure_logging, follow, line_level, tail

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


@pytest.mark.parametrize(
    "bursts",
    [[4, 4, 4, 4, 4], [12, 8], [9, 0, 11], [1] * 20],
    ids=["one-rotation-a-time", "three-rotations-unseen", "a-quiet-poll-between", "line-by-line"],
)
def test_follow_reads_every_rotated_file_in_order(tmp_path: Path, bursts: list[int]) -> None:
    """Driven step by step: each poll of the follower writes the next burst of messages, so a
    burst that rotates the log twice is exactly a reader that slept through two rotations."""
    path = tmp_path / "stxbf.log"
    logger = logging.getLogger(f"test.follow.{len(bursts)}")
    logger.propagate = False
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=300, backupCount=3)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))  # ~65 bytes a line: 4 lines a file
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("before following")
    written = iter(range(sum(bursts)))
    script = list(bursts)
    finished: list[bool] = []

    def write_next_burst(_poll: float) -> None:
        if not script:
            finished.append(True)  # everything written was read: the follower polls again
            return
        for _ in range(script.pop(0)):
            logger.info("message %02d", next(written))

    try:
        seen = list(
            follow(
                path,
                offset=path.stat().st_size,
                stop=lambda: bool(finished),
                sleep=write_next_burst,
            )
        )
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert Path(f"{path}.3").exists(), "the log rotated past its backups"
    assert [line.rsplit(" ", 1)[1] for line in seen] == [f"{i:02d}" for i in range(sum(bursts))]


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


def test_follow_past_the_last_backup_goes_on_with_the_oldest_left(tmp_path: Path) -> None:
    """A burst that rotates the reader's file out of the chain (deleted past `backupCount`):
    what was deleted unread is lost, but what is left is read in order, none twice."""
    path = tmp_path / "stxbf.log"
    logger = logging.getLogger("test.follow.past")
    logger.propagate = False
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=300, backupCount=2)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("before following")
    script = [list(range(3)), list(range(3, 40))]
    finished: list[bool] = []

    def write_next_burst(_poll: float) -> None:
        if not script:
            finished.append(True)
            return
        for number in script.pop(0):
            logger.info("message %02d", number)

    try:
        seen = [
            int(line.rsplit(" ", 1)[1])
            for line in follow(path, offset=0, stop=lambda: bool(finished), sleep=write_next_burst)
            if "message" in line
        ]
    finally:
        logger.removeHandler(handler)
        handler.close()
    kept = [
        int(line.rsplit(" ", 1)[1])
        for name in (f"{path}.2", f"{path}.1", str(path))
        for line in Path(name).read_text().splitlines()
    ]
    assert seen[:3] == [0, 1, 2]  # the reader's own file, read before the burst deleted it
    assert seen == sorted(set(seen)) and seen[-len(kept) :] == kept
