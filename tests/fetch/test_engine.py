"""The window engine against an in-memory chain: exact results whatever the API does to pages."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest

from stxbf.codes import WindowState
from stxbf.fetch.engine import Engine, _Pass, _Window, split_range
from stxbf.fetch.windows import CompletedWindow
from stxbf.models import Page
from stxbf.words import utc_iso
from tests.fakes import FakeChain, make_row


async def run_engine(chain: FakeChain, **kwargs: object) -> tuple[list[CompletedWindow], object]:
    windows: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        windows.append(window)

    engine = Engine(
        chain,
        concurrency=kwargs.pop("concurrency", 8),  # type: ignore[arg-type]
        on_window=on_window,
        max_window_rows=kwargs.pop("max_window_rows", 500),  # type: ignore[arg-type]
        target_window_rows=kwargs.pop("target_window_rows", 400),  # type: ignore[arg-type]
        initial_span=kwargs.pop("initial_span", 86_400),  # type: ignore[arg-type]
    )
    result = await engine.run_pass(
        [(chain.start, chain.end)],
        head_start=kwargs.pop("head_start", None),  # type: ignore[arg-type]
        page_budget=kwargs.pop("page_budget", 10**9),  # type: ignore[arg-type]
    )
    return windows, result


def stored_ids(windows: list[CompletedWindow]) -> list[str]:
    return [row[0] for window in windows for row in window.rows]


def test_every_transaction_exactly_once_with_adjacent_windows() -> None:
    chain = FakeChain()
    windows, result = asyncio.run(run_engine(chain))
    ids = stored_ids(windows)
    assert len(ids) == len(set(ids)) == len(chain.rows)
    assert set(ids) == chain.ids(chain.start, chain.end)
    assert all(w.state == "verified" for w in windows)
    assert result.finished  # type: ignore[attr-defined]
    spans = sorted((w.start, w.end) for w in windows)
    assert spans[0][0] == chain.start and spans[-1][1] == chain.end
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
    assert all(w.total <= 500 for w in windows)  # large windows were split


def test_short_pages_are_asked_again_not_accepted() -> None:
    chain = FakeChain(seed=3, faults={"short": 0.2})
    windows, _ = asyncio.run(run_engine(chain))
    assert set(stored_ids(windows)) == chain.ids(chain.start, chain.end)
    assert all(w.state == "verified" for w in windows)


def test_growth_at_the_head_is_paged_not_skipped() -> None:
    chain = FakeChain(seed=4, tenures=30)
    chain.faults["drift"] = 0.3
    head_start = chain.end - 3000
    windows, _ = asyncio.run(run_engine(chain, head_start=head_start))
    head = [w for w in windows if w.state == "open"]
    assert len(head) == 1 and head[0].start == head_start
    assert len(set(stored_ids(windows))) == len(stored_ids(windows))
    # everything that existed when its window was finished is there; the head is re-checked later
    older = chain.ids(chain.start, head_start - 1)
    assert older <= set(stored_ids(windows))


def test_page_budget_stops_opening_windows() -> None:
    chain = FakeChain(seed=5)
    windows, result = asyncio.run(run_engine(chain, page_budget=10))
    assert result.budget_exhausted  # type: ignore[attr-defined]
    assert not result.finished  # type: ignore[attr-defined]
    for window in windows:
        assert {row[0] for row in window.rows} == chain.ids(window.start, window.end)


def test_stop_returns_promptly_with_only_complete_windows() -> None:
    chain = FakeChain(seed=6)

    async def scenario() -> tuple[list[CompletedWindow], object]:
        windows: list[CompletedWindow] = []

        async def on_window(window: CompletedWindow) -> None:
            windows.append(window)
            if len(windows) == 3:
                engine.stop()

        engine = Engine(
            chain, concurrency=4, on_window=on_window, max_window_rows=300, target_window_rows=200
        )
        result = await engine.run_pass(
            [(chain.start, chain.end)], head_start=None, page_budget=10**9
        )
        return windows, result

    windows, result = asyncio.run(scenario())
    assert result.stopped  # type: ignore[attr-defined]
    assert 3 <= len(windows) < 10  # what completes in the same moment is still committed
    for window in windows:
        assert {row[0] for row in window.rows} == chain.ids(window.start, window.end)


@pytest.mark.parametrize("concurrency", [1, 3, 32])
def test_any_concurrency_gives_the_same_set(concurrency: int) -> None:
    chain = FakeChain(seed=7, tenures=80)
    windows, _ = asyncio.run(run_engine(chain, concurrency=concurrency))
    assert sorted(stored_ids(windows)) == sorted(row[0] for row in chain.rows)


# --- the steps of a pass, one at a time: pages are handed to the pass directly, no requests ------


class NoRequests:
    async def page(
        self, *, start_time: int | None, end_time: int | None, offset: int = 0, limit: int = 50
    ) -> Page:
        raise AssertionError("a step test sends no request")


def make_pass(
    gaps: list[tuple[int, int]],
    *,
    head_start: int | None = None,
    settle_start: int | None = None,
    page_budget: int = 10**9,
    **engine_kwargs: int,
) -> tuple[_Pass, list[CompletedWindow]]:
    """A pass with page_limit 50, max_window_rows 500, target 400 and a span of 1000 s."""
    finished: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        finished.append(window)

    settings = {"max_window_rows": 500, "target_window_rows": 400, "initial_span": 1000}
    engine = Engine(NoRequests(), concurrency=4, on_window=on_window, **(settings | engine_kwargs))
    fetch_pass = _Pass(
        engine, gaps, head_start=head_start, page_budget=page_budget, settle_start=settle_start
    )
    return fetch_pass, finished


def open_window(fetch_pass: _Pass) -> _Window:
    window = fetch_pass.open_next()
    assert window is not None
    return window


def queued(fetch_pass: _Pass, window: _Window) -> list[int]:
    """The offsets of `window` waiting to be sent (stale entries of a restarted window aside)."""
    return sorted(
        offset
        for _, _, offset, generation, queued_window in fetch_pass.heap
        if queued_window is window and generation == window.generation
    )


def answer(
    fetch_pass: _Pass,
    window: _Window,
    offset: int,
    *,
    total: int,
    rows: int | None = None,
    ids: list[str] | None = None,
) -> None:
    """Hand `window` the page at `offset`: full (as many rows as `total` leaves) unless told."""
    if ids is None:
        count = min(50, max(0, total - offset)) if rows is None else rows
        ids = [f"{window.start}:{index}" for index in range(offset, offset + count)]
    page_rows = [make_row(tx_id, window.start, 1, n) for n, tx_id in enumerate(ids)]
    page = Page(total=total, offset=offset, limit=50, rows=page_rows)
    sent = [e for e in fetch_pass.heap if e[4] is window and e[2] == offset][:1]
    for entry in sent:  # as `dispatch` would have taken it off the queue
        fetch_pass.heap.remove(entry)
    heapq.heapify(fetch_pass.heap)
    asyncio.run(fetch_pass.handle(window, offset, page))


def test_the_head_is_cut_at_head_start_and_older_windows_to_the_span() -> None:
    fetch_pass, _ = make_pass([(0, 9999)], head_start=9000)
    head = open_window(fetch_pass)
    older = open_window(fetch_pass)
    assert (head.start, head.end, head.is_head) == (9000, 9999, True)
    assert (older.start, older.end, older.is_head) == (8000, 8999, False)
    assert fetch_pass.pending == [(0, 7999)]
    assert queued(fetch_pass, head) == queued(fetch_pass, older) == [0]  # their sizing pages


def test_no_window_opens_past_the_page_budget_or_the_open_window_bound() -> None:
    budgeted, _ = make_pass([(0, 9999)], page_budget=1)
    answer(budgeted, open_window(budgeted), 0, total=10)
    assert budgeted.open_next() is None
    bounded, _ = make_pass([(0, 9999)], max_open_windows=2)
    open_window(bounded)
    open_window(bounded)
    assert bounded.open_next() is None
    assert bounded.pending == [(0, 7999)]


def test_a_sizing_page_queues_every_other_offset_and_teaches_the_density() -> None:
    fetch_pass, _ = make_pass([(0, 999)])
    window = open_window(fetch_pass)
    answer(fetch_pass, window, 0, total=180)
    assert window.total == 180
    assert queued(fetch_pass, window) == [50, 100, 150]
    assert fetch_pass.engine.span == 400 * 1000 // 180


def test_an_oversized_sizing_page_splits_the_window_and_teaches_the_density() -> None:
    fetch_pass, finished = make_pass([(0, 9999)])
    window = open_window(fetch_pass)
    answer(fetch_pass, window, 0, total=2000)
    assert window not in fetch_pass.open_windows and not window.outstanding
    # the range goes back in SPLIT_WAYS pieces: the learned span (200 s) would cut it in 5
    pieces = [(start, start + 124) for start in range(9000, 10_000, 125)]
    assert fetch_pass.pending == [(0, 8999), *pieces]
    assert fetch_pass.engine.span == 400 * 1000 // 2000
    smaller = open_window(fetch_pass)
    assert (smaller.start, smaller.end) == (9875, 9999)  # the newest piece is cut next
    assert finished == [] and fetch_pass.result.windows_done == 0


def test_an_oversized_range_goes_back_whole_when_the_span_cuts_it_finer() -> None:
    assert split_range(0, 9999, 1000) == [(0, 9999)]  # the span cuts it in 10
    assert split_range(0, 9, 1) == [(0, 9)]
    assert split_range(0, 9, 4) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def round_trips_to_isolate(burst_at: int, gap: tuple[int, int]) -> int:
    """Round trips until the one second holding 2,000 rows (the rest of `gap` empty) is sized
    as its own window: each round, every open window's sizing page is answered."""
    fetch_pass, _ = make_pass([gap], max_open_windows=64, initial_span=gap[1] - gap[0] + 1)
    for round_trip in range(1, 40):
        while fetch_pass.open_next():
            pass
        sizing = sorted(
            (w for w in fetch_pass.open_windows if w.total is None and queued(fetch_pass, w)),
            key=lambda w: w.start,
        )
        for window in sizing:
            dense = window.start <= burst_at <= window.end
            answer(fetch_pass, window, 0, total=2000 if dense else 0)
            if window.total == 2000:
                assert window.start == window.end == burst_at
                return round_trip
    raise AssertionError("the dense second was never isolated")


