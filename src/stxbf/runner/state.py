"""What a run knows of itself, shared by its parts: the plan, the coverage, the figures, the stop.

The lifecycle (`core`), the database writer (`commits`), the verifier and the snapshot publisher
all read and update one `RunState`; a stop request reaches whichever engine is at work through
the one `StopSignal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from stxbf.codes import ExitCode, Phase
from stxbf.errors import QuotaExhausted
from stxbf.models import BURN_TIME_INDEX, Row
from stxbf.runner.coverage import Coverage
from stxbf.runner.plan import RangePlan
from stxbf.runner.storethread import StoreThread
from stxbf.store import Store, StoreSummary

log = logging.getLogger(__name__)


@dataclass
class StoreFigures:
    """Counts what the database holds: read exactly from it now and then, and counted up from
    the commits in between."""

    transactions: int = 0
    wallets: int | None = None
    earliest: int | None = None
    latest: int | None = None
    db_bytes: int = 0
    window_sources: dict[str, int] = field(default_factory=dict)  # windows by route

    def take(self, summary: StoreSummary, *, wallets: bool) -> None:
        self.transactions = summary.transactions
        if wallets:
            self.wallets = summary.wallets
        self.earliest, self.latest = summary.earliest_tx_time, summary.latest_tx_time
        self.db_bytes = summary.db_bytes

    async def refresh(self, db: StoreThread, *, wallets: bool, save: bool = False) -> None:
        """Read the exact figures; with `save`, keep them for an idle `status`/`health` to read."""
        summary = await db.call(
            Store.save_summary if save else lambda store: store.summary(wallets=wallets)
        )
        self.take(summary, wallets=wallets)
        self.window_sources = await db.call(Store.window_sources)

    def count(self, rows: list[Row]) -> None:
        """Count rows just committed; the next exact read corrects a window fetched again."""
        self.transactions += len(rows)
        if rows:
            times = [row[BURN_TIME_INDEX] for row in rows]
            low, high = min(times), max(times)
            self.earliest = low if self.earliest is None else min(self.earliest, low)
            self.latest = high if self.latest is None else max(self.latest, high)


@dataclass
class RunState:
    """Holds what the run knows of itself: the plan, the coverage, the figures, the phase."""

    plan: RangePlan
    coverage: Coverage = field(default_factory=Coverage)
    figures: StoreFigures = field(default_factory=StoreFigures)
    phase: Phase = Phase.STARTING
    iteration: int = 0
    windows_verified: int = 0  # final windows committed by this process
    windows_refetched: int = 0  # windows fetched again because the API's answer changed
    last_commit_at: float | None = None
    quota: QuotaExhausted | None = None  # the quota that ended the run, if one did
    exit_code: ExitCode | None = None


class Stoppable(Protocol):
    def stop(self) -> None: ...


class StopSignal:
    """Carries a stop request from a signal handler to whichever engine is at work.

    It is set once. Before any engine runs, the request cancels the run's task; an engine that
    starts after it (`watching`) is stopped as it starts.
    """

    def __init__(self) -> None:
        self.requested = False
        self.task: asyncio.Task[Any] | None = None  # cancelled when no engine is at work
        self._engines: list[Stoppable] = []

    def request(self, reason: str) -> None:
        """Stop every engine at work, or cancel the task; safe to call from a signal handler."""
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
        """Mark `engine` as at work inside this block, so that a stop request stops it."""
        if self.requested:
            engine.stop()
        self._engines.append(engine)
        try:
            yield
        finally:
            self._engines.remove(engine)
