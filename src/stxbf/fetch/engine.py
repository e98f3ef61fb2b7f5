"""The window engine: cut a time range into windows, page them all at once, prove each complete.

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

from stxbf.models import Page, Row

log = logging.getLogger(__name__)

MIN_SPAN = 1
MAX_SPAN = 7 * 86_400


class PageFetcher(Protocol):
    async def page(
        self, *, start_time: int | None, end_time: int | None, offset: int = 0, limit: int = 50
    ) -> Page: ...


@dataclass(frozen=True, slots=True)
class CompletedWindow:
    start: int
    end: int
    total: int
    rows: list[Row]
    state: str  # verified | open (inside the settle period: fetched again by the next run) | ...
    pages: int


@dataclass
class PassResult:
    windows_done: int = 0
    windows_verified: int = 0  # done and final (the head window is done but never final)
    windows_settling: int = 0  # done, older than the head, still inside the settle period
    windows_incomplete: int = 0
    pages: int = 0
    budget_exhausted: bool = False
    stopped: bool = False

    @property
    def finished(self) -> bool:
        """Every window of the range was completed in this pass."""
        return not (self.budget_exhausted or self.stopped or self.windows_incomplete)


@dataclass(eq=False)
class _Window:
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
        self.generation += 1
        self.total = None
        self.rows.clear()
        self.outstanding.clear()
        self.scheduled_upto = 0
        self.short_retries.clear()
        self.suspect = None


class Engine:
    """Runs passes over time ranges; completed windows go to `on_window` in completion order."""

    def __init__(
        self,
        source: PageFetcher,
        *,
        concurrency: int,
        on_window: Callable[[CompletedWindow], Awaitable[None]],
        page_limit: int = 50,
        max_window_rows: int = 5000,
        target_window_rows: int = 4000,
        initial_span: int = 6 * 3600,
        max_window_attempts: int = 5,
        max_short_retries: int = 3,
        max_open_windows: int | None = None,
    ) -> None:
        self.source = source
        self.concurrency = concurrency
        self.on_window = on_window
        self.page_limit = page_limit
        self.max_window_rows = max_window_rows
        self.target_window_rows = target_window_rows
        self.span = initial_span
        self.max_window_attempts = max_window_attempts
        self.max_short_retries = max_short_retries
        # Small windows hold few rows, and large ones fill the queue on their own, so this
        # bounds memory while keeping enough windows open to feed every request slot.
        self.max_open_windows = max_open_windows or concurrency + 4
        self._stopping = asyncio.Event()
        self._seq = itertools.count()
        self.in_flight = 0

    def stop(self) -> None:
        """Stop scheduling; the current pass returns promptly, abandoning unfinished windows."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run_pass(
        self,
        gaps: list[tuple[int, int]],
        *,
        head_start: int | None,
        page_budget: int,
        settle_start: int | None = None,
    ) -> PassResult:
        """Fetch every window of `gaps` (inclusive ranges), newest first.

        The part of a gap at or after `head_start` becomes one head window, stored as `open`.
        Every other window that ends at or after `settle_start` is stored as `open` too: the
        chain may still add to it (an extended tenure, a late Bitcoin timestamp) or take from it
        (a reorg), so the next run fetches it again.
        """
        result = PassResult()
        pending = sorted(gaps)  # a stack: windows are cut from the newest end
        heap: list[tuple[bool, int, int, int, _Window]] = []
        tasks: dict[asyncio.Future[Page], tuple[_Window, int, int]] = {}
        open_windows: set[_Window] = set()
        stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())

        def push(window: _Window, offset: int) -> None:
            # Sizing pages go first: they turn into a whole window of work.
            window.outstanding.add(offset)
            heapq.heappush(heap, (offset > 0, window.seq, offset, window.generation, window))

        def open_next() -> bool:
            if (
                not pending
                or result.pages >= page_budget
                or len(open_windows) >= self.max_open_windows
            ):
                return False
            start, end = pending.pop()
            is_head = head_start is not None and end >= head_start
            if is_head and head_start is not None and start < head_start:
                pending.append((start, head_start - 1))
                start = head_start
            elif not is_head and end - start + 1 > self.span:
                pending.append((start, end - self.span))
                start = end - self.span + 1
            window = _Window(start, end, next(self._seq), is_head)
            open_windows.add(window)
            push(window, 0)
            return True

        async def finish(window: _Window, state: str) -> None:
            open_windows.discard(window)
            assert window.total is not None
            completed = CompletedWindow(
                window.start,
                window.end,
                window.total,
                list(window.rows.values()),
                state,
                window.pages,
            )
            if state == "incomplete":
                result.windows_incomplete += 1
            else:
                result.windows_done += 1
                result.windows_verified += state == "verified"
                result.windows_settling += state == "open" and not window.is_head
            await self.on_window(completed)

        async def handle(window: _Window, offset: int, page: Page) -> None:
            window.pages += 1
            result.pages += 1
            if window.total is None:  # the sizing page
                if (
                    page.total > self.max_window_rows
                    and window.end > window.start
                    and not window.is_head
                ):
                    self._learn_density(page.total, window)
                    open_windows.discard(window)
                    window.outstanding.clear()
                    pending.append((window.start, window.end))
                    log.debug("split %s..%s (total %d)", window.start, window.end, page.total)
                    return
                self._learn_density(page.total, window)
                window.total = page.total
                window.scheduled_upto = self.page_limit
                self._schedule_to(window, page.total, push)
            elif page.total > window.total:  # the head grew while we paged it
                window.total = page.total
                self._schedule_to(window, page.total, push)
            elif page.total < window.total:
                window.suspect = f"total fell from {window.total} to {page.total}"
            expected = min(self.page_limit, max(0, page.total - offset))
            for row in page.rows:
                window.rows[row[0]] = row
            if len(page.rows) < expected and window.suspect is None:
                tries = window.short_retries.get(offset, 0)
                if tries < self.max_short_retries:
                    window.short_retries[offset] = tries + 1
                    log.info(
                        "short page at offset %d (%d of %d): asking again",
                        offset,
                        len(page.rows),
                        expected,
                    )
                    push(window, offset)
                    return
                window.suspect = f"page at offset {offset} stays short"
            if window.outstanding:
                return
            count = len(window.rows)
            if count == window.total and window.suspect is None:
                settling = settle_start is not None and window.end >= settle_start
                await finish(window, "open" if window.is_head or settling else "verified")
                return
            reason = (
                window.suspect or f"{count} distinct transactions for a total of {window.total}"
            )
            window.attempts += 1
            if window.attempts >= self.max_window_attempts:
                log.warning(
                    "window %s..%s stays inconsistent (%s); leaving it for the next run",
                    window.start,
                    window.end,
                    reason,
                )
                await finish(window, "incomplete")
                return
            log.info("refetching window %s..%s: %s", window.start, window.end, reason)
            window.reset()
            push(window, 0)

        try:
            while not self._stopping.is_set():
                while len(tasks) < self.concurrency:
                    # Open the next window before the queue runs dry, so its sizing page is
                    # back by the time the current windows' last pages have gone out.
                    while len(heap) < self.concurrency and open_next():
                        pass
                    if not heap:
                        break
                    _, _, offset, generation, window = heapq.heappop(heap)
                    if generation != window.generation or window not in open_windows:
                        continue
                    task: asyncio.Future[Page] = asyncio.ensure_future(
                        self.source.page(
                            start_time=window.start,
                            end_time=window.end,
                            offset=offset,
                            limit=self.page_limit,
                        )
                    )
                    tasks[task] = (window, offset, generation)
                self.in_flight = len(tasks)
                if not tasks:
                    break
                waiting: list[asyncio.Future[Any]] = [*tasks, stop_waiter]
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    if finished is stop_waiter:
                        continue
                    window, offset, generation = tasks.pop(finished)
                    page = finished.result()  # a fatal FetchError propagates from here
                    if generation != window.generation or window not in open_windows:
                        continue
                    window.outstanding.discard(offset)
                    await handle(window, offset, page)
        finally:
            stop_waiter.cancel()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self.in_flight = 0
        result.stopped = self._stopping.is_set()
        result.budget_exhausted = bool(pending or open_windows) and not result.stopped
        return result

    def _schedule_to(
        self, window: _Window, total: int, push: Callable[[_Window, int], None]
    ) -> None:
        for offset in range(window.scheduled_upto, total, self.page_limit):
            push(window, offset)
        window.scheduled_upto = max(
            window.scheduled_upto, math.ceil(total / self.page_limit) * self.page_limit
        )

    def _learn_density(self, total: int, window: _Window) -> None:
        if window.is_head:
            return
        seconds = window.end - window.start + 1
        if total <= 0:
            span = self.span * 4
        else:
            span = int(self.target_window_rows * seconds / total)
        self.span = max(MIN_SPAN, min(MAX_SPAN, span))
