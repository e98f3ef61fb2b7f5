"""One cursor walk down `/extended/v3/transactions` over a span of Stacks heights, proven by
count: every tx must sit in its burn block's heights, and every burn block's txs must number
its `total_tx_count`.

A walk starts at `TOP:2147483647:32767` and asks for pages that end exactly at its bottom (its
count is known). `TOP:0:0` would do for Nakamoto blocks (resolveTransactionCursor in
`src/datastore/v3/helpers.ts` turns a cursor naming no tx into `(TOP, I32_MAX, 0x7fff)`), but
before Nakamoto a microblock tx can sit exactly at `(TOP, 0, 0)` and the walk would skip the rest
of block TOP; the explicit key includes every tx of block TOP, always. (Nothing larger: the
parts reach PostgreSQL as they are and tx_index is a smallint; `TOP:0:32768` is a 500 on v9.)
"""

from __future__ import annotations

from collections import Counter

from stxbf.fetch.v3.heights import Anchors, Span
from stxbf.fetch.v3.routes import Inconsistent, V3Requests
from stxbf.models import TX_COLUMN_NAMES, Row
from stxbf.models_v3 import SummaryPage

_HASH = TX_COLUMN_NAMES.index("block_hash")
I32_MAX = 2_147_483_647  # a cursor's microblock_sequence: a Nakamoto tx's, the largest there is
MAX_TX_INDEX = 0x7FFF  # a cursor's tx_index: the largest smallint


async def walk(span: Span, requests: V3Requests, anchors: Anchors, page_limit: int) -> list[Row]:
    """The span's txs, newest first; `Inconsistent` when a page or a count disagrees."""
    remaining = span.expected
    cursor = f"{span.top}:{I32_MAX}:{MAX_TX_INDEX}"
    rows: list[Row] = []
    counts: Counter[int] = Counter()
    while remaining > 0:
        page = await requests.tx_page(cursor, min(page_limit, remaining))
        if not page.rows:
            raise Inconsistent(f"no transactions below {cursor}, {remaining} expected")
        _take(span, page, rows, counts)
        # the page's lowest tx places the next (older) window's heights without a lookup
        anchors.note(page.rows[-1][_HASH], page.keys[-1].block_height)
        remaining -= len(page.rows)
        if remaining > 0:
            if page.next_cursor is None:
                raise Inconsistent(f"the chain ended {remaining} transactions early")
            cursor = page.next_cursor
    wrong = [b.height for b in span.blocks if counts[b.height] != b.total_tx_count]
    if wrong or len({row[0] for row in rows}) != len(rows):
        raise Inconsistent(f"counts differ from total_tx_count in burn blocks {wrong[:5]}")
    return rows


def _take(span: Span, page: SummaryPage, rows: list[Row], counts: Counter[int]) -> None:
    """Add the page's rows, counted by burn block, each checked against its block's heights."""
    for row, key in zip(page.rows, page.keys, strict=True):
        low_high = span.ranges.get(key.burn_block_height)
        if low_high is None or not low_high[0] <= key.block_height <= low_high[1]:
            raise Inconsistent(
                f"tx at height {key.block_height} (burn {key.burn_block_height}) "
                f"outside heights {span.bottom}..{span.top}"
            )
        counts[key.burn_block_height] += 1
        rows.append(row)