@pytest.mark.parametrize("burst_at", [0, 4_321, 9_999, 17_777])
def test_a_dense_second_is_isolated_in_few_round_trips(burst_at: int) -> None:
    """A tenure's rows share one burn time: an oversized window is narrowed to it by splitting,
    one round trip a level. Cut only by the density learned (0.2 of the range each time) this
    took 11 to 12 round trips from 20,000 s (now 5 to 7); at the end of a pass nothing else is
    sent meanwhile (7,000/min at 300 ms of heavy-tailed latency: the pacer idled ~2.5 s)."""
    assert round_trips_to_isolate(burst_at, (0, 19_999)) <= 7


def test_the_head_window_is_never_split_and_grows_while_it_is_paged() -> None:
    fetch_pass, _ = make_pass([(0, 9999)], head_start=9000)
    head = open_window(fetch_pass)
    answer(fetch_pass, head, 0, total=560)  # oversized, but the head cannot be split
    assert head in fetch_pass.open_windows
    assert queued(fetch_pass, head) == list(range(50, 560, 50))
    assert fetch_pass.engine.span == 1000  # the head's density is not typical
    answer(fetch_pass, head, 550, total=640)  # the chain added 80 while we paged
    assert head.total == 640
    assert queued(fetch_pass, head) == [*range(50, 550, 50), 600]


