"""Stopping a run from a signal handler: every engine at work stops scheduling, or, before any
engine runs, the run's task is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...


class StopSignal:
    """Set once; engines started after it are stopped as they start (`watching`)."""

    def __init__(self) -> None:
        self.requested = False
        self.task: asyncio.Task[Any] | None = None  # cancelled when no engine is at work
        self._engines: list[Stoppable] = []

    def request(self, reason: str) -> None:
        """Signal-safe: called from the event loop's signal handler."""
        if self.requested:
            return
        self.requested = True
        log.warning("stopping (%s): committing completed windows", reason)
        if self._engines:
            for engine in self._engines:
                engine.stop()
        elif self.task is not None:
            self.task.cancel()

    @contextlib.contextmanager
    def watching(self, engine: Stoppable) -> Iterator[None]:
        """`engine` is at work inside this block: a stop request stops it."""
        if self.requested:
            engine.stop()
        self._engines.append(engine)
        try:
            yield
        finally:
            self._engines.remove(engine)
