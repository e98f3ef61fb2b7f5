"""This module reads the burn-block list (`/extended/v2/burn-blocks`, newest first) as far as a
window needs.

A window [start, end] of burn time is covered by the burn blocks from one later than
`end + slack` (or the tip) down to one earlier than `start - slack` (or the chain's first): burn
times are not monotonic, so a window's burn blocks need not be adjacent (see the package
docstring, point 3). Windows asked newest first reuse the region already read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from stxbf.fetch.v3.routes import BURN_PAGE_LIMIT, Inconsistent, V3Routes
from stxbf.models_v3 import BurnBlock


@dataclass
class Region:
    """Holds burn blocks adjacent in the API's list (newest first), and where the first one
    was."""

    blocks: list[BurnBlock] = field(default_factory=list)
    top_offset: int = 0
    at_tip: bool = False  # blocks[0] was the newest burn block when read
    at_bottom: bool = False  # blocks[-1] is the chain's first


class BurnBlockList:
    """Keeps the region of the list read so far. Hold `lock` around `cover`: the windows in
    flight at once share the region, and each reads it as it moves."""

    def __init__(self, routes: V3Routes, *, slack: int) -> None:
        self.routes = routes
        self.slack = slack
        self.region = Region()
        self.lock = asyncio.Lock()
        self._gap = 600.0  # seconds between listed burn blocks, learned from pages

    def forget(self) -> None:
        """Drop the cached region, so the list is read anew (it disagreed with a walk)."""
        self.region = Region()

    async def window_total(self, start: int, end: int) -> int:
        """Return how many transactions the burn blocks say [start, end] holds: the sum of
        `total_tx_count` over the burn blocks whose time is inside."""
        async with self.lock:
            region = await self.cover(start, end)
            return sum(b.total_tx_count for b in region.blocks if start <= b.time <= end)

    async def oldest_time(self) -> int | None:
        """Return the burn_block_time of the chain's oldest transaction, read at the bottom of
        the list (None when the API lists none). Burn times run backwards by less than the
        slack, so the oldest is among the bottom burn blocks within the slack of it."""
        async with self.lock:
            region = await self._bottom()
            blocks = [b for b in region.blocks if b.total_tx_count > 0]
            # a burn block above one with time t carries a time later than t - slack: read up
            # until the top is later than the oldest time found + slack
            while (
                blocks
                and not region.at_tip
                and region.blocks[0].time < min(b.time for b in blocks) + self.slack
            ):
                await self._extend_up(region)
                blocks = [b for b in region.blocks if b.total_tx_count > 0]
            self.region = Region()  # a cache for the bottom helps no window
        return min((b.time for b in blocks), default=None)

    async def _bottom(self) -> Region:
        """Read the region at the bottom of the list, down to the chain's first burn block.

        The list's `total` names the bottom page: two requests instead of a seek (~15 one after
        the other). Burn blocks that arrive meanwhile are read by `_extend`.
        """
        total = await self.routes.burn_block_count()
        offset = max(0, total - BURN_PAGE_LIMIT)
        page = await self._page(offset)
        region = Region(list(page), offset, at_tip=offset == 0)
        region.at_bottom = len(page) < BURN_PAGE_LIMIT or offset + len(page) >= total
        if not page:
            region = await self._seek(-(2**62))
        while not region.at_bottom:
            await self._extend(region)
        return region

    async def _extend_up(self, region: Region) -> None:
        """Read the page above the region's top, keeping the blocks not read yet."""
        above = await self._page(max(0, region.top_offset - BURN_PAGE_LIMIT + 1))
        known = {(b.height, b.hash) for b in region.blocks}
        region.blocks[:0] = [b for b in above if (b.height, b.hash) not in known]
        region.top_offset = max(0, region.top_offset - BURN_PAGE_LIMIT + 1)
        region.at_tip = region.top_offset == 0

    async def _page(self, offset: int) -> list[BurnBlock]:
        """Read one page of the list, and learn the time between burn blocks from it."""
        page = await self.routes.burn_page(offset)
        if len(page) >= 2:
            spread = (page[0].time - page[-1].time) / (len(page) - 1)
            self._gap = min(3600.0, max(60.0, spread))
        return page

    async def cover(self, start: int, end: int) -> Region:
        """Return the region from a block later than end+slack (or the tip) down to one earlier
        than start-slack (or the chain's first). It is read anew when the cached one does not
        reach up that far."""
        region = self.region
        if not any(b.time > end + self.slack for b in region.blocks):
            region = self.region = await self._seek(end + self.slack)
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

    async def _seek(self, after: int) -> Region:
        """Find the deepest page whose first burn block is later than `after`, by interpolating
        offsets from the times read (bounded by a bisection when a guess lands past the end)."""
        page = await self._page(0)
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
            page = await self._page(offset)
            if not page or page[0].time <= after:
                high = offset
                back = int((after - page[0].time) / self._gap) + BURN_PAGE_LIMIT if page else 0
                offset = max(low + 1, offset - back) if back else (low + high) // 2
                continue
            low, best_offset, best = offset, offset, page
        region = Region(list(best), best_offset, at_tip=best_offset == 0)
        region.at_bottom = len(best) < BURN_PAGE_LIMIT
        return region

    async def _extend(self, region: Region) -> None:
        """Read the next page down, overlapping by one block so that no burn block is skipped
        even when new ones arrive at the tip (they shift every offset) between two reads."""
        last = region.blocks[-1]
        offset = region.top_offset + len(region.blocks) - 1
        for _ in range(8):
            page = await self._page(offset)
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
            raise Inconsistent(f"burn block {last.height} left the list (a reorg?)")
        raise Inconsistent("the burn-block list keeps moving")