def test_a_short_page_is_asked_again_then_the_window_is_suspect() -> None:
    fetch_pass, finished = make_pass([(0, 999)], max_short_retries=2)
    window = open_window(fetch_pass)
    answer(fetch_pass, window, 0, total=120)
    answer(fetch_pass, window, 50, total=120, rows=20)
    assert queued(fetch_pass, window) == [50, 100] and 50 in window.outstanding
    assert window.suspect is None
    answer(fetch_pass, window, 50, total=120, rows=20)
    assert window.short_retries == {50: 2}
    answer(fetch_pass, window, 50, total=120, rows=20)  # retries used up
    assert window.suspect == "page at offset 50 stays short"
    assert 50 not in window.outstanding and finished == []


def test_a_shrinking_total_marks_the_window_suspect_and_restarts_it() -> None:
    fetch_pass, finished = make_pass([(0, 999)])
    window = open_window(fetch_pass)
    answer(fetch_pass, window, 0, total=120)
    answer(fetch_pass, window, 50, total=100)
    assert window.suspect == "total fell from 120 to 100"
    answer(fetch_pass, window, 100, total=100)  # the last page: verify, then restart
    assert finished == []
    assert (window.generation, window.attempts, window.total) == (1, 1, None)
    assert window.suspect is None and window.rows == {}
    assert queued(fetch_pass, window) == [0]  # sized again; the old entries are stale


