"""V3Source against the in-process simulator: exact windows, proven by count, whatever happens.

Ground truth is the simulator's chain (the v1 source's answer for the same window); a window must
hold exactly the canonical txs whose burn_block_time is in it, even when Bitcoin times run
backwards, when pages fail or come back short, and when a count does not match (then it is
re-walked, and a window that cannot be proven comes back `incomplete`, never short).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from tenacity import wait_exponential

from stxbf.fetch import pages
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.v3 import V3Engine, V3Source
from stxbf.fetch.windows import CompletedWindow
from stxbf.simulator import Chain, SimApi, SimConfig, SimTransport

END = 1_750_000_000


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "_backoff", wait_exponential(multiplier=0.001, max=0.005))


def make_source(
    api: SimApi, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> V3Source:
    client = ApiClient("http://sim", transport=transport or SimTransport(api, clock=lambda: END))
    return V3Source(client, Pacer(rpm=None, fixed=True), give_up_after=30, **options)


def truth(chain: Chain, start: int, end: int) -> set[str]:
    """By brute force over tenures, so it holds even when burn times are not sorted."""
    ids: set[str] = set()
    for tenure, burn_time in enumerate(chain.tenure_burn_time):
        if start <= burn_time <= end:
            first = chain.tenure_first_tx[tenure]
            stop = chain.tenure_first_tx[tenure + 1] if tenure + 1 < chain.n_tenures else len(chain)
            ids.update(chain.tx_id(i) for i in range(first, stop))
    return ids


def windows(chain: Chain, count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    first, last = chain.tenure_burn_time[0], chain.tenure_burn_time[-1]
    picked = []
    for _ in range(count):
        end = rng.randint(first - 600, last + 600)
        picked.append((end - rng.choice([0, 1, 600, 3600, 5 * 3600, 30_000]), end))
    return sorted(picked, key=lambda w: -w[1])  # newest first, as the engine hands them out


def fetch_all(source: V3Source, spans: list[tuple[int, int]]) -> list[CompletedWindow]:
    async def run() -> list[CompletedWindow]:
        return [await source.window(start, end) for start, end in spans]

    return asyncio.run(run())


def assert_exact(chain: Chain, done: list[CompletedWindow]) -> None:
    for window in done:
        expected = truth(chain, window.start, window.end)
        got = [row[0] for row in window.rows]
        assert len(got) == len(set(got)) == window.total
        assert set(got) == expected, (window.start, window.end, len(got), len(expected))
        assert window.state in ("verified", "open")


def test_many_random_windows_are_exactly_the_v1_set() -> None:
    api = SimApi(SimConfig(days=4, tx_per_day=2500, end_time=END, seed=3), epoch=END)
    source = make_source(api)
    done = fetch_all(source, windows(api.chain, 40, seed=1))
    assert_exact(api.chain, done)
    for window in done:  # the v1 ground truth agrees too (sorted burn times here)
        assert {row[0] for row in window.rows} == set(api.chain.tx_ids(window.start, window.end))
    assert source.v3_stats.rewalks == source.v3_stats.rebuilds == 0


def test_windows_run_concurrently_share_the_pacer_and_stay_exact() -> None:
    api = SimApi(SimConfig(days=2, tx_per_day=3000, end_time=END, seed=4), epoch=END)
    source = make_source(api, concurrency=6)
    spans = windows(api.chain, 12, seed=2)

    async def run() -> list[CompletedWindow]:
        return list(await asyncio.gather(*(source.window(s, e) for s, e in spans)))

    done = asyncio.run(run())
    assert_exact(api.chain, done)
    # each window counts its own answers, though they were all in flight together
    assert sum(w.pages for w in done) == source.stats.pages


def test_burn_times_that_run_backwards_are_still_exact() -> None:
    """Bitcoin times need only beat the median of the last 11: some tenures here carry a time
    up to 50 min later than the next ones, so a window's txs sit outside its obvious heights."""
    chain = Chain(seed=5, days=3, tx_per_day=2000, end_time=END)
    times = chain.tenure_burn_time
    rng = random.Random(9)
    for tenure in range(5, len(times) - 5, 7):
        times[tenure] = times[tenure + rng.randint(1, 5)] + rng.randint(1, 300)
    assert any(a > b for a, b in itertools.pairwise(times))
    api = SimApi(SimConfig(end_time=END), chain=chain, epoch=END)
    source = make_source(api)
    spans = windows(chain, 30, seed=3)
    # windows whose edge falls between a displaced tenure and its neighbours
    for tenure in range(5, len(times) - 5, 7 * 9):
        spans.append((times[tenure] - 1, times[tenure]))
        spans.append((times[tenure + 1], times[tenure] - 1))
    spans.sort(key=lambda w: -w[1])
    assert_exact(chain, fetch_all(source, spans))


