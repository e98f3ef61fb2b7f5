"""A burn-time window fetched from the v3 routes: its burn blocks are read, placed on Stacks
heights and cut into height ranges; each range is walked by its own cursor, and the rows kept are
proven against the burn blocks' counts.

One cursor walk goes down `/extended/v3/transactions` over a range of Stacks heights and is
proven by count: every tx must sit in its burn block's heights, and every burn block's txs must
number its `total_tx_count`. A walk starts at `TOP:2147483647:32767` and asks for pages that end
exactly at its bottom (its count is known). `TOP:0:0` would do for Nakamoto blocks
(resolveTransactionCursor in `src/datastore/v3/helpers.ts` turns a cursor naming no tx into
`(TOP, I32_MAX, 0x7fff)`), but before Nakamoto a microblock tx can sit exactly at `(TOP, 0, 0)`
and the walk would skip the rest of block TOP; the explicit key includes every tx of block TOP,
always. (Nothing larger: the parts reach PostgreSQL as they are and tx_index is a smallint;
`TOP:0:32768` is a 500 on v9.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from stxbf.codes import WindowState
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.fetch.v3.burn_blocks import BurnBlockList
from stxbf.fetch.v3.heights import Anchors, HeightRange, cut
from stxbf.fetch.v3.routes import Inconsistent, V3Routes
from stxbf.fetch.windows import CompletedWindow
from stxbf.models import PAGE_LIMIT, TX_COLUMN_NAMES, Row
from stxbf.models_v3 import BurnBlock, SummaryPage
from stxbf.words import utc_iso

log = logging.getLogger(__name__)

MAX_WALKS_PER_WINDOW = 32
BURN_TIME_SLACK = 7200  # Bitcoin's 2 h future limit; see the package docstring, point 3

_BURN_HEIGHT = TX_COLUMN_NAMES.index("burn_block_height")
_BURN_TIME = TX_COLUMN_NAMES.index("burn_block_time")
_HASH = TX_COLUMN_NAMES.index("block_hash")
I32_MAX = 2_147_483_647  # a cursor's microblock_sequence: a Nakamoto tx's, the largest there is
MAX_TX_INDEX = 0x7FFF  # a cursor's tx_index: the largest smallint


@dataclass(frozen=True)
class _Plan:
    """Holds what a window's walks need: its burn blocks (the window's and those between),
    where they start on Stacks heights, and whether a burn block later than the window bounds
    its top."""

    blocks: Sequence[BurnBlock]  # newest first
    top: int
    proven: bool

    def expected(self, start: int, end: int) -> int:
        """Return how many txs the burn blocks say [start, end] holds."""
        return sum(b.total_tx_count for b in self.blocks if start <= b.time <= end)


class V3Source:
    """Fetches inclusive burn-time windows from the v3 and v2 routes, each proven by count.

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
        page_limit: int = PAGE_LIMIT,
        burn_time_slack: int = BURN_TIME_SLACK,
        min_walk_pages: int = 8,
        max_attempts: int = 4,
        requests: PageSource | None = None,
    ) -> None:
        # One request path for both sources (pacing, retries, 429s, quotas): the runner passes
        # the v1 source's PageSource when it switches, so nothing about the API is learned twice.
        self.requests = requests or PageSource(
            client, pacer, give_up_after=give_up_after, stats=stats
        )
        self.routes = V3Routes(self.requests)
        self.stats = self.routes.stats
        self.v3_stats = self.routes.v3_stats
        self.concurrency = max(1, concurrency)  # walks per window, at least
        self.page_limit = page_limit
        self.min_walk_pages = min_walk_pages
        self.max_attempts = max_attempts
        self.burn_blocks = BurnBlockList(self.routes, slack=burn_time_slack)
        self.anchors = Anchors(self.routes)
        # what keeps the request slots busy, for V3Engine to open the next window in time
        self.preparing = 0  # windows reading burn blocks / an anchor (no walk yet)
        self.active_walks = 0
        self.progress = asyncio.Event()  # set when a preparation or a walk ends

    def walks_per_window(self) -> int:
        """Return the cursors to walk a window with: `concurrency`, or more when the in-flight
        limit is high (a walk is one request at a time, and a window cut into more walks keeps
        fewer windows in memory)."""
        wanted = self.requests.inflight.limit() // 2
        return max(self.concurrency, min(MAX_WALKS_PER_WINDOW, wanted))

    async def window(self, start: int, end: int, *, is_head: bool = False) -> CompletedWindow:
        """Return the window's txs, proven by count, or an `incomplete` window (no rows) if it
        cannot be proven."""
        with self.routes.window_pages() as pages:
            reason = ""
            for attempt in range(self.max_attempts):
                try:
                    rows, total, proven = await self._attempt(start, end, fresh=attempt > 0)
                except Inconsistent as exc:
                    reason = str(exc)
                    self.v3_stats.rebuilds += 1
                    log.info(
                        "re-reading window %s .. %s (attempt %d): %s",
                        utc_iso(start),
                        utc_iso(end),
                        attempt + 1,
                        exc,
                    )
                    continue
                state = WindowState.OPEN if is_head or not proven else WindowState.VERIFIED
                return CompletedWindow(start, end, total, rows, state, pages[0])
            log.warning(
                "window %s .. %s stays inconsistent on v3 (%s); leaving it for the next run",
                utc_iso(start),
                utc_iso(end),
                reason,
            )
            return CompletedWindow(start, end, -1, [], WindowState.INCOMPLETE, pages[0])

    async def window_total(self, start: int, end: int) -> int:
        """Return how many transactions the burn blocks say [start, end] holds (`stxbf verify`
        on v3). Asked newest first, the windows share the burn-block pages read."""
        return await self.burn_blocks.window_total(start, end)

    async def oldest_transaction_time(self) -> int | None:
        """Return the burn_block_time of the chain's oldest transaction (None when the API lists
        none). The run's preflight asks this when `/extended/v1/tx` is gone."""
        return await self.burn_blocks.oldest_time()

    async def _attempt(self, start: int, end: int, *, fresh: bool) -> tuple[list[Row], int, bool]:
        """Fetch the window once. Return its rows, their proven count, and whether the window's
        top is proven (not just bounded by the tip)."""
        plan = await self._plan(start, end, fresh=fresh)
        if not plan.blocks:
            return [], 0, plan.proven
        ranges = cut(
            plan.blocks,
            plan.top,
            walks=self.walks_per_window(),
            min_pages=self.min_walk_pages,
            page_limit=self.page_limit,
        )
        walked = await asyncio.gather(*(self._walk_verified(heights) for heights in ranges))
        rows = _keep(plan.blocks, walked, start, end)
        expected = plan.expected(start, end)
        if len(rows) != expected or len({row[0] for row in rows}) != expected:
            raise Inconsistent(f"{len(rows)} rows for {expected} expected")
        return rows, expected, plan.proven

    async def _plan(self, start: int, end: int, *, fresh: bool) -> _Plan:
        """Read the window's burn blocks and place them on Stacks heights (what V3Engine sees
        as `preparing`). With `fresh`, both are read anew."""
        self.preparing += 1
        try:
            async with self.burn_blocks.lock:
                if fresh:
                    self.burn_blocks.forget()
                    self.anchors.forget()
                blocks = list((await self.burn_blocks.cover(start, end)).blocks)
            inside = [i for i, b in enumerate(blocks) if start <= b.time <= end]
            above = blocks[: inside[0]] if inside else blocks
            proven = any(
                b.time > end + self.burn_blocks.slack for b in above
            )  # else only the tip bounds it
            if not inside:
                return _Plan((), 0, proven)
            top = await self.anchors.top_height(blocks, inside[0])
            return _Plan(blocks[inside[0] : inside[-1] + 1], top, proven)
        finally:
            self.preparing -= 1
            self.progress.set()

    async def _walk_verified(self, heights: HeightRange) -> list[Row]:
        """Walk `heights`, and once more if the walk disagrees (a page read mid-reorg, a replica
        behind); a second disagreement re-reads the whole window."""
        self.active_walks += 1
        try:
            try:
                return await _walk(heights, self.routes, self.anchors, self.page_limit)
            except Inconsistent as exc:
                self.v3_stats.rewalks += 1
                log.info("re-walking heights %d..%d: %s", heights.bottom, heights.top, exc)
            try:
                return await _walk(heights, self.routes, self.anchors, self.page_limit)
            except Inconsistent:
                self.v3_stats.rewalks += 1
                raise
        finally:
            self.active_walks -= 1
            self.progress.set()


