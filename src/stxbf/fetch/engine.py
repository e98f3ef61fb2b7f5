"""The v1 engine cuts a time range into windows, pages them all at once, and proves each one
complete.

A window is an inclusive `burn_block_time` range [start, end]. Its first page (offset 0) sizes it
with the API's `total`; all of its remaining offsets are then queued at once, so the shared pool of
requests stays full across windows and the rate limit stays saturated. Windows too large for
shallow offsets are split before they are paged. A window is finished only when the number of
distinct tx_ids gathered equals the API's total; a short page is asked again, and anything else
inconsistent (a shrinking total, duplicates across pages) restarts the window. Pages are ordered
by block height ascending, so transactions that arrive while a window is paged (the chain head)
land after the offsets already read instead of shifting them.

The time cursor is never trusted to be unique: since Nakamoto a whole tenure shares one
burn_block_time, which is why windows are bounded by time but verified by count.

`Engine` keeps what outlives a pass (the settings, the learned span, the stop flag); each
`run_pass` builds a `_Pass` that holds the pass's state, with one method per step above (open a
window, size or split it, queue its pages, send them, take in a page, verify, restart, finish),
so each step can be read, and tested, on its own. What the v3 engine does alike (cutting the
windows, the settle period, counting, the span) is `windows.py`'s.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stxbf.codes import WindowState
from stxbf.fetch.windows import (
    INITIAL_SPAN,
    CompletedWindow,
    PassResult,
    WindowEngine,
    WindowPass,
)
from stxbf.models import PAGE_LIMIT, Page, Row
from stxbf.words import utc_iso

log = logging.getLogger(__name__)
SPLIT_WAYS = 8  # pieces an oversized window is cut into at least: 8 round trips narrow 16M s


class PageFetcher(Protocol):
    """What the engine needs of `pages.PageSource`: one v1 page, however long it takes."""

    async def page(
        self,
        *,
        start_time: int | None,
        end_time: int | None,
        offset: int = 0,
        limit: int = PAGE_LIMIT,
    ) -> Page: ...


@dataclass(eq=False)
class _Window:
    """Holds one open window's state while its pages are asked for and taken in."""

    start: int
    end: int
    seq: int
    is_head: bool
    generation: int = 0
    total: int | None = None
    rows: dict[str, Row] = field(default_factory=dict)
    outstanding: set[int] = field(default_factory=set)
    scheduled_upto: int = 0
    short_retries: dict[int, int] = field(default_factory=dict)
    pages: int = 0
    attempts: int = 0
    suspect: str | None = None

    def reset(self) -> None:
        """Forget what was gathered, so the window is fetched again from its sizing page."""
        self.generation += 1
        self.total = None
        self.rows.clear()
        self.outstanding.clear()
        self.scheduled_upto = 0
        self.short_retries.clear()
        self.suspect = None


