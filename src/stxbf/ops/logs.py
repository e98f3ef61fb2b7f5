"""Logging set-up for the entry points, and reading the log back (`stxbf logs`).

Library modules only call `logging.getLogger(__name__)`; handlers are configured here, once, by the
command that runs. The file is appended to and rotated, never truncated on restart, and is readable
by the user only. A redacting filter masks the API key should any message ever carry it.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Iterable
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
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
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
