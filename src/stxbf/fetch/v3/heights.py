"""Burn blocks are placed on Stacks heights here, and cut into height ranges that one cursor walk
each covers.

Each listed burn block owns one contiguous run of Stacks heights (its `stacks_blocks`, newest
first), the runs follow each other in list order, so one known height places them all (see the
package docstring, point 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stxbf.fetch.v3.routes import Inconsistent, V3Routes
from stxbf.models_v3 import BurnBlock

CUT_LOOKAHEAD = 12  # burn blocks past a walk's target where its end may move


@dataclass(frozen=True)
class HeightRange:
    """The Stacks heights [bottom, top] of adjacent burn blocks, walked by one cursor."""

    blocks: tuple[BurnBlock, ...]  # newest first
    top: int
    bottom: int
    block_heights: Mapping[int, tuple[int, int]]  # burn height -> its Stacks heights (low, high)

    @property
    def expected(self) -> int:
        """Return how many txs the walk must find: the burn blocks' `total_tx_count`, summed."""
        return sum(b.total_tx_count for b in self.blocks)


class Anchors:
    """Remembers Stacks heights by block hash (from a lookup, or from any tx seen before), so
    that the heights of every burn block near one of them are placed without another
    request."""

    def __init__(self, routes: V3Routes) -> None:
        self.routes = routes
        self._heights: dict[str, int] = {}

    def note(self, block_hash: str, height: int) -> None:
        self._heights[block_hash] = height

    def forget(self) -> None:
        self._heights.clear()

    def _known(self, blocks: Sequence[BurnBlock], index: int) -> int | None:
        """Return the top height of `blocks[index]`, placed by an anchor in it, above it, or
        below it (None when no anchor is near)."""
        above = 0  # Stacks blocks between an anchored burn block's top and ours
        for i in range(index, -1, -1):
            if i < index:
                above += len(blocks[i].stacks_blocks)
            for j, block_hash in enumerate(blocks[i].stacks_blocks):
                height = self._heights.get(block_hash)
                if height is not None:
                    return height + j - above
        below = 0
        for i in range(index, len(blocks)):
            for j, block_hash in enumerate(blocks[i].stacks_blocks):
                height = self._heights.get(block_hash)
                if height is not None:
                    return height + below + j
            below += len(blocks[i].stacks_blocks)
        return None

    async def top_height(self, blocks: Sequence[BurnBlock], index: int) -> int:
        """Return the Stacks height of the newest block of `blocks[index]`, looked up when no
        anchor places it."""
        known = self._known(blocks, index)
        if known is not None:
            return known
        block_hash = blocks[index].stacks_blocks[0]
        block = await self.routes.block(block_hash)
        if block.burn_block_height != blocks[index].height:
            raise Inconsistent(f"block {block_hash} is not in burn block {blocks[index].height}")
        self.note(block_hash, block.height)
        return block.height


def cut(
    blocks: Sequence[BurnBlock], top: int, *, walks: int, min_pages: int, page_limit: int
) -> list[HeightRange]:
    """Group adjacent burn blocks, the newest of them at Stacks height `top`, into about `walks`
    height ranges of at least `min_pages` pages each."""
    counts = [b.total_tx_count for b in blocks]
    target = max(min_pages * page_limit, math.ceil(sum(counts) / walks))
    ranges: list[HeightRange] = []
    height, first = top, 0
    for end in _cut_points(counts, target, page_limit):
        group = blocks[first:end]
        block_heights: dict[int, tuple[int, int]] = {}
        range_top = height
        for block in group:
            block_heights[block.height] = (height - len(block.stacks_blocks) + 1, height)
            height -= len(block.stacks_blocks)
        ranges.append(HeightRange(tuple(group), range_top, height + 1, block_heights))
        first = end
    return ranges


def _cut_points(counts: Sequence[int], target: int, page_limit: int) -> list[int]:
    """Return where each height range ends (exclusive indexes).

    Each walk ends with a page cut to its remaining count, a request that carries less than a
    full page. So each cut is placed, among the next few burn blocks past the target, where the
    walk's count is closest to whole pages.
    """
    total = sum(counts)
    cuts: list[int] = []
    start = 0
    while start < len(counts):
        end, count = start, 0
        while end < len(counts) and count < target:
            count += counts[end]
            end += 1
        if total - sum(counts[:end]) < target // 2:
            end = len(counts)  # no small walk at the end
        else:
            best, best_waste = end, (-count) % page_limit
            for extra in range(end, min(len(counts), end + CUT_LOOKAHEAD)):
                count += counts[extra]
                waste = (-count) % page_limit
                if waste < best_waste:
                    best, best_waste = extra + 1, waste
            end = best
        cuts.append(end)
        start = end
    return cuts
