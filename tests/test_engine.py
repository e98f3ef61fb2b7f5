"""The window engine against an in-memory chain: exact results whatever the API does to pages."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from stxbf.fetch.engine import CompletedWindow, Engine
from tests.fakes import FakeChain


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
