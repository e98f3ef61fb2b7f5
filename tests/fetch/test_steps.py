"""The rules both engines share (`fetch/windows.py`) and the v3 steps that need no request, each
tested alone: where a window is cut, when it settles, how a pass counts it, the span learned from
density, how burn blocks are placed on Stacks heights and cut into walks."""

from __future__ import annotations

import asyncio
import itertools
from typing import NamedTuple

import pytest

from stxbf.codes import WindowState
from stxbf.fetch.v3.engine import V3Engine, _V3Pass
from stxbf.fetch.v3.heights import cut
from stxbf.fetch.windows import (
    MAX_SPAN,
    MIN_SPAN,
    CompletedWindow,
    PassResult,
    WindowEngine,
    WindowPass,
)
from stxbf.models_v3 import BurnBlock


async def _ignore(window: object) -> None:
    """An `on_window` that keeps nothing."""


def make_pass(gaps: list[tuple[int, int]], **plan: int | None) -> WindowPass[WindowEngine]:
    engine = WindowEngine(on_window=_ignore, initial_span=1000, target_window_rows=400)
    return WindowPass(
        engine,
        gaps,
        head_start=plan.get("head_start"),
        page_budget=10**9,
        settle_start=plan.get("settle_start"),
    )


class Cut(NamedTuple):
    gaps: list[tuple[int, int]]
    head_start: int | None
    window: tuple[int, int, bool]
    left: list[tuple[int, int]]


CUTS = {
    "head-at-head-start": Cut([(0, 9999)], 9000, (9000, 9999, True), [(0, 8999)]),
    "older-to-the-span": Cut([(0, 8999)], 9000, (8000, 8999, False), [(0, 7999)]),
    "short-gap-whole": Cut([(0, 99), (500, 599)], None, (500, 599, False), [(0, 99)]),
    "all-head-whole": Cut([(9500, 12000)], 9000, (9500, 12000, True), []),
}


@pytest.mark.parametrize("case", CUTS.values(), ids=CUTS.keys())
def test_windows_are_cut_from_the_newest_end(case: Cut) -> None:
    fetch_pass = make_pass(case.gaps, head_start=case.head_start)
    assert fetch_pass.cut_window(1000) == case.window
    assert fetch_pass.pending == case.left


def test_only_windows_older_than_the_head_settle() -> None:
    fetch_pass = make_pass([], settle_start=5000)
    assert fetch_pass.settles(5000, is_head=False)
    assert not fetch_pass.settles(4999, is_head=False)
    assert not fetch_pass.settles(6000, is_head=True)
    assert not make_pass([]).settles(6000, is_head=False)


def test_a_pass_counts_each_window_once() -> None:
    result = PassResult()
    result.count(WindowState.VERIFIED, settling=False)
    result.count(WindowState.OPEN, settling=True)
    result.count(WindowState.OPEN, settling=False)  # the head
    result.count(WindowState.INCOMPLETE, settling=False)
    assert (result.windows_done, result.windows_verified) == (3, 1)
    assert (result.windows_settling, result.windows_incomplete) == (1, 1)
    assert not result.finished


@pytest.mark.parametrize(
    ("seconds", "total", "span"),
    [(1000, 800, 500), (1000, 0, 4000), (1000, 10**9, MIN_SPAN), (10**6, 1, MAX_SPAN)],
    ids=["denser", "empty-quadruples", "floor", "ceiling"],
)
def test_the_span_follows_the_density(seconds: int, total: int, span: int) -> None:
    engine = WindowEngine(on_window=_ignore, initial_span=1000, target_window_rows=400)
    engine.learn_span(seconds, total)
    assert engine.span == span


def test_no_target_keeps_the_span() -> None:
    engine = WindowEngine(on_window=_ignore, initial_span=1000, target_window_rows=None)
    engine.learn_span(1000, 10**6)
    assert engine.span == 1000