@pytest.mark.parametrize(
    ("head_start", "settle_start", "state", "settling"),
    [
        (None, None, WindowState.VERIFIED, 0),
        (None, 0, WindowState.OPEN, 1),  # inside the settle period
        (0, None, WindowState.OPEN, 0),  # the head
    ],
    ids=["verified", "settling", "head"],
)
def test_a_window_whose_count_matches_its_total_is_finished(
    head_start: int | None, settle_start: int | None, state: WindowState, settling: int
) -> None:
    fetch_pass, finished = make_pass([(0, 999)], head_start=head_start, settle_start=settle_start)
    window = open_window(fetch_pass)
    for offset in (0, 100, 50):  # in any order
        answer(fetch_pass, window, offset, total=120)
    [completed] = finished
    assert (completed.start, completed.end, completed.total, completed.pages) == (0, 999, 120, 3)
    assert completed.state == state and len(completed.rows) == 120
    assert window not in fetch_pass.open_windows
    result = fetch_pass.result
    assert (result.windows_done, result.windows_verified, result.windows_settling) == (
        1,
        state == WindowState.VERIFIED,
        settling,
    )


def test_a_window_is_not_cut_across_the_settle_start() -> None:
    """Its older part can be verified now; straddling, the whole window would stay open (and be
    fetched again by every run): with one request in flight at a slow tier, the first window
    after the head was the whole range."""
    fetch_pass, _ = make_pass([(0, 999)], settle_start=500)
    window = open_window(fetch_pass)
    assert (window.start, window.end) == (500, 999)
    assert fetch_pass.pending == [(0, 499)]


def test_a_window_that_stays_inconsistent_is_given_up_as_incomplete() -> None:
    fetch_pass, finished = make_pass([(0, 999)], max_window_attempts=2)
    window = open_window(fetch_pass)
    duplicated = ["0xa", "0xb", "0xa"]  # three rows, two distinct tx_ids
    answer(fetch_pass, window, 0, total=3, ids=duplicated)
    assert finished == [] and window.attempts == 1 and queued(fetch_pass, window) == [0]
    answer(fetch_pass, window, 0, total=3, ids=duplicated)
    [completed] = finished
    assert completed.state == WindowState.INCOMPLETE and completed.total == 3
    assert fetch_pass.result.windows_incomplete == 1 and not fetch_pass.result.finished


def test_dispatch_fills_the_request_slots_and_drops_stale_pages() -> None:
    asked: list[tuple[int | None, int]] = []

    class Recorder:
        async def page(
            self, *, start_time: int | None, end_time: int | None, offset: int = 0, limit: int = 50
        ) -> Page:
            asked.append((start_time, offset))
            return Page(total=0, offset=offset, limit=limit)

    async def scenario() -> None:
        fetch_pass, _ = make_pass([(0, 9999)])
        fetch_pass.engine.source = Recorder()
        window = open_window(fetch_pass)
        window.scheduled_upto = 50
        fetch_pass.schedule_to(window, 400)  # offsets 50..350 behind the sizing page
        window.reset()  # a restart: everything queued so far is stale
        fetch_pass.push(window, 0)
        fetch_pass.dispatch()
        await asyncio.gather(*fetch_pass.tasks)
        # the restarted window's sizing page, then new windows' sizing pages up to 4 slots
        assert [offset for _, offset in asked] == [0, 0, 0, 0]
        assert [start for start, _ in asked] == [9000, 8000, 7000, 6000]

    asyncio.run(scenario())


def test_a_refetched_window_is_logged_with_utc_times(caplog: pytest.LogCaptureFixture) -> None:
    """`refetching window 1796055895..1796115727` told a person nothing: the log writes times."""
    start = 1796055000
    fetch_pass, _ = make_pass([(start, start + 999)], max_window_attempts=3)
    window = open_window(fetch_pass)
    with caplog.at_level("INFO", logger="stxbf.fetch.engine"):
        answer(fetch_pass, window, 0, total=3, ids=["0xa", "0xb", "0xa"])
    [message] = [r.getMessage() for r in caplog.records if "refetching" in r.getMessage()]
    assert message.startswith(f"refetching window {utc_iso(start)} .. {utc_iso(start + 999)}:")
    assert str(start) not in message
