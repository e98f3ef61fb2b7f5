"""The v3 source: a burn-time window fetched by cursor walks over Stacks heights, proven by count.

`/extended/v3/transactions` has no time filter and no offset (hirosystems/stacks-blockchain-api,
`src/api/routes/v3/transactions.ts`, `src/datastore/v3/pg-store-v3.ts` getTransactionSummaries):
it walks canonical txs newest first by `(block_height, microblock_sequence, tx_index)`, from a
cursor. So a window [start, end] of burn_block_time (the same inclusive windows, keyed the same
way, as the v1 source; a database moves between sources without refetching) is mapped to Stacks
heights with `/extended/v2/burn-blocks` (`src/api/routes/v2/burn-blocks.ts`,
`src/datastore/pg-store-v2.ts` getBurnBlocks: every burn block that has canonical Stacks blocks,
newest first, 30 a page, each with its `stacks_blocks` hashes newest first and `total_tx_count`
= the sum of their `tx_count`).

Why the mapping is exact:

1. A Stacks block's burn_block_time is its tenure's (the Nakamoto processor appends a block with
   the tenure's snapshot timestamp; a tenure extended over later Bitcoin blocks keeps it), and a
   tx's is its block's. So every tx of a burn block in the list carries that burn block's time;
   the walk checks it for every tx and refuses the window if one differs.
2. Burn heights never decrease along Stacks heights (tenures follow each other along one Bitcoin
   fork), so each listed burn block owns one contiguous run of Stacks heights, the runs follow
   each other in list order, and one known height (an anchor: one `/extended/v2/blocks/:hash`,
   or any tx seen before) places them all. The walk checks every tx's height against its run.
3. Burn *times* are not monotonic: a Bitcoin timestamp need only exceed the median of the 11
   before it and may run up to 2 h ahead of the network's clock. So the burn blocks whose time lies
   in [start, end] need not be adjacent, and txs of the window can sit above or below the heights
   the window's edges suggest. The source reads the list from a burn block whose time is later
   than `end + slack` down to one earlier than `start - slack` (slack 2 h by default), or to the
   tip / the chain's first block, and takes every burn block in between whose time is in the
   window. Those outside but between are walked too and dropped by time.
4. Every walked burn block's txs are counted and must equal its `total_tx_count`; the rows kept
   must equal the sum over the window's burn blocks. A mismatch re-walks, then re-reads the burn
   blocks, and a window that stays inconsistent is returned `incomplete` (never short).

Many walks are in flight at once: the window's heights are cut at burn-block boundaries into
sub-spans, each walked downwards from `TOP:2147483647:32767` with page sizes that end exactly at
its bottom (its count is known). `TOP:0:0` would do for Nakamoto blocks (resolveTransactionCursor
in `src/datastore/v3/helpers.ts` turns a cursor naming no tx into `(TOP, I32_MAX, 0x7fff)`), but
before Nakamoto a microblock tx can sit exactly at `(TOP, 0, 0)` and the walk would skip the rest
of block TOP; the explicit key includes every tx of block TOP, always. (Nothing larger: the
parts reach PostgreSQL as they are and tx_index is a smallint; `TOP:0:32768` is a 500 on v9.)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stxbf.codes import WindowState
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.fetch.windows import MAX_SPAN, MIN_SPAN, CompletedWindow, PassResult
from stxbf.models import TX_COLUMN_NAMES, Row
from stxbf.models_v3 import (
    I32_MAX,
    MAX_TX_INDEX,
    BurnBlock,
    SummaryPage,
    parse_block,
    parse_burn_block_page,
    parse_burn_block_total,
    parse_summary_page,
)

log = logging.getLogger(__name__)

V3_TX_PATH = "/extended/v3/transactions"
BURN_BLOCKS_PATH = "/extended/v2/burn-blocks"
BLOCKS_PATH = "/extended/v2/blocks"
TX_PAGE_LIMIT = 50  # pagination.ts ResourceType.Tx
BURN_PAGE_LIMIT = 30  # pagination.ts ResourceType.BurnBlock
CUT_LOOKAHEAD = 12  # burn blocks past a walk's target where its end may move
BURN_TIME_SLACK = 7200  # Bitcoin's 2 h future limit; see the module docstring, point 3

T = TypeVar("T")
# The answers a window used (its walks run in tasks that inherit the window's counter).
_WINDOW_PAGES: ContextVar[list[int] | None] = ContextVar("v3_window_pages", default=None)


class _Inconsistent(Exception):
    """The walk disagrees with the burn blocks (a count, a height, a time): do it again."""


@dataclass
class V3Stats:
    """Requests by kind: tx pages carry the data, the rest is the cost of proving it."""

    tx_pages: int = 0
    burn_pages: int = 0
    block_lookups: int = 0
    rewalks: int = 0
    rebuilds: int = 0

    @property
    def overhead_requests(self) -> int:
        return self.burn_pages + self.block_lookups


@dataclass
class _Region:
    """Burn blocks adjacent in the API's list (newest first), and where the first one was."""

    blocks: list[BurnBlock] = field(default_factory=list)
    top_offset: int = 0
    at_tip: bool = False  # blocks[0] was the newest burn block when read
    at_bottom: bool = False  # blocks[-1] is the chain's first