def burn_blocks(counts: list[int], stacks_per_burn: int = 2) -> list[BurnBlock]:
    """Burn blocks newest first, each with `stacks_per_burn` Stacks blocks."""
    n = len(counts)
    return [
        BurnBlock(
            height=n - i,
            hash=f"b{n - i}",
            time=1000 * (n - i),
            stacks_blocks=tuple(f"s{n - i}-{j}" for j in range(stacks_per_burn)),
            total_tx_count=count,
        )
        for i, count in enumerate(counts)
    ]


def test_height_ranges_cover_every_burn_block_on_adjacent_heights() -> None:
    blocks = burn_blocks([100] * 20)
    ranges = cut(blocks, 500, walks=4, min_pages=1, page_limit=50)
    assert [b for heights in ranges for b in heights.blocks] == blocks
    assert ranges[0].top == 500 and ranges[-1].bottom == 500 - 2 * 20 + 1
    assert all(upper.bottom == lower.top + 1 for upper, lower in itertools.pairwise(ranges))
    assert sum(heights.expected for heights in ranges) == 2000
    first = ranges[0]
    assert first.block_heights[blocks[0].height] == (499, 500)


def test_no_small_walk_is_left_at_the_end() -> None:
    ranges = cut(burn_blocks([50] * 9), 100, walks=2, min_pages=1, page_limit=50)
    assert [heights.expected for heights in ranges] == [250, 200]
    single = cut(burn_blocks([50] * 3), 100, walks=8, min_pages=8, page_limit=50)
    assert len(single) == 1


class StubSource:
    """What `_V3Pass` reads of a V3Source, with windows that finish at once."""

    def __init__(self) -> None:
        self.preparing = self.active_walks = 0
        self.concurrency = 8
        self.asked: list[tuple[int, int, bool]] = []

    async def window(self, start: int, end: int, *, is_head: bool = False) -> CompletedWindow:
        self.asked.append((start, end, is_head))
        state = WindowState.OPEN if is_head else WindowState.VERIFIED
        return CompletedWindow(start, end, 0, [], state, 1)


def make_v3_pass(
    gaps: list[tuple[int, int]], **plan: int | None
) -> tuple[_V3Pass, StubSource, list[CompletedWindow]]:
    source = StubSource()
    handed: list[CompletedWindow] = []

    async def on_window(window: CompletedWindow) -> None:
        handed.append(window)

    engine = V3Engine(source, on_window=on_window, initial_span=1000)  # type: ignore[arg-type]
    fetch_pass = _V3Pass(
        engine,
        gaps,
        head_start=plan.get("head_start"),
        page_budget=10**9,
        settle_start=plan.get("settle_start"),
    )
    return fetch_pass, source, handed


def test_v3_windows_in_the_settle_period_are_asked_open_and_counted_settling() -> None:
    async def scenario() -> None:
        fetch_pass, source, _ = make_v3_pass([(0, 2999)], head_start=2500, settle_start=1500)
        for _ in range(3):
            assert fetch_pass.open_next()
        assert source.asked == []  # nothing runs before the pass yields
        await asyncio.gather(*fetch_pass.tasks)
        assert source.asked == [(2500, 2999, True), (1500, 2499, True), (500, 1499, False)]
        assert len(fetch_pass.settling) == 1

    asyncio.run(scenario())


def test_an_incomplete_v3_window_is_counted_but_not_handed_on() -> None:
    fetch_pass, _, handed = make_v3_pass([])
    incomplete = CompletedWindow(0, 99, -1, [], WindowState.INCOMPLETE, 3)
    verified = CompletedWindow(100, 199, 10, [], WindowState.VERIFIED, 2)
    asyncio.run(fetch_pass.take(incomplete, settling=False))
    asyncio.run(fetch_pass.take(verified, settling=False))
    assert handed == [verified]
    result = fetch_pass.result
    assert (result.pages, result.windows_incomplete, result.windows_verified) == (5, 1, 1)