class Engine(WindowEngine):
    """Pages each window by offset, with up to `max_started()` pages started across windows.

    `max_started` is the source's `InFlight.started`, whose slots bound what is on the wire
    (`concurrency` when none is given). Each pass is a `_Pass`.
    """

    def __init__(
        self,
        source: PageFetcher,
        *,
        concurrency: int,
        on_window: Callable[[CompletedWindow], Awaitable[None]],
        page_limit: int = PAGE_LIMIT,
        max_window_rows: int = 5000,
        target_window_rows: int = 4000,
        initial_span: int = INITIAL_SPAN,
        max_window_attempts: int = 5,
        max_short_retries: int = 3,
        max_open_windows: int | None = None,
        max_started: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(
            on_window=on_window, initial_span=initial_span, target_window_rows=target_window_rows
        )
        self.source = source
        self.concurrency = concurrency
        self.page_limit = page_limit
        self.max_window_rows = max_window_rows
        self.max_window_attempts = max_window_attempts
        self.max_short_retries = max_short_retries
        self.max_started = max_started or (lambda: concurrency)
        self._max_open_windows = max_open_windows
        self._seq = itertools.count()
        self.in_flight = 0

    @property
    def max_open_windows(self) -> int:
        """Return how many windows may be open at once. Small windows hold few rows, and large
        ones fill the queue on their own, so this bounds memory while keeping enough windows
        open to feed every request slot."""
        return self._max_open_windows or self.max_started() + 4

    def next_seq(self) -> int:
        """Return the next window number. Windows are numbered across passes, and the lower
        number is paged first."""
        return next(self._seq)

    def learn_density(self, total: int, window: _Window) -> None:
        """Size the next windows from this one's density (the head's density is not
        typical)."""
        if not window.is_head:
            self.learn_span(window.end - window.start + 1, total)


def split_range(start: int, end: int, span: int) -> list[tuple[int, int]]:
    """Return an oversized window's range as it goes back on the stack, oldest piece first (the
    newest is cut next). It stays whole when the learned span already cuts it into `SPLIT_WAYS`
    pieces or more; otherwise it goes back in `SPLIT_WAYS` pieces, all sized in the next round
    trip.

    The rows of a window often share one burn time (since Nakamoto a tenure's do), so the
    density of a window says little of where in it they are: cut only by the density, a range
    narrows by the share of it the rows exceed the target by (1.5 for a tenure of 6,000), one
    round trip at a time. At the end of a pass nothing else is left to send meanwhile: at
    7,000/min with 300 ms of heavy-tailed latency the pacer idled ~2.5 s for it (1,500 ms: ~8 s).
    """
    width = end - start + 1
    piece = math.ceil(width / SPLIT_WAYS)
    if span <= piece:
        return [(start, end)]
    return [(lo, min(end, lo + piece - 1)) for lo in range(start, end + 1, piece)]


@dataclass(eq=False)
class _Pass(WindowPass[Engine]):
    """Holds one pass over a set of gaps: its state, and one method per step.

    `run` loops over `dispatch` (open windows, send their queued pages up to the concurrency)
    and `receive` (hand each answered page to `handle`). A window's pages wait in a heap ordered
    sizing pages first, then by window number and offset; an entry whose window has been
    restarted (another generation) or closed is stale and dropped when it comes up.
    """

    heap: list[tuple[bool, int, int, int, _Window]] = field(default_factory=list, init=False)
    tasks: dict[asyncio.Future[Page], tuple[_Window, int, int]] = field(
        default_factory=dict, init=False
    )
    open_windows: set[_Window] = field(default_factory=set, init=False)

    async def run(self) -> PassResult:
        engine = self.engine
        try:
            async with self.watching(self.tasks) as stop_waiter:
                while not engine.stopping:
                    self.dispatch()
                    engine.in_flight = len(self.tasks)
                    if not self.tasks:
                        break
                    await self.receive(stop_waiter)
        finally:
            engine.in_flight = 0
        return self.conclude(unfinished=bool(self.pending or self.open_windows))

    # -- opening and scheduling windows ---------------------------------------------------------

    def can_open(self) -> bool:
        """Tell whether another window may be opened: one is left, and neither the page budget
        nor the bound on open windows says no."""
        return (
            bool(self.pending)
            and self.result.pages < self.page_budget
            and len(self.open_windows) < self.engine.max_open_windows
        )

    def open_next(self) -> _Window | None:
        """Open the next window and queue its sizing page, unless the budget or memory bound
        says not to (or nothing is left)."""
        if not self.can_open():
            return None
        start, end, is_head = self.cut_window(self.engine.span)
        window = _Window(start, end, self.engine.next_seq(), is_head)
        self.open_windows.add(window)
        self.push(window, 0)
        return window

    def push(self, window: _Window, offset: int) -> None:
        """Queue one page of `window`. Sizing pages go first: each turns into a window of work."""
        window.outstanding.add(offset)
        heapq.heappush(self.heap, (offset > 0, window.seq, offset, window.generation, window))

    def schedule_to(self, window: _Window, total: int) -> None:
        """Queue every offset of `window` below `total` that is not queued yet."""
        limit = self.engine.page_limit
        for offset in range(window.scheduled_upto, total, limit):
            self.push(window, offset)
        window.scheduled_upto = max(window.scheduled_upto, math.ceil(total / limit) * limit)

    def is_current(self, window: _Window, generation: int) -> bool:
        """Tell whether a page is still wanted: one asked for before its window restarted or
        closed is not."""
        return generation == window.generation and window in self.open_windows

    # -- requests ---------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Start queued pages until `max_started` are out or nothing is queued."""
        engine = self.engine
        limit = engine.max_started()
        while len(self.tasks) < limit:
            # Open the next window before the queue runs dry, so its sizing page is back by
            # the time the current windows' last pages have gone out.
            while len(self.heap) < limit and self.open_next():
                pass
            if not self.heap:
                return
            _, _, offset, generation, window = heapq.heappop(self.heap)
            if not self.is_current(window, generation):
                continue
            task: asyncio.Future[Page] = asyncio.ensure_future(
                engine.source.page(
                    start_time=window.start,
                    end_time=window.end,
                    offset=offset,
                    limit=engine.page_limit,
                )
            )
            self.tasks[task] = (window, offset, generation)

    async def receive(self, stop_waiter: asyncio.Future[Any]) -> None:
        """Wait for at least one answer (or a stop) and handle every answered page."""
        waiting: list[asyncio.Future[Any]] = [*self.tasks, stop_waiter]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        # in the order the pages were asked for, not the set's (which differs between Pythons)
        for answered in [task for task in self.tasks if task in done]:
            window, offset, generation = self.tasks.pop(answered)
            page = answered.result()  # a fatal FetchError propagates from here
            if not self.is_current(window, generation):
                continue
            await self.handle(window, offset, page)

    # -- an answered page ------------------------------------------------------------------------

    async def handle(self, window: _Window, offset: int, page: Page) -> None:
        """Take in one page of `window`; once none is outstanding, verify the window."""
        window.outstanding.discard(offset)
        window.pages += 1
        self.result.pages += 1
        if window.total is None:
            if self.split_if_oversized(window, page.total):
                return
            self.size(window, page.total)
        else:
            self.follow_total(window, page.total)
        for row in page.rows:
            window.rows[row[0]] = row
        if self.ask_again_if_short(window, offset, page):
            return
        if not window.outstanding:
            await self.verify(window)

    def split_if_oversized(self, window: _Window, total: int) -> bool:
        """Close a window whose sizing page is too large for shallow offsets, and put its range
        back on the stack, to be cut again with the span just learned and into `SPLIT_WAYS`
        pieces at least (`split_range`). The head and a one-second window are never split.
        Return True when the window was split."""
        engine = self.engine
        if total <= engine.max_window_rows or window.end <= window.start or window.is_head:
            return False
        engine.learn_density(total, window)
        self.open_windows.discard(window)
        window.outstanding.clear()
        self.pending += split_range(window.start, window.end, engine.span)
        log.debug("split %s .. %s (total %d)", utc_iso(window.start), utc_iso(window.end), total)
        return True

    def size(self, window: _Window, total: int) -> None:
        """Set the window's total from its sizing page, and queue all of its remaining offsets
        at once."""
        self.engine.learn_density(total, window)
        window.total = total
        window.scheduled_upto = self.engine.page_limit
        self.schedule_to(window, total)

    def follow_total(self, window: _Window, total: int) -> None:
        """Follow the total of a later page. If it grew, the head grew while we paged it, and
        the new offsets are paged too. If it fell, only a reorg or an inconsistent replica
        explains it, and the window is suspect."""
        assert window.total is not None
        if total > window.total:
            window.total = total
            self.schedule_to(window, total)
        elif total < window.total:
            window.suspect = f"total fell from {window.total} to {total}"

    def ask_again_if_short(self, window: _Window, offset: int, page: Page) -> bool:
        """Queue a page again when it holds fewer rows than its offset should, up to
        `max_short_retries` times; after that the window is suspect. Return True when the page
        was queued again."""
        expected = min(self.engine.page_limit, max(0, page.total - offset))
        if len(page.rows) >= expected or window.suspect is not None:
            return False
        tries = window.short_retries.get(offset, 0)
        if tries >= self.engine.max_short_retries:
            window.suspect = f"page at offset {offset} stays short"
            return False
        window.short_retries[offset] = tries + 1
        log.info(
            "short page at offset %d (%d of %d): asking again", offset, len(page.rows), expected
        )
        self.push(window, offset)
        return True

    # -- verifying and finishing a window -------------------------------------------------------

    def final_state(self, window: _Window) -> WindowState:
        """Return the state of a proven window: `open` while the chain may still change it, and
        `verified` after that."""
        settling = self.settles(window.end, is_head=window.is_head)
        return WindowState.OPEN if window.is_head or settling else WindowState.VERIFIED

    async def verify(self, window: _Window) -> None:
        """Verify a window whose pages are all in: it is complete when its distinct tx_ids equal
        the total."""
        count = len(window.rows)
        if count == window.total and window.suspect is None:
            await self.finish(window, self.final_state(window))
            return
        reason = window.suspect or f"{count} distinct transactions for a total of {window.total}"
        await self.restart_or_give_up(window, reason)

    async def restart_or_give_up(self, window: _Window, reason: str) -> None:
        """Fetch an inconsistent window again from its sizing page, or after
        `max_window_attempts` store it as incomplete for the next run."""
        window.attempts += 1
        if window.attempts >= self.engine.max_window_attempts:
            log.warning(
                "window %s .. %s stays inconsistent (%s); leaving it for the next run",
                utc_iso(window.start),
                utc_iso(window.end),
                reason,
            )
            await self.finish(window, WindowState.INCOMPLETE)
            return
        log.info(
            "refetching window %s .. %s: %s", utc_iso(window.start), utc_iso(window.end), reason
        )
        window.reset()
        self.push(window, 0)

    async def finish(self, window: _Window, state: WindowState) -> None:
        """Close the window, count it, and hand it to `on_window`."""
        self.open_windows.discard(window)
        assert window.total is not None
        completed = CompletedWindow(
            window.start,
            window.end,
            window.total,
            list(window.rows.values()),
            state,
            window.pages,
        )
        self.result.count(state, settling=self.settles(window.end, is_head=window.is_head))
        await self.engine.on_window(completed)


Engine.pass_type = _Pass