def _keep(
    blocks: Sequence[BurnBlock], walked: Sequence[list[Row]], start: int, end: int
) -> list[Row]:
    """Return the walked rows whose burn time is inside [start, end]. Raise `Inconsistent` when
    a row's burn time is not its burn block's (point 1 of the package docstring)."""
    times = {b.height: b.time for b in blocks}
    rows: list[Row] = []
    for walk_rows in walked:
        for row in walk_rows:
            burn_height, burn_time = row[_BURN_HEIGHT], row[_BURN_TIME]
            if burn_time != times[burn_height]:
                raise Inconsistent(
                    f"tx {row[0]} has burn time {burn_time}, its burn block "
                    f"{burn_height} says {times[burn_height]}"
                )
            if start <= burn_time <= end:
                rows.append(row)
    return rows


async def _walk(
    heights: HeightRange, routes: V3Routes, anchors: Anchors, page_limit: int
) -> list[Row]:
    """Return the txs of `heights`, newest first, from one cursor walk down the v3 route; raise
    `Inconsistent` when a page or a count disagrees with the burn blocks."""
    remaining = heights.expected
    cursor = f"{heights.top}:{I32_MAX}:{MAX_TX_INDEX}"
    rows: list[Row] = []
    counts: Counter[int] = Counter()
    while remaining > 0:
        page = await routes.summary_page(cursor, min(page_limit, remaining))
        if not page.rows:
            raise Inconsistent(f"no transactions below {cursor}, {remaining} expected")
        _take(heights, page, rows, counts)
        # the page's lowest tx places the next (older) window's heights without a lookup
        anchors.note(page.rows[-1][_HASH], page.keys[-1].block_height)
        remaining -= len(page.rows)
        if remaining > 0:
            if page.next_cursor is None:
                raise Inconsistent(f"the chain ended {remaining} transactions early")
            cursor = page.next_cursor
    wrong = [b.height for b in heights.blocks if counts[b.height] != b.total_tx_count]
    if wrong or len({row[0] for row in rows}) != len(rows):
        raise Inconsistent(f"counts differ from total_tx_count in burn blocks {wrong[:5]}")
    return rows


def _take(heights: HeightRange, page: SummaryPage, rows: list[Row], counts: Counter[int]) -> None:
    """Add the page's rows to `rows`, counted by burn block, each checked against its burn
    block's heights."""
    for row, key in zip(page.rows, page.keys, strict=True):
        low_high = heights.block_heights.get(key.burn_block_height)
        if low_high is None or not low_high[0] <= key.block_height <= low_high[1]:
            raise Inconsistent(
                f"tx at height {key.block_height} (burn {key.burn_block_height}) "
                f"outside heights {heights.bottom}..{heights.top}"
            )
        counts[key.burn_block_height] += 1
        rows.append(row)