def test_faults_are_retried_and_short_pages_asked_again() -> None:
    kinds = ("500", "502", "503", "504", "drop", "truncate", "malformed", "short", "stall")
    config = SimConfig(days=2, tx_per_day=2500, end_time=END, fault_rate=0.2, fault_kinds=kinds)
    api = SimApi(config, epoch=END)
    source = make_source(api)
    assert_exact(api.chain, fetch_all(source, windows(api.chain, 10, seed=4)))
    assert api.faults["short"] > 0 and source.stats.retries > 0


class Tamper(httpx.AsyncBaseTransport):
    """Passes requests to the simulator, letting a test change one on the way."""

    def __init__(self, api: SimApi, edit: Callable[[httpx.Request, bytes], bytes]) -> None:
        self.inner = SimTransport(api, clock=lambda: END)
        self.edit = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = self.edit(request, response.content)
        return httpx.Response(
            response.status_code, headers={"content-type": "application/json"}, content=body
        )


def test_a_walk_that_skips_a_block_is_walked_again() -> None:
    """A page that starts one block too low is full and well formed; only the counts show it."""
    api = SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END), epoch=END)
    spoiled: list[str] = []

    def skip_first_block(request: httpx.Request, body: bytes) -> bytes:
        if request.url.path != "/extended/v3/transactions" or spoiled:
            return body
        cursor = request.url.params["cursor"]
        height, micro, index = cursor.split(":")
        spoiled.append(cursor)
        limit = request.url.params["limit"]
        lower = f"/extended/v3/transactions?limit={limit}&cursor={int(height) - 1}:{micro}:{index}"
        return api.handle("GET", lower, {}, now=END).body

    source = make_source(api, Tamper(api, skip_first_block))
    times = api.chain.tenure_burn_time
    done = fetch_all(source, [(times[20], times[60])])
    assert spoiled and source.v3_stats.rewalks >= 1
    assert_exact(api.chain, done)


def test_a_count_that_never_matches_leaves_the_window_incomplete_not_short() -> None:
    api = SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END), epoch=END)
    times = api.chain.tenure_burn_time
    liar = 860_000 + 40

    def inflate(request: httpx.Request, body: bytes) -> bytes:
        if not request.url.path.startswith("/extended/v2/burn-blocks"):
            return body
        page = orjson.loads(body)
        for block in page.get("results", [page]):
            if block.get("burn_block_height") == liar:
                block["total_tx_count"] += 1
        return orjson.dumps(page)

    source = make_source(api, Tamper(api, inflate))
    done = fetch_all(source, [(times[30], times[50]), (times[5], times[10])])
    assert done[0].state == "incomplete" and done[0].rows == []
    assert source.v3_stats.rebuilds >= 1
    assert_exact(api.chain, done[1:])  # the windows that can be proven still are


