"""The preflight asks, before the first window, where the chain's history begins and how much
the range holds.

The first request is also the first contact: a wrong URL or a silent port ends the run in
seconds (`connect_attempts=3`), before anything is written.
"""

from __future__ import annotations

import logging

from stxbf.errors import ApiGone, ApiNotStacks, ApiRejected
from stxbf.fetch.v3 import BURN_BLOCKS_PATH
from stxbf.models import BURN_TIME_INDEX
from stxbf.models_v3 import parse_burn_block_page
from stxbf.runner.plan import RangePlan
from stxbf.runner.request_path import RequestPath
from stxbf.words import utc_iso

log = logging.getLogger(__name__)


async def preflight(request_path: RequestPath, plan: RangePlan) -> None:
    """Ask the source in use about the planned range; under `auto`, move to v3 if v1 is gone."""
    if request_path.source == "v1":
        try:
            await _preflight_v1(request_path, plan)
            return
        except (ApiGone, ApiNotStacks) as exc:
            if not request_path.may_switch(exc):
                raise
            request_path.switch_to_v3(exc)
    await _preflight_v3(request_path, plan)


def _note_chain_start(plan: RangePlan, first: int) -> None:
    if first > plan.range_start:
        plan.chain_start = first
        log.warning(
            "the chain's history begins at %s: no data older than that, so the target "
            "is reached at the chain's start",
            utc_iso(first),
        )


async def _preflight_v1(request_path: RequestPath, plan: RangePlan) -> None:
    """Ask v1, in one-row requests, where the chain's history begins and what the range holds."""
    first = await _oldest_transaction_time(request_path, plan)
    if first is not None:
        _note_chain_start(plan, first)
    sized = await request_path.pages.page(
        start_time=plan.effective_start,
        end_time=plan.range_end,
        limit=1,
        give_up_after=request_path.params.give_up_after,
    )
    plan.expected_total = sized.total
    log.info(
        "range %s .. %s holds %d transactions (API total)",
        utc_iso(plan.range_start),
        utc_iso(plan.range_end),
        sized.total,
    )


async def _oldest_transaction_time(request_path: RequestPath, plan: RangePlan) -> int | None:
    """Return the burn_block_time of the API's oldest transaction (past the range's end if it
    has none)."""
    try:
        oldest = await request_path.pages.page(
            start_time=None,
            end_time=None,
            limit=1,
            order="asc",
            sort_by="burn_block_time",
            give_up_after=request_path.params.give_up_after,
            connect_attempts=3,
        )
    except ApiRejected as exc:
        if exc.status != 400:
            raise
        # Only naming the chain's start depends on this query: windows before the chain's
        # first transaction verify as empty all the same.
        log.warning("the API cannot list its oldest transaction (%s); going on", exc.message)
        return None
    if not oldest.rows:
        log.warning("the API reports no transactions at all")
        return plan.range_end + 1
    first = int(oldest.rows[0][BURN_TIME_INDEX])
    if first > plan.range_start:
        # Trust, but count: nothing may exist between the range's start and that row, or the
        # API did not sort as asked and there is no chain start inside the range.
        before = await request_path.pages.page(
            start_time=plan.range_start, end_time=first - 1, limit=1, give_up_after=None
        )
        if before.total:
            log.warning("the API's oldest-first answer is not the oldest; not a chain start")
            return None
    return first


async def _preflight_v3(request_path: RequestPath, plan: RangePlan) -> None:
    """Find the chain's start from the bottom of the burn-block list, without v1.

    The range's total stays unknown (no ETA): v3's `total` is the chain's, and summing the
    burn blocks' `total_tx_count` over a year would take ~1,750 requests before the first
    window; each window is still proven by its own count.
    """
    # The first contact, with v1's fail-fast rule: a wrong URL ends the run in seconds.
    await request_path.pages.fetch(
        BURN_BLOCKS_PATH,
        {"limit": 1},
        parse_burn_block_page,
        give_up_after=request_path.params.give_up_after,
        connect_attempts=3,
    )
    first = await request_path.v3().oldest_transaction_time()
    if first is None:
        log.warning("the API reports no transactions at all")
        first = plan.range_end + 1
    _note_chain_start(plan, first)
    log.info(
        "range %s .. %s: its total is not asked up front on v3 (each window is proven by "
        "the burn blocks' counts)",
        utc_iso(plan.range_start),
        utc_iso(plan.range_end),
    )
