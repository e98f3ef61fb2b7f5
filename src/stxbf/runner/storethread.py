"""`StoreThread` holds the open store and runs every call to it on one thread of its own.

DuckDB's work runs on that thread, so that a commit never stalls the requests in flight on the
event loop. Every part of the run (the lifecycle, the writer, the verifier, the figures) reaches
the store through `StoreThread.call`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from stxbf.errors import DatabaseBusy
from stxbf.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    """Runs calls on the store on its one thread: `await db.call(Store.commit_window, ...)`."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self._executor = executor

    @classmethod
    async def open(cls, path: Path) -> StoreThread:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stxbf-db")
        try:
            store = await asyncio.get_running_loop().run_in_executor(executor, open_store, path)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(store, executor)

    async def call(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: fn(self.store, *args, **kwargs)
        )

    async def close(self, *, checkpoint: bool) -> None:
        """Close the file and stop the thread.

        `checkpoint=False` leaves the file exactly as it was, when nothing was written or it is
        damaged.
        """

        def close(store: Store) -> None:
            if checkpoint:
                store.checkpoint()
            store.close()

        try:
            await self.call(close)
        finally:
            self._executor.shutdown(wait=True)


def open_store(path: Path, patience: float = 5.0) -> Store:
    """Open the store for writing, waiting up to `patience` seconds while a reader (`status`
    with no run alive) holds the file for a moment."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return Store.open(path)
        except DatabaseBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
