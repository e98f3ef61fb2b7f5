"""The in-flight controller on its own: sizing, starvation, AIMD and its slots, with a fake clock
and a rate set by hand (no I/O; tests/fetch/test_tiers.py drives it through the whole request
path)."""

from __future__ import annotations

import asyncio
import math

import pytest

from stxbf.fetch.inflight import OUTCOMES, InFlight


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def controller(rate: float | None, latency: float, cap: int = 256) -> tuple[InFlight, Clock]:
    clock = Clock()
    inflight = InFlight(cap, lambda: rate, clock=clock)
    for _ in range(100):
        inflight.on_answer(latency)
    return inflight, clock


@pytest.mark.parametrize(
    ("rate", "latency", "expected"),
    [
        (25 / 60, 0.6, 1),  # no key: an answer is back long before the next slot
        (900 / 60, 0.1, math.ceil(1.5 + 2 * math.sqrt(1.5))),
        (3000 / 60, 0.6, math.ceil(30 + 2 * math.sqrt(30))),
        (7000 / 60, 1.5, math.ceil(175 + 2 * math.sqrt(175))),
        (7000 / 60, 3.0, 256),  # the cap
        (None, 0.6, 16),  # no limit stated: the unthrottled benchmark's best
    ],
    ids=["no-key", "starter-100ms", "build-600ms", "scale-1500ms", "capped", "no-limit"],
)
def test_the_limit_is_sized_from_the_rate_and_the_latency(
    rate: float | None, latency: float, expected: int
) -> None:
    inflight, _ = controller(rate, latency)
    assert inflight.limit() == expected


def test_a_starved_pacer_grows_the_limit_and_a_busy_one_shrinks_it_back() -> None:
    inflight, _ = controller(50.0, 0.1)  # 5 + 2 sqrt(5): 10
    sized = inflight.limit()
    inflight.active = sized
    inflight.on_send(0.0)  # one slow answer is not a trend
    assert inflight.limit() == sized
    inflight.on_send(0.0)
    assert inflight.limit() == sized + 1
    inflight.on_send(0.0)  # a slot was free: not starved for want of one
    assert inflight.limit() == sized + 1
    inflight.active = sized + 1
    inflight.on_send(0.0)
    assert inflight.limit() == sized + 2
    for _ in range(4):
        inflight.on_send(0.02)  # a full spacing at the pacer: requests are waiting
    assert inflight.limit() == sized


def test_failures_cut_only_when_they_are_a_tenth_of_the_recent_outcomes() -> None:
    inflight, clock = controller(50.0, 0.6)
    healthy = inflight.limit()
    inflight.active = healthy
    for _ in range(OUTCOMES // 10 - 1):
        inflight.on_failure()  # the odd 5xx
        for _ in range(9):
            inflight.on_answer(0.6)
    assert inflight.limit() == healthy
    inflight.on_failure()
    inflight.on_failure()
    assert inflight.limit() == math.floor(healthy * 0.7)
    inflight.on_failure()  # within the same round trip: one cut
    assert inflight.limit() == math.floor(healthy * 0.7)
    clock.now += 1.0
    inflight.active = inflight.limit()
    inflight.on_failure()
    assert inflight.limit() == math.floor(math.floor(healthy * 0.7) * 0.7)
    for _ in range(2000):  # one slot back per round trip of answers, up to the sized limit
        inflight.on_answer(0.6)
    assert inflight.error_limit is None and inflight.limit() == healthy


def test_slots_go_first_come_first_served_and_a_cancelled_waiter_keeps_none() -> None:
    async def scenario() -> list[str]:
        inflight = InFlight(2, lambda: None)
        order: list[str] = []

        async def request(name: str) -> None:
            await inflight.acquire()
            order.append(name)

        await inflight.acquire()
        await inflight.acquire()
        waiting = [asyncio.ensure_future(request(n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        waiting[1].cancel()
        await asyncio.sleep(0)
        inflight.release()
        inflight.release()
        await asyncio.gather(waiting[0], waiting[2])
        assert inflight.active == 2 and inflight.peak == 2
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


def test_requests_backing_off_leave_the_engine_pages_to_start() -> None:
    """Failures cut what is on the wire, not what an engine may start: a page waiting out its
    retry's backoff holds no slot, and with one slot left the wire would stand idle."""
    inflight, clock = controller(100.0, 0.001)
    for _ in range(20):  # an API failing every other request, round trip after round trip
        inflight.active = inflight.limit()
        inflight.on_failure()
        clock.now += 1.0
    assert inflight.limit() == 1
    assert inflight.started() == 16  # the slots, not the engine, keep the wire at 1
    assert controller(25 / 60, 0.6)[0].started() == 16  # no key: started, but one on the wire
    assert controller(3000 / 60, 0.6)[0].started() == math.ceil(30 + 2 * math.sqrt(30))
    assert InFlight(4, lambda: 100.0).started() == 4  # never past --concurrency