@dataclass(frozen=True)
class _Span:
    """Adjacent burn blocks walked by one cursor: Stacks heights [bottom, top]."""

    blocks: tuple[BurnBlock, ...]  # newest first
    top: int
    bottom: int
    ranges: Mapping[int, tuple[int, int]]  # burn height -> its Stacks heights (low, high)

    @property
    def expected(self) -> int:
        return sum(b.total_tx_count for b in self.blocks)


class V3Source:
    """Fetch inclusive burn-time windows from the v3/v2 routes, each proven by count.

    `window(start, end)` returns a `CompletedWindow` (start, end, total, rows, state, pages) that
    the runner commits exactly as it commits the v1 engine's. Windows may be fetched concurrently
    (all requests share `pacer`); windows fetched newest first reuse the burn blocks already read.
    """

    def __init__(
        self,
        client: ApiClient,
        pacer: Pacer,
        *,
        give_up_after: float,
        concurrency: int = 8,
        stats: FetchStats | None = None,
        page_limit: int = TX_PAGE_LIMIT,
        burn_time_slack: int = BURN_TIME_SLACK,
        min_span_pages: int = 8,
        max_attempts: int = 4,
        requests: PageSource | None = None,
    ) -> None:
        # One request path for both sources (pacing, retries, 429s, quotas): the runner passes
        # the v1 source's PageSource when it switches, so nothing about the API is learned twice.
        self.requests = requests or PageSource(
            client, pacer, give_up_after=give_up_after, stats=stats
        )
        self.stats = self.requests.stats
        self.v3 = V3Stats()
        self.concurrency = max(1, concurrency)
        self.page_limit = page_limit
        self.slack = burn_time_slack
        self.min_span_pages = min_span_pages
        self.max_attempts = max_attempts
        self._region = _Region()
        self._region_lock = asyncio.Lock()
        self._anchors: dict[str, int] = {}  # Stacks block hash -> height
        self._gap = 600.0  # seconds between listed burn blocks, learned from pages
        # what keeps the request slots busy, for V3Engine to open the next window in time
        self.preparing = 0  # windows reading burn blocks / an anchor (no walk yet)
        self.active_walks = 0
        self.progress = asyncio.Event()  # set when a preparation or a walk ends

    async def _fetch(
        self,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], T],
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        """`PageSource.fetch`, counted into the window whose walk asked (see `_WINDOW_PAGES`)."""
        value = await self.requests.fetch(path, params, parse, check)
        window_pages = _WINDOW_PAGES.get()
        if window_pages is not None:
            window_pages[0] += 1
        return value

    # ---- one window -------------------------------------------------------------------------

    async def window(self, start: int, end: int, *, is_head: bool = False) -> CompletedWindow:
        """The window's txs, proven by count; `incomplete` (no rows) if it cannot be proven."""
        pages = [0]
        token = _WINDOW_PAGES.set(pages)
        try:
            return await self._window(start, end, is_head, pages)
        finally:
            _WINDOW_PAGES.reset(token)

    async def _window(
        self, start: int, end: int, is_head: bool, pages: list[int]
    ) -> CompletedWindow:
        reason = ""
        for attempt in range(self.max_attempts):
            try:
                rows, total, proven = await self._attempt(start, end, fresh=attempt > 0)
            except _Inconsistent as exc:
                reason = str(exc)
                self.v3.rebuilds += 1
                log.info("re-reading window %s..%s (attempt %d): %s", start, end, attempt + 1, exc)
                continue
            state = WindowState.OPEN if is_head or not proven else WindowState.VERIFIED
            return CompletedWindow(start, end, total, rows, state, pages[0])
        log.warning(
            "window %s..%s stays inconsistent on v3 (%s); leaving it for the next run",
            start,
            end,
            reason,
        )
        return CompletedWindow(start, end, -1, [], WindowState.INCOMPLETE, pages[0])

    async def _attempt(self, start: int, end: int, *, fresh: bool) -> tuple[list[Row], int, bool]:
        """(rows, their proven count, whether the window's top is proven, not just the tip)."""
        self.preparing += 1
        try:
            async with self._region_lock:
                if fresh:
                    self._region = _Region()
                    self._anchors.clear()
                region = await self._cover(start, end)
                blocks = list(region.blocks)
            inside = [i for i, b in enumerate(blocks) if start <= b.time <= end]
            above = blocks[: inside[0]] if inside else blocks
            proven = any(b.time > end + self.slack for b in above)  # else only the tip bounds it
            if not inside:
                return [], 0, proven
            span_blocks = blocks[inside[0] : inside[-1] + 1]
            top = await self._top_height(blocks, inside[0])
        finally:
            self.preparing -= 1
            self.progress.set()
        spans = self._cut(span_blocks, top)
        results = await asyncio.gather(*(self._walk_verified(span) for span in spans))
        times = {b.height: b.time for b in span_blocks}
        rows: list[Row] = []
        for span_rows in results:
            for row in span_rows:
                burn_height, burn_time = row[_BURN_HEIGHT], row[_BURN_TIME]
                if burn_time != times[burn_height]:
                    raise _Inconsistent(
                        f"tx {row[0]} has burn time {burn_time}, its burn block "
                        f"{burn_height} says {times[burn_height]}"
                    )
                if start <= burn_time <= end:
                    rows.append(row)
        expected = sum(blocks[i].total_tx_count for i in inside)
        if len(rows) != expected or len({row[0] for row in rows}) != expected:
            raise _Inconsistent(f"{len(rows)} rows for {expected} expected")
        return rows, expected, proven

    async def window_total(self, start: int, end: int) -> int:
        """How many transactions the burn blocks say [start, end] holds (`stxbf verify` on v3):
        the sum of `total_tx_count` over the burn blocks whose time is inside. Asked newest
        first, the windows share the burn-block pages read."""
        async with self._region_lock:
            region = await self._cover(start, end)
            return sum(b.total_tx_count for b in region.blocks if start <= b.time <= end)

    async def oldest_transaction_time(self) -> int | None:
        """burn_block_time of the chain's oldest transaction (None: the API lists none), read at
        the bottom of the burn-block list: the run's preflight when `/extended/v1/tx` is gone.
        Burn times run backwards by less than the slack, so the oldest is among the bottom
        burn blocks that span it."""
        async with self._region_lock:
            # the list's `total` names the bottom page: two requests instead of a seek (~15
            # one after the other); burn blocks arriving meanwhile are read by `_extend`
            total = await self._fetch(
                BURN_BLOCKS_PATH, {"limit": 1, "offset": 0}, parse_burn_block_total
            )
            offset = max(0, total - BURN_PAGE_LIMIT)
            page = await self._burn_page(offset)
            region = _Region(list(page), offset, at_tip=offset == 0)
            region.at_bottom = len(page) < BURN_PAGE_LIMIT or offset + len(page) >= total
            if not page:
                region = await self._seek(-(2**62))
            while not region.at_bottom:
                await self._extend(region)
            blocks = [b for b in region.blocks if b.total_tx_count > 0]
            # a burn block above one with time t carries a time later than t - slack: read up
            # until the top is later than the oldest time found + slack
            while (
                blocks
                and not region.at_tip
                and region.blocks[0].time < min(b.time for b in blocks) + self.slack
            ):
                above = await self._burn_page(max(0, region.top_offset - BURN_PAGE_LIMIT + 1))
                known = {(b.height, b.hash) for b in region.blocks}
                region.blocks[:0] = [b for b in above if (b.height, b.hash) not in known]
                region.top_offset = max(0, region.top_offset - BURN_PAGE_LIMIT + 1)
                region.at_tip = region.top_offset == 0
                blocks = [b for b in region.blocks if b.total_tx_count > 0]
            self._region = _Region()  # a cache for the bottom helps no window
        return min((b.time for b in blocks), default=None)

    # ---- the burn-block list ----------------------------------------------------------------

    async def _burn_page(self, offset: int) -> list[BurnBlock]:
        self.v3.burn_pages += 1
        page = await self._fetch(
            BURN_BLOCKS_PATH,
            {"limit": BURN_PAGE_LIMIT, "offset": offset},
            parse_burn_block_page,
        )
        if len(page) >= 2:
            spread = (page[0].time - page[-1].time) / (len(page) - 1)
            self._gap = min(3600.0, max(60.0, spread))
        return page

    async def _cover(self, start: int, end: int) -> _Region:
        """The region from a block later than end+slack (or the tip) down to one earlier than
        start-slack (or the chain's first), read anew when the cached one does not reach up."""
        region = self._region
        if not any(b.time > end + self.slack for b in region.blocks):
            region = self._region = await self._seek(end + self.slack)
        while not region.at_bottom and not any(b.time < start - self.slack for b in region.blocks):
            await self._extend(region)
        # Windows come newest first: drop what lies above this window's nearest upper proof.
        blocks = region.blocks
        first_inside = next(
            (i for i, b in enumerate(blocks) if start <= b.time <= end), len(blocks)
        )
        proof = max(
            (i for i in range(first_inside) if blocks[i].time > end + self.slack), default=0
        )
        if proof:
            del blocks[:proof]
            region.top_offset += proof
            region.at_tip = False
        return region

    async def _seek(self, after: int) -> _Region:
        """The deepest page whose first burn block is later than `after`, found by interpolating
        offsets from the times read (bounded by a bisection when a guess lands past the end)."""
        page = await self._burn_page(0)
        best_offset, best = 0, page
        low, high = 0, None  # offsets known to be above / below the wanted page
        offset = 0
        for _ in range(16):
            if not best or best[-1].time <= after or len(best) < BURN_PAGE_LIMIT:
                break  # the page at best_offset reaches down to `after` (or to the bottom)
            if offset == best_offset:
                guess = int((best[-1].time - after) / self._gap) - BURN_PAGE_LIMIT // 2
                # at most 8 times deeper a step: a time before the chain's start guesses wild
                guess = min(guess, 8 * (best_offset + len(best)))
                offset = best_offset + len(best) - 1 + max(0, guess)
            if high is not None and offset >= high:
                offset = (low + high) // 2
            if offset <= low:
                break
            page = await self._burn_page(offset)
            if not page or page[0].time <= after:
                high = offset
                back = int((after - page[0].time) / self._gap) + BURN_PAGE_LIMIT if page else 0
                offset = max(low + 1, offset - back) if back else (low + high) // 2
                continue
            low, best_offset, best = offset, offset, page
        region = _Region(list(best), best_offset, at_tip=best_offset == 0)
        region.at_bottom = len(best) < BURN_PAGE_LIMIT
        return region

    async def _extend(self, region: _Region) -> None:
        """Read the next page down, overlapping by one block so that no burn block is skipped
        even when new ones arrive at the tip (they shift every offset) between two reads."""
        last = region.blocks[-1]
        offset = region.top_offset + len(region.blocks) - 1
        for _ in range(8):
            page = await self._burn_page(offset)
            where = next(
                (i for i, b in enumerate(page) if (b.height, b.hash) == (last.height, last.hash)),
                None,
            )
            if where is not None:
                region.top_offset += offset - (region.top_offset + len(region.blocks) - 1) + where
                region.blocks += page[where + 1 :]
                region.at_bottom = len(page) < BURN_PAGE_LIMIT
                return
            if page and page[-1].height > last.height:
                offset += len(page) - 1  # many new burn blocks at the tip: look further down
                continue
            raise _Inconsistent(f"burn block {last.height} left the list (a reorg?)")
        raise _Inconsistent("the burn-block list keeps moving")

    # ---- Stacks heights ---------------------------------------------------------------------

    async def _top_height(self, blocks: Sequence[BurnBlock], index: int) -> int:
        """The Stacks height of the newest block of `blocks[index]`, from any known anchor."""
        above = 0  # Stacks blocks between an anchored burn block's top and ours
        for i in range(index, -1, -1):
            if i < index:
                above += len(blocks[i].stacks_blocks)
            for j, block_hash in enumerate(blocks[i].stacks_blocks):
                height = self._anchors.get(block_hash)
                if height is not None:
                    return height + j - above
        below = 0
        for i in range(index, len(blocks)):
            for j, block_hash in enumerate(blocks[i].stacks_blocks):
                height = self._anchors.get(block_hash)
                if height is not None:
                    return height + below + j
            below += len(blocks[i].stacks_blocks)
        block_hash = blocks[index].stacks_blocks[0]
        self.v3.block_lookups += 1
        block = await self._fetch(f"{BLOCKS_PATH}/{block_hash}", {}, parse_block)
        if block.burn_block_height != blocks[index].height:
            raise _Inconsistent(f"block {block_hash} is not in burn block {blocks[index].height}")
        self._anchors[block_hash] = block.height
        return block.height

    def _cut(self, blocks: Sequence[BurnBlock], top: int) -> list[_Span]:
        """Adjacent burn blocks grouped into about `concurrency` walks of at least
        `min_span_pages` pages each. Each walk ends with a page cut to its remaining count, a
        request that carries less than a full page; so each cut is placed, among the next few
        burn blocks past the target, where the walk's count is closest to whole pages."""
        counts = [b.total_tx_count for b in blocks]
        total = sum(counts)
        target = max(self.min_span_pages * self.page_limit, math.ceil(total / self.concurrency))
        cuts: list[int] = []
        start = 0
        while start < len(blocks):
            end, count = start, 0
            while end < len(blocks) and count < target:
                count += counts[end]
                end += 1
            if total - sum(counts[:end]) < target // 2:
                end = len(blocks)  # no small walk at the end
            else:
                best, best_waste = end, (-count) % self.page_limit
                for extra in range(end, min(len(blocks), end + CUT_LOOKAHEAD)):
                    count += counts[extra]
                    waste = (-count) % self.page_limit
                    if waste < best_waste:
                        best, best_waste = extra + 1, waste
                end = best
            cuts.append(end)
            start = end
        spans: list[_Span] = []
        height, first = top, 0
        for end in cuts:
            group = blocks[first:end]
            ranges: dict[int, tuple[int, int]] = {}
            span_top = height
            for block in group:
                ranges[block.height] = (height - len(block.stacks_blocks) + 1, height)
                height -= len(block.stacks_blocks)
            spans.append(_Span(tuple(group), span_top, height + 1, ranges))
            first = end
        return spans

    # ---- walking ----------------------------------------------------------------------------

    async def _walk_verified(self, span: _Span) -> list[Row]:
        self.active_walks += 1
        try:
            for attempt in range(2):
                try:
                    return await self._walk(span)
                except _Inconsistent as exc:
                    self.v3.rewalks += 1
                    if attempt:
                        raise
                    log.info("re-walking heights %d..%d: %s", span.bottom, span.top, exc)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self.active_walks -= 1
            self.progress.set()

    async def _walk(self, span: _Span) -> list[Row]:
        remaining = span.expected
        cursor = f"{span.top}:{I32_MAX}:{MAX_TX_INDEX}"
        rows: list[Row] = []
        counts: Counter[int] = Counter()
        while remaining > 0:
            limit = min(self.page_limit, remaining)
            page = await self._tx_page(cursor, limit)
            if not page.rows:
                raise _Inconsistent(f"no transactions below {cursor}, {remaining} expected")
            for row, key in zip(page.rows, page.keys, strict=True):
                low_high = span.ranges.get(key.burn_block_height)
                if low_high is None or not low_high[0] <= key.block_height <= low_high[1]:
                    raise _Inconsistent(
                        f"tx at height {key.block_height} (burn {key.burn_block_height}) "
                        f"outside heights {span.bottom}..{span.top}"
                    )
                counts[key.burn_block_height] += 1
                rows.append(row)
            # the page's lowest tx places the next (older) window's heights without a lookup
            self._anchors[page.rows[-1][_HASH]] = page.keys[-1].block_height
            remaining -= len(page.rows)
            if remaining > 0:
                if page.next_cursor is None:
                    raise _Inconsistent(f"the chain ended {remaining} transactions early")
                cursor = page.next_cursor
        wrong = [b.height for b in span.blocks if counts[b.height] != b.total_tx_count]
        if wrong or len({row[0] for row in rows}) != len(rows):
            raise _Inconsistent(f"counts differ from total_tx_count in burn blocks {wrong[:5]}")
        return rows

    async def _tx_page(self, cursor: str, limit: int) -> SummaryPage:
        def short(page: SummaryPage) -> str | None:
            if len(page.rows) < limit and page.next_cursor is not None:
                return f"short page ({len(page.rows)} of {limit}) at cursor {cursor}"
            if len(page.rows) > limit:
                return f"page longer than asked ({len(page.rows)} of {limit})"
            return None

        self.v3.tx_pages += 1
        page = await self._fetch(
            V3_TX_PATH, {"limit": limit, "cursor": cursor}, parse_summary_page, short
        )
        self.stats.transactions += len(page.rows)
        return page


