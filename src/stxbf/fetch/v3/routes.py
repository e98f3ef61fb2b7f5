"""The v2 and v3 routes that the v3 source reads, with one method per route. Each request is
counted by kind and into the window that asked for it. `Inconsistent` is what a disagreement
between answers raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.models_v3 import (
    Block,
    BurnBlock,
    SummaryPage,
    parse_block,
    parse_burn_block_page,
    parse_burn_block_total,
    parse_summary_page,
)

V3_TX_PATH = "/extended/v3/transactions"
BURN_BLOCKS_PATH = "/extended/v2/burn-blocks"
BLOCKS_PATH = "/extended/v2/blocks"
BURN_PAGE_LIMIT = 30  # pagination.ts ResourceType.BurnBlock

T = TypeVar("T")
# The answers a window used (its walks run in tasks that inherit the window's counter).
_WINDOW_PAGES: ContextVar[list[int] | None] = ContextVar("v3_window_pages", default=None)


class Inconsistent(Exception):
    """Raised when a walk disagrees with the burn blocks (a count, a height, a time): the walk
    or the window is done again."""


@dataclass
class V3Stats:
    """Counts the requests by kind: tx pages carry the data, and the rest is the cost of
    proving it."""

    tx_pages: int = 0
    burn_pages: int = 0
    block_lookups: int = 0
    rewalks: int = 0
    rebuilds: int = 0

    @property
    def overhead_requests(self) -> int:
        """Return the requests that carried no transactions."""
        return self.burn_pages + self.block_lookups


class V3Routes:
    """Sends the v2 and v3 requests over the shared request path (`PageSource`: pacing,
    retries, 429s, quotas)."""

    def __init__(self, requests: PageSource) -> None:
        self.requests = requests
        self.stats: FetchStats = requests.stats
        self.v3_stats = V3Stats()

    @staticmethod
    @contextlib.contextmanager
    def window_pages() -> Iterator[list[int]]:
        """Count every answer that the current task (and the tasks it starts) uses into the
        list's one item."""
        pages = [0]
        token = _WINDOW_PAGES.set(pages)
        try:
            yield pages
        finally:
            _WINDOW_PAGES.reset(token)

    async def _fetch(
        self,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], T],
        check: Callable[[T], str | None] | None = None,
    ) -> T:
        """Fetch through `PageSource.fetch`, and count the answer into the window whose walk
        asked for it (see `window_pages`)."""
        value = await self.requests.fetch(path, params, parse, check)
        window_pages = _WINDOW_PAGES.get()
        if window_pages is not None:
            window_pages[0] += 1
        return value

    async def burn_page(self, offset: int) -> list[BurnBlock]:
        """Fetch one page of the burn-block list, newest first."""
        self.v3_stats.burn_pages += 1
        return await self._fetch(
            BURN_BLOCKS_PATH,
            {"limit": BURN_PAGE_LIMIT, "offset": offset},
            parse_burn_block_page,
        )

    async def burn_block_count(self) -> int:
        """Return how many burn blocks the list holds (its `total`)."""
        return await self._fetch(
            BURN_BLOCKS_PATH, {"limit": 1, "offset": 0}, parse_burn_block_total
        )

    async def block(self, block_hash: str) -> Block:
        """Fetch one Stacks block by hash: its height anchors a burn block's heights."""
        self.v3_stats.block_lookups += 1
        return await self._fetch(f"{BLOCKS_PATH}/{block_hash}", {}, parse_block)

    async def summary_page(self, cursor: str, limit: int) -> SummaryPage:
        """Fetch `limit` txs from `cursor` down. A short page before the chain's end is asked
        for again."""

        def short(page: SummaryPage) -> str | None:
            if len(page.rows) < limit and page.next_cursor is not None:
                return f"short page ({len(page.rows)} of {limit}) at cursor {cursor}"
            if len(page.rows) > limit:
                return f"page longer than asked ({len(page.rows)} of {limit})"
            return None

        self.v3_stats.tx_pages += 1
        page = await self._fetch(
            V3_TX_PATH, {"limit": limit, "cursor": cursor}, parse_summary_page, short
        )
        self.stats.transactions += len(page.rows)
        return page