def test_growth_at_the_head_during_walks() -> None:
    api = SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END, growth=2.0), epoch=END)
    clock = [float(END)]

    class Growing(SimTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            clock[0] += 15.0  # the chain moves while we walk
            return await super().handle_async_request(request)

    source = make_source(api, Growing(api, clock=lambda: clock[0]))
    times = api.chain.tenure_burn_time
    head_start = times[-3]
    spans = [(head_start, END + 10 * 86400), (times[40], head_start - 1), (times[5], times[39])]

    async def run() -> list[CompletedWindow]:
        head = await source.window(*spans[0], is_head=True)
        return [head, *[await source.window(s, e) for s, e in spans[1:]]]

    head, *older = asyncio.run(run())
    assert head.state == "open"
    assert {row[0] for row in head.rows} <= truth(api.chain, *spans[0])
    assert len(api.chain) > api.chain.tenure_first_tx[len(times) - 1]  # it did grow
    assert_exact(api.chain, older)


def test_an_empty_window_is_verified_with_no_transactions() -> None:
    api = SimApi(SimConfig(days=1, tx_per_day=2000, end_time=END), epoch=END)
    times = api.chain.tenure_burn_time
    done = fetch_all(make_source(api), [(times[10] + 1, times[11] - 1)])
    assert done[0].total == 0 and done[0].rows == [] and done[0].state == "verified"


def test_v3_engine_cuts_gaps_newest_first_with_a_head_window_and_commits_each() -> None:
    api = SimApi(SimConfig(days=2, tx_per_day=2000, end_time=END), epoch=END)
    first, last = api.chain.tenure_burn_time[0], api.chain.tenure_burn_time[-1]
    committed: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        committed.append(window)

    engine = V3Engine(make_source(api), on_window=on_window, target_window_rows=600)
    head_start = last - 2 * 3600
    result = asyncio.run(engine.run_pass([(first, last)], head_start=head_start, page_budget=10**6))
    assert result.finished and result.windows_done == len(committed) > 3
    assert [w.state for w in committed].count("open") >= 1
    assert all(w.state == "verified" for w in committed if w.end < head_start - 7200)
    assert committed[0].start == head_start  # newest first, the head on its own
    assert_exact(api.chain, committed)
    ids = [row[0] for w in committed for row in w.rows]
    assert sorted(ids) == sorted(truth(api.chain, first, last))


def test_v3_engine_page_budget_and_stop() -> None:
    api = SimApi(SimConfig(days=2, tx_per_day=2000, end_time=END), epoch=END)
    first, last = api.chain.tenure_burn_time[0], api.chain.tenure_burn_time[-1]
    committed: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        committed.append(window)

    engine = V3Engine(make_source(api), on_window=on_window, initial_span=3600)
    engine.target_window_rows = 100  # keep windows small
    result = asyncio.run(engine.run_pass([(first, last)], head_start=None, page_budget=5))
    assert result.budget_exhausted and not result.finished and committed

    async def stop_after_first(window: CompletedWindow) -> None:
        committed.append(window)
        stopper.stop()

    stopper = V3Engine(make_source(api), on_window=stop_after_first, initial_span=3600)
    result = asyncio.run(stopper.run_pass([(first, last)], head_start=None, page_budget=10**6))
    assert result.stopped and not result.finished and stopper.in_flight == 0


def test_one_database_filled_by_v1_and_v3_in_turn_holds_each_tx_once() -> None:
    """Windows are keyed by burn time alike: a database started on v1 goes on with v3 and back,
    and the table ends up exactly the chain's, without a duplicate."""
    from stxbf.fetch.engine import Engine
    from stxbf.fetch.pages import PageSource
    from stxbf.store.db import Store, WindowRecord

    api = SimApi(SimConfig(days=2, tx_per_day=2500, end_time=END), epoch=END)
    times = api.chain.tenure_burn_time
    start, end = times[0], times[-1] - 3 * 3600
    third = (end - start) // 3
    v1_client = ApiClient("http://sim", transport=SimTransport(api, clock=lambda: END))
    v1 = PageSource(v1_client, Pacer(rpm=None, fixed=True), give_up_after=30)
    v3 = make_source(api)
    store = Store.open(":memory:")

    async def commit(window: CompletedWindow) -> None:
        record = WindowRecord(
            window.start, window.end, window.total, len(window.rows), window.state, window.pages
        )
        store.commit_window(record, window.rows)

    async def run() -> None:
        newest = (end - third + 1, end)
        middle = (start + third + 1, end - third)
        oldest = (start, start + third)
        await Engine(v1, concurrency=4, on_window=commit).run_pass(
            [newest], head_start=None, page_budget=10**6
        )
        await V3Engine(v3, on_window=commit, initial_span=5 * 3600).run_pass(
            [middle], head_start=None, page_budget=10**6
        )
        await Engine(v1, concurrency=4, on_window=commit).run_pass(
            [oldest], head_start=None, page_budget=10**6
        )
        # and a v1 window fetched again by v3 replaces its rows, adding none
        await commit(await v3.window(newest[0], newest[0] + 4 * 3600))

    asyncio.run(run())
    assert store.tx_ids(start, end) == set(api.chain.tx_ids(start, end))
    assert store.duplicated_windows() == []
    assert {w.state for w in store.windows()} == {"verified"}
    assert store.summary(wallets=False).transactions == api.chain.count(start, end)


def test_with_v1_switched_off_v1_says_gone_and_v3_still_fetches_exactly() -> None:
    from stxbf.errors import ApiGone

    api = SimApi(SimConfig(days=1, tx_per_day=2000, end_time=END, v1_gone=True), epoch=END)
    client = ApiClient("http://sim", transport=SimTransport(api, clock=lambda: END))
    with pytest.raises(ApiGone):
        asyncio.run(client.tx_page(limit=1))
    times = api.chain.tenure_burn_time
    assert_exact(api.chain, fetch_all(make_source(api), [(times[10], times[40])]))


def test_v3_engine_hands_on_no_incomplete_window() -> None:
    """An unprovable window has no rows; committing it would empty its range in the store."""
    api = SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END), epoch=END)
    times = api.chain.tenure_burn_time

    def inflate_all(request: httpx.Request, body: bytes) -> bytes:
        if not request.url.path.startswith("/extended/v2/burn-blocks"):
            return body
        page = orjson.loads(body)
        for block in page.get("results", [page]):
            block["total_tx_count"] += 1
        return orjson.dumps(page)

    committed: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        committed.append(window)

    engine = V3Engine(make_source(api, Tamper(api, inflate_all)), on_window=on_window)
    result = asyncio.run(
        engine.run_pass([(times[10], times[60])], head_start=None, page_budget=10**6)
    )
    assert result.windows_incomplete >= 1 and not result.finished
    assert all(w.state != "incomplete" for w in committed)


def test_oldest_transaction_time_reads_the_bottom_of_the_burn_block_list() -> None:
    chain = Chain(seed=8, days=3, tx_per_day=2000, end_time=END)
    times = chain.tenure_burn_time
    times[1] = times[0] - 500  # a Bitcoin time earlier than its parent's, near the bottom
    api = SimApi(SimConfig(end_time=END), chain=chain, epoch=END)
    source = make_source(api)
    assert asyncio.run(source.oldest_transaction_time()) == min(times)
    # and the source still fetches windows exactly afterwards
    assert_exact(chain, fetch_all(source, [(times[2], times[30])]))