class V3Engine:
    """`Engine`'s interface over a `V3Source`, so the runner can drive either: `run_pass`,
    `stop`, `stopping`, `in_flight`. Windows are cut from `gaps` newest first, at `head_start`
    (the head window is `open`) and at a span that adapts to hold about `target_window_rows`
    (None: the span stays `initial_span`);
    up to `windows_in_flight` of them are open at once (each walked by up to `concurrency`
    cursors; the next is prepared while the current ones walk), and
    each completed window goes to `on_window` in completion order. An `incomplete` window is
    counted but not handed on: it has no rows, and committing it would empty its range."""

    def __init__(
        self,
        source: V3Source,
        *,
        on_window: Callable[[CompletedWindow], Awaitable[None]],
        initial_span: int = 6 * 3600,
        target_window_rows: int | None = 8000,
        windows_in_flight: int = 4,
    ) -> None:
        self.source = source
        self.on_window = on_window
        self.span = initial_span
        self.target_window_rows = target_window_rows
        self.windows_in_flight = max(1, windows_in_flight)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop opening windows; the current pass returns promptly, abandoning unfinished ones."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        return self.source.requests.in_flight

    async def run_pass(
        self,
        gaps: list[tuple[int, int]],
        *,
        head_start: int | None,
        page_budget: int,
        settle_start: int | None = None,
    ) -> PassResult:
        """Fetch every window of `gaps` (inclusive ranges), newest first, as `Engine.run_pass`;
        a window ending at or after `settle_start` is `open` too (fetched again next run)."""
        result = PassResult()
        source = self.source
        pending = sorted(gaps)  # a stack: windows are cut from the newest end
        tasks: set[asyncio.Future[CompletedWindow]] = set()
        settling: set[asyncio.Future[CompletedWindow]] = set()  # open, but older than the head
        stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())

        def open_next() -> bool:
            if not pending or result.pages >= page_budget or self._stopping.is_set():
                return False
            start, end = pending.pop()
            is_head = head_start is not None and end >= head_start
            if is_head and head_start is not None and start < head_start:
                pending.append((start, head_start - 1))
                start = head_start
            elif not is_head and end - start + 1 > self.span:
                pending.append((start, end - self.span))
                start = end - self.span + 1
            settles = not is_head and settle_start is not None and end >= settle_start
            task = asyncio.ensure_future(self.source.window(start, end, is_head=is_head or settles))
            tasks.add(task)
            if settles:
                settling.add(task)
            return True

        try:
            while not self._stopping.is_set():
                # The next window reads its burn blocks while this one's walks still run (one
                # window prepares at a time), so a window's walks, which end together, are
                # followed at once by the next one's.
                while len(tasks) < self.windows_in_flight and (
                    not tasks
                    or (source.preparing == 0 and source.active_walks < 2 * source.concurrency)
                ):
                    if not open_next():
                        break
                    await asyncio.sleep(0)  # let it start preparing before the next check
                if not tasks:
                    break
                source.progress.clear()
                progress = asyncio.ensure_future(source.progress.wait())
                done, _ = await asyncio.wait(
                    [*tasks, stop_waiter, progress], return_when=asyncio.FIRST_COMPLETED
                )
                progress.cancel()
                for finished in done:
                    if finished is stop_waiter or finished is progress:
                        continue
                    tasks.discard(finished)
                    window = finished.result()  # a fatal FetchError propagates from here
                    result.pages += window.pages
                    if window.state == WindowState.INCOMPLETE:
                        # nothing to commit: its (empty) rows would replace what the range
                        # holds; the range stays a gap and the next run fetches it again
                        result.windows_incomplete += 1
                        continue
                    result.windows_done += 1
                    result.windows_verified += window.state == WindowState.VERIFIED
                    result.windows_settling += finished in settling
                    self._learn_density(window)
                    await self.on_window(window)
        finally:
            stop_waiter.cancel()
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        result.stopped = self._stopping.is_set()
        result.budget_exhausted = bool(pending or tasks) and not result.stopped
        return result

    def _learn_density(self, window: CompletedWindow) -> None:
        if window.state == WindowState.OPEN or self.target_window_rows is None:
            return
        seconds = window.end - window.start + 1
        span = (
            self.span * 4
            if window.total <= 0
            else self.target_window_rows * seconds // window.total
        )
        self.span = max(MIN_SPAN, min(MAX_SPAN, span))


_HASH = TX_COLUMN_NAMES.index("block_hash")
_BURN_HEIGHT = TX_COLUMN_NAMES.index("burn_block_height")
_BURN_TIME = TX_COLUMN_NAMES.index("burn_block_time")
