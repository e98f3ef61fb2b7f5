"""This module commits completed windows, rows and checkpoint in one transaction each, in the
order they complete.

The engine hands each window over through a queue of two, so at most two completed windows wait
for the database while the next ones are fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from stxbf.codes import COVERING_STATES, WindowState
from stxbf.errors import StoreError, StxbfError
from stxbf.fetch.windows import CompletedWindow
from stxbf.runner.coverage import Coverage, Span
from stxbf.runner.request_path import OnWindow
from stxbf.runner.state import RunState
from stxbf.runner.storethread import StoreThread
from stxbf.store import Store, WindowRecord
from stxbf.words import plural, utc_iso

log = logging.getLogger(__name__)

WALLETS_INTERVAL = 30.0  # the exact figures (distinct senders too) are read this often


def window_record(window: CompletedWindow, source: str) -> WindowRecord:
    return WindowRecord(
        window.start,
        window.end,
        window.total,
        len(window.rows),
        window.state,
        window.pages,
        source=source,
    )


class Committer:
    """Writes a pass's completed windows to the database while the next ones are fetched.

    The engine hands it windows through `on_window(source)`, and `drain()` waits until every one
    handed over is committed.
    """

    def __init__(self, db: StoreThread, state: RunState, clock: Callable[[], float]) -> None:
        self.db = db
        self.state = state
        self.clock = clock
        self._queue: asyncio.Queue[tuple[CompletedWindow, str] | None] = asyncio.Queue(maxsize=2)
        self._task = asyncio.create_task(self._commit_loop())

    def on_window(self, source: str) -> OnWindow:
        async def on_window(window: CompletedWindow) -> None:
            # Wait for room in the queue, unless the committer dies meanwhile (a full disk):
            # then its error ends the pass instead of a wait that never ends.
            put = asyncio.ensure_future(self._queue.put((window, source)))
            await asyncio.wait([put, self._task], return_when=asyncio.FIRST_COMPLETED)
            if self._task.done():
                put.cancel()
                self._task.result()
                raise StoreError("the database writer stopped")  # pragma: no cover

        return on_window

    async def drain(self) -> None:
        """Wait until every queued window is committed, or re-raise the error the writer died of."""
        await _drain(self._queue, self._task)

    async def close(self) -> None:
        if not self._task.done():
            await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError, StxbfError):
            await self._task

    async def _commit_loop(self) -> None:
        last_wallets = 0.0
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                window, source = item
                stored = await self.db.call(
                    Store.commit_window, window_record(window, source), window.rows
                )
                self._note(window, stored, source)
                self.state.figures.window_sources = await self.db.call(Store.window_sources)
                if self.clock() - last_wallets > WALLETS_INTERVAL:
                    last_wallets = self.clock()
                    await self.state.figures.refresh(self.db, wallets=True)
            finally:
                self._queue.task_done()

    def _note(self, window: CompletedWindow, stored: int, source: str) -> None:
        state = self.state
        state.last_commit_at = self.clock()
        final = window.state if stored == window.total else WindowState.INCOMPLETE
        kept = final in COVERING_STATES
        state.coverage.commit(
            window.start, window.end, Span(window.start, window.end, window.total) if kept else None
        )
        # final windows only: an `open` one (the head, the settle period) is fetched again
        state.windows_verified += final == WindowState.VERIFIED
        state.figures.count(window.rows)
        log.info(
            "window %s .. %s %s: %s in %s (%s)",
            utc_iso(window.start),
            utc_iso(window.end),
            final,
            plural(stored, "transaction"),
            plural(window.pages, "page"),
            source,
        )


async def _drain(queue: asyncio.Queue[Any], consumer: asyncio.Task[None]) -> None:
    joined = asyncio.ensure_future(queue.join())
    await asyncio.wait([joined, consumer], return_when=asyncio.FIRST_COMPLETED)
    joined.cancel()
    if consumer.done():
        consumer.result()


async def load_coverage(db: StoreThread, state: RunState) -> None:
    """Load the windows earlier runs verified, and the chain's start they found, into the state.

    Their `open` windows are reopened: they are fetched again, and their rows count as stored
    until then (see `Coverage`).
    """
    records = await db.call(Store.windows)
    reopened = [Span(r.start_time, r.end_time) for r in records if r.state == WindowState.OPEN]
    state.coverage = Coverage(
        (
            Span(r.start_time, r.end_time, r.api_total)
            for r in records
            if r.state == WindowState.VERIFIED
        ),
        reopened=reopened,
    )
    if reopened:
        log.info(
            "reopened %s of the last run's head and %g h settle period (%s .. %s) to "
            "fetch again; their stored rows count until each is replaced",
            plural(len(reopened), "window"),
            state.plan.settle_hours,
            utc_iso(reopened[0].start),
            utc_iso(reopened[-1].end),
        )
    chain_start = await db.call(Store.get_meta, "chain_start")
    if chain_start:
        state.plan.chain_start = int(chain_start)


async def record_before_chain_start(db: StoreThread, state: RunState, source: str) -> None:
    """Record the stretch before the chain's first transaction as verified: it is provably empty."""
    before = state.plan.before_chain_start()
    if before is None or not state.coverage.gaps(*before):
        return
    start, end = before
    record = WindowRecord(start, end, 0, 0, WindowState.VERIFIED, 0, source=source)
    await db.call(Store.commit_window, record, [])
    state.coverage.add(Span(start, end, 0))


async def forget_duplicated(db: StoreThread, state: RunState) -> bool:
    """Drop the checkpoints of windows that share a tx_id with another, and tell whether any did.

    The next iteration fetches those windows again (see `Store.duplicated_windows`).
    """
    duplicated = await db.call(Store.duplicated_windows)
    if not duplicated:
        return False
    log.warning(
        "%s transactions also stored in another window (moved by the API since they "
        "were fetched): fetching them again",
        "1 window holds" if len(duplicated) == 1 else f"{len(duplicated):,} windows hold",
    )
    await db.call(Store.forget_windows, duplicated)
    state.coverage.forget(duplicated)
    return True
