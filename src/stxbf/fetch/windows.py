"""This module holds what both engines (v1 pages, v3 cursor walks) share: how a pass cuts its
windows, what a completed window and a pass's result are, and the span learned from the windows'
density.

The runner drives either engine through `WindowEngine`'s interface (`run_pass`, `stop`,
`stopping`; each engine adds `in_flight`) and commits every `CompletedWindow` the same way, so
each rule here (where a window is cut, when it stays `open`, how a pass counts it) has one owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from stxbf.codes import WindowState
from stxbf.models import Row

MIN_SPAN = 1
MAX_SPAN = 7 * 86_400
INITIAL_SPAN = 6 * 3600  # the first window's width; later ones follow the density met

E = TypeVar("E", bound="WindowEngine")


@dataclass(frozen=True, slots=True)
class CompletedWindow:
    """A window an engine has finished: its rows, and the state the runner commits it in."""

    start: int
    end: int
    total: int
    rows: list[Row]
    state: WindowState  # verified | open (fetched again by the next run) | incomplete
    pages: int


@dataclass
class PassResult:
    """Counts what one pass over the gaps did, and says why it ended."""

    windows_done: int = 0
    windows_verified: int = 0  # done and final (the head window is done but never final)
    windows_settling: int = 0  # done, older than the head, still inside the settle period
    windows_incomplete: int = 0
    pages: int = 0
    budget_exhausted: bool = False
    stopped: bool = False

    @property
    def finished(self) -> bool:
        """Tell whether every window of the range was completed in this pass."""
        return not (self.budget_exhausted or self.stopped or self.windows_incomplete)

    def count(self, state: WindowState, *, settling: bool) -> None:
        """Count one window the pass ended: incomplete, or done (and verified, or settling)."""
        if state == WindowState.INCOMPLETE:
            self.windows_incomplete += 1
            return
        self.windows_done += 1
        self.windows_verified += state == WindowState.VERIFIED
        self.windows_settling += settling


@dataclass(eq=False)
class WindowPass(Generic[E]):
    """Holds what every pass over a set of gaps needs: its engine, the gaps (a stack: windows
    are cut from the newest end), where the head and the settle period start, the page budget,
    and the result. Each engine's pass adds its own state and `run`."""

    engine: E
    gaps: InitVar[list[tuple[int, int]]]
    head_start: int | None = field(kw_only=True)
    page_budget: int = field(kw_only=True)
    settle_start: int | None = field(default=None, kw_only=True)
    result: PassResult = field(default_factory=PassResult, init=False)
    pending: list[tuple[int, int]] = field(default_factory=list, init=False)

    def __post_init__(self, gaps: list[tuple[int, int]]) -> None:
        self.pending = sorted(gaps)

    async def run(self) -> PassResult:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def watching(
        self, tasks: Collection[asyncio.Future[Any]]
    ) -> AsyncIterator[asyncio.Future[Any]]:
        """Yield a future that ends when the engine is asked to stop. On the way out, the tasks
        still in `tasks` (the pass's requests or windows in flight) are cancelled and
        awaited."""
        stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(self.engine.wait_stopping())
        try:
            yield stop_waiter
        finally:
            stop_waiter.cancel()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def cut_window(self, span: int) -> tuple[int, int, bool]:
        """Cut the next window from the newest end of the pending gaps: (start, end, is_head).

        The part at or after `head_start` is one head window, however long; any other window
        is at most `span` seconds, and never reaches across `settle_start` (its older part can
        be verified now: a window that straddles it would stay `open`, to be fetched again). The
        rest of the gap goes back on the stack.
        """
        start, end = self.pending.pop()
        head_start, settle_start = self.head_start, self.settle_start
        is_head = head_start is not None and end >= head_start
        if is_head and head_start is not None and start < head_start:
            self.pending.append((start, head_start - 1))
            start = head_start
        elif not is_head and end - start + 1 > span:
            self.pending.append((start, end - span))
            start = end - span + 1
        if not is_head and settle_start is not None and start < settle_start <= end:
            self.pending.append((start, settle_start - 1))
            start = settle_start
        return start, end, is_head

    def settles(self, end: int, *, is_head: bool) -> bool:
        """Tell whether a window older than the head stays `open` because it ends inside the
        settle period. The chain may still add to such a window (an extended tenure, a late
        Bitcoin timestamp) or take from it (a reorg), so the next run fetches it again."""
        return not is_head and self.settle_start is not None and end >= self.settle_start

    def conclude(self, *, unfinished: bool) -> PassResult:
        """Return the result once the pass ends: stopped, or out of budget with windows
        left."""
        self.result.stopped = self.engine.stopping
        self.result.budget_exhausted = unfinished and not self.result.stopped
        return self.result


class WindowEngine:
    """Runs passes over time ranges; completed windows go to `on_window` in completion order.

    An engine holds what outlives a pass: the settings, the span learned from the density of
    the windows seen so far, and the stop flag. Each pass's own state lives in a `pass_type`.
    """

    pass_type: ClassVar[type[WindowPass[Any]]]

    def __init__(
        self,
        *,
        on_window: Callable[[CompletedWindow], Awaitable[None]],
        initial_span: int,
        target_window_rows: int | None,
    ) -> None:
        self.on_window = on_window
        self.span = initial_span
        self.target_window_rows = target_window_rows
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop opening windows; the current pass returns promptly, abandoning unfinished ones."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

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
        Every other window that ends at or after `settle_start` is stored as `open` too (see
        `WindowPass.settles`).
        """
        fetch_pass = self.pass_type(
            self, gaps, head_start=head_start, page_budget=page_budget, settle_start=settle_start
        )
        return await fetch_pass.run()

    def learn_span(self, seconds: int, total: int) -> None:
        """Size the next windows to hold about `target_window_rows` at the density just seen
        (`total` transactions in `seconds`); an empty window quadruples the span."""
        if self.target_window_rows is None:
            return
        span = self.span * 4 if total <= 0 else self.target_window_rows * seconds // total
        self.span = max(MIN_SPAN, min(MAX_SPAN, span))
