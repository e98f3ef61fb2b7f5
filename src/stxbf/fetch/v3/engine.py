"""The v3 engine is a `WindowEngine` over a `V3Source`. It cuts windows newest first, keeps a
few open at once, and has each fetched by the source's cursor walks, so the runner drives v3
exactly as it drives the v1 engine."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stxbf.codes import WindowState
from stxbf.fetch.v3.source import V3Source
from stxbf.fetch.windows import (
    INITIAL_SPAN,
    CompletedWindow,
    PassResult,
    WindowEngine,
    WindowPass,
)


class V3Engine(WindowEngine):
    """Fetches the windows of a pass from a `V3Source`, several at once.

    Windows are cut from `gaps` newest first, at `head_start` (the head window is `open`) and at
    a span that adapts to hold about `target_window_rows` (with None, the span stays
    `initial_span`). `windows_in_flight` of them are open at once, more when the in-flight limit
    needs them: each is walked by `walks_per_window` cursors, and the next is prepared while the
    current ones walk. Each completed window goes to `on_window` in completion order (newest
    first among those that finish together). An `incomplete` window is counted but not handed
    on: it has no rows, and committing it would empty its range.
    """

    def __init__(
        self,
        source: V3Source,
        *,
        on_window: Callable[[CompletedWindow], Awaitable[None]],
        initial_span: int = INITIAL_SPAN,
        target_window_rows: int | None = 8000,
        windows_in_flight: int = 4,
    ) -> None:
        super().__init__(
            on_window=on_window, initial_span=initial_span, target_window_rows=target_window_rows
        )
        self.source = source
        self.windows_in_flight = max(1, windows_in_flight)

    @property
    def in_flight(self) -> int:
        return self.source.requests.in_flight

    def learn_density(self, window: CompletedWindow) -> None:
        """Size the next windows from this one's density (an open window's density is not
        final)."""
        if window.state != WindowState.OPEN:
            self.learn_span(window.end - window.start + 1, window.total)


@dataclass(eq=False)
class _V3Pass(WindowPass[V3Engine]):
    """Holds one pass. `run` loops over `fill` (which opens windows while the source has slots
    to spare) and `receive` (which hands each finished window to `take`)."""

    # in the order the windows were opened (newest first): a dict keeps it, a set would not
    tasks: dict[asyncio.Future[CompletedWindow], None] = field(default_factory=dict, init=False)
    settling: set[asyncio.Future[CompletedWindow]] = field(default_factory=set, init=False)

    async def run(self) -> PassResult:
        async with self.watching(self.tasks) as stop_waiter:
            while not self.engine.stopping:
                await self.fill()
                if not self.tasks:
                    break
                await self.receive(stop_waiter)
        return self.conclude(unfinished=bool(self.pending or self.tasks))

    def wants_another(self) -> bool:
        """Tell whether to open another window. The next window reads its burn blocks while
        this one's walks still run (one window prepares at a time), so a window's walks, which
        end together, are followed at once by the next one's."""
        source = self.engine.source
        limit = source.requests.inflight.limit()  # requests in flight: walks, one page each
        walks = source.walks_per_window()
        windows = max(self.engine.windows_in_flight, math.ceil(limit / walks) + 1)
        return len(self.tasks) < windows and (
            not self.tasks
            or (source.preparing == 0 and source.active_walks < max(2 * walks, limit))
        )

    async def fill(self) -> None:
        """Open windows while `wants_another` says so and the budget allows it."""
        while self.wants_another():
            if not self.open_next():
                return
            await asyncio.sleep(0)  # let it start preparing before the next check

    def open_next(self) -> bool:
        """Start fetching the next window, unless the budget is spent or nothing is left."""
        if not self.pending or self.result.pages >= self.page_budget or self.engine.stopping:
            return False
        start, end, is_head = self.cut_window(self.engine.span)
        settles = self.settles(end, is_head=is_head)
        task = asyncio.ensure_future(
            self.engine.source.window(start, end, is_head=is_head or settles)
        )
        self.tasks[task] = None
        if settles:
            self.settling.add(task)
        return True

    async def receive(self, stop_waiter: asyncio.Future[Any]) -> None:
        """Wait for a window to finish, a preparation or walk to end, or a stop."""
        source = self.engine.source
        source.progress.clear()
        progress = asyncio.ensure_future(source.progress.wait())
        done, _ = await asyncio.wait(
            [*self.tasks, stop_waiter, progress], return_when=asyncio.FIRST_COMPLETED
        )
        progress.cancel()
        # windows that finished together are handed on newest first, as they were opened: the
        # set `done` iterates in an order that differs between Pythons (3.13 put older first)
        for finished in [task for task in self.tasks if task in done]:
            del self.tasks[finished]
            # a fatal FetchError propagates from here
            await self.take(finished.result(), settling=finished in self.settling)

    async def take(self, window: CompletedWindow, *, settling: bool) -> None:
        """Count a finished window, and hand it on unless it is incomplete. An incomplete
        window has nothing to commit: its (empty) rows would replace what the range holds, so
        the range stays a gap and the next run fetches it again."""
        self.result.pages += window.pages
        self.result.count(window.state, settling=settling)
        if window.state == WindowState.INCOMPLETE:
            return
        self.engine.learn_density(window)
        await self.engine.on_window(window)


V3Engine.pass_type = _V3Pass
