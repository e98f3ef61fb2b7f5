"""The pacer with a fake clock: even spacing, header-learned ceilings, and the retry-after gate."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from stxbf.errors import QuotaExhausted
from stxbf.fetch.pacer import SAFETY, Pacer
from stxbf.fetch.ratelimit import parse_retry_after
from tests.virtual_time import VirtualTimeLoop, run_virtual


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def paced(limit: float, window: float, cost: float = 1.0) -> float:
    """Requests/s the pacer allows a window: SAFETY of it, 1.5 requests of room (3 % at most),
    and the limit spread over the window plus 50 ms (5 % of a second)."""
    share = max(min(limit * SAFETY, limit - 1.5 * cost), 0.97 * limit) / window
    return min(share, limit / (window + 0.05)) / cost


def send_times(pacer: Pacer, clock: FakeClock, count: int) -> list[float]:
    async def go() -> list[float]:
        times = []
        for _ in range(count):
            await pacer.acquire()
            times.append(clock.now)
        return times

    return asyncio.run(go())


def test_fixed_rate_spaces_requests_evenly() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    times = send_times(pacer, clock, 11)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1] * 10)


def test_headers_set_the_ceiling_just_under_the_stated_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)
    pacer.observe(
        200, {"ratelimit-limit": "600", "ratelimit-remaining": "599", "ratelimit-reset": "60"}
    )
    assert pacer.limit_rpm == pytest.approx(600 * SAFETY)
    times = send_times(pacer, clock, 5)
    assert times[1] - times[0] == pytest.approx(60 / (600 * SAFETY))


def test_per_second_cap_is_the_tighter_limit() -> None:
    pacer = Pacer(rpm=50)
    pacer.observe(
        200, {"x-ratelimit-limit-stacks-minute": "600", "x-ratelimit-limit-stacks-second": "5"}
    )
    assert pacer.limit_rpm == pytest.approx(paced(5, 1) * 60)


def test_no_stated_limit_means_unthrottled() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {})
    assert pacer.limit_rpm is None
    assert send_times(pacer, clock, 20) == [1000.0] * 20


def test_429_closes_the_gate_for_retry_after_and_slows_down() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    before = pacer.current_rpm
    pacer.on_429(7.0)
    times = send_times(pacer, clock, 3)
    assert times[0] >= 1007.0
    assert pacer.current_rpm is not None and before is not None
    assert pacer.current_rpm < before


def test_no_request_leaves_while_the_gate_is_closed_even_for_waiters() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=6000, fixed=True, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        times: list[float] = []

        async def worker() -> None:
            for _ in range(5):
                await pacer.acquire()
                times.append(clock.now)
                if len(times) == 3:
                    pacer.on_429(4.0)

        await asyncio.gather(*(worker() for _ in range(4)))
        return times

    times = asyncio.run(go())
    gate_closed_at = times[2]
    assert all(t <= gate_closed_at or t >= gate_closed_at + 4.0 for t in times)


def test_exhausted_window_waits_for_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": "12"})
    assert send_times(pacer, clock, 1)[0] >= 1012.0


def test_rate_recovers_after_a_decrease() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    pacer.on_429(1)
    for _ in range(400):
        pacer.observe(200, {})
    assert pacer.current_rpm == pytest.approx(600)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), ("2.5", 2.5), (None, None), ("soon", None)],
    ids=["seconds", "zero", "fraction", "missing", "garbage"],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(
        10.0
    )


def test_a_guessed_ceiling_expires_when_the_api_states_none() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {})
    assert pacer.limit_rpm is None
    pacer.on_429(1)
    assert pacer.limit_rpm is not None  # pushed back: slow down, from what was achieved
    clock.now += 30
    pacer.observe(200, {})
    assert pacer.limit_rpm is not None
    clock.now += 60
    pacer.observe(200, {})
    assert pacer.limit_rpm is None  # a minute without 429: unthrottled again


@pytest.mark.parametrize(
    ("reset", "at_least", "at_most"),
    [("12", 12, 12.1), ("epoch+30", 29, 31), ("999999", 3600, 3600.1)],
    ids=["delta-seconds", "epoch-time", "capped-at-an-hour"],
)
def test_reset_header_forms(reset: str, at_least: float, at_most: float) -> None:
    import time as _time

    value = str(int(_time.time()) + 30) if reset == "epoch+30" else reset
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": value})
    assert at_least <= pacer.gate_remaining() <= at_most


def test_learning_a_higher_limit_releases_the_slot_reserved_at_the_assumed_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)  # Hiro's keyless assumption
    send_times(pacer, clock, 1)
    clock.now += 0.2
    pacer.observe(200, {"ratelimit-limit": "600"})
    assert send_times(pacer, clock, 1)[0] < 1000.0 + 0.2 + 0.2  # not 1.2 s later


class Styles:
    """Header sets in the styles an API may answer with, and the requests/s each one allows."""

    SECOND_ONLY = {  # seen from an API that limits per second only
        "ratelimit-limit": "40",
        "ratelimit-remaining": "39",
        "ratelimit-reset": "1",
        "x-ratelimit-limit-stacks-second": "40",
        "x-ratelimit-remaining-stacks-second": "39",
    }
    HIRO = {  # explicit minute + second, generic describing the minute
        "ratelimit-limit": "500",
        "ratelimit-remaining": "499",
        "ratelimit-reset": "42",
        "x-ratelimit-limit-stacks-minute": "500",
        "x-ratelimit-remaining-stacks-minute": "499",
        "x-ratelimit-limit-stacks-second": "20",
        "x-ratelimit-remaining-stacks-second": "19",
    }


@pytest.mark.parametrize(
    ("headers", "tightest"),
    [
        (Styles.SECOND_ONLY, (40, 1, 1)),
        (Styles.HIRO, (500, 60, 1)),
        ({"x-ratelimit-limit-stacks-minute": "300"}, (300, 60, 1)),
        ({"ratelimit-limit": "30", "ratelimit-policy": "30;w=1"}, (30, 1, 1)),
        ({"ratelimit-limit": "600", "ratelimit-policy": "600;w=60, 20;w=1"}, (600, 60, 1)),
        ({"ratelimit-limit": "120", "ratelimit-reset": "37"}, (120, 60, 1)),
        (
            {
                "ratelimit-limit": "20",
                "ratelimit-reset": "1",
                "x-ratelimit-limit-stacks-minute": "600",
            },
            (600, 60, 1),  # the generic window is unknown: it never overrides the explicit minute
        ),
        ({**Styles.SECOND_ONLY, "x-ratelimit-cost-stacks": "4"}, (40, 1, 4)),
    ],
    ids=[
        "second-only",
        "hiro-minute-second-generic",
        "minute-only",
        "generic-with-policy-second",
        "generic-with-policy-minute",
        "generic-reset-says-minute",
        "generic-unknown-vs-explicit",
        "cost-4",
    ],
)
def test_each_header_style_paces_at_its_tightest_stated_window(
    headers: dict[str, str], tightest: tuple[float, float, float]
) -> None:
    limit, window, cost = tightest
    pacer = Pacer(rpm=50)
    pacer.observe(200, headers)
    assert pacer.limit_rpm == pytest.approx(paced(limit, window, cost) * 60)
    assert pacer.limit_rpm >= 0.9 * limit / window / cost * 60


def test_a_bare_generic_limit_with_second_resets_is_learned_as_per_second() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)
    headers = {"ratelimit-limit": "40", "ratelimit-remaining": "39", "ratelimit-reset": "1"}
    pacer.observe(200, headers)
    assert pacer.limit_rpm == pytest.approx(50)  # the assumed rate, until the resets say more
    for _ in range(5):
        clock.now += 0.5
        pacer.observe(200, headers)
    assert pacer.limit_rpm == pytest.approx(paced(40, 1) * 60)


def test_the_limits_learned_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    pacer = Pacer(rpm=50)
    with caplog.at_level("INFO", logger="stxbf.fetch.pacer"):
        for _ in range(3):
            pacer.observe(200, Styles.HIRO)
    learned = [r for r in caplog.records if "rate limit learned" in r.getMessage()]
    assert len(learned) == 1
    assert "x-ratelimit-limit-stacks-second" in learned[0].getMessage()


def test_reset_as_a_unix_time_is_read_against_the_servers_date() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, fixed=True, clock=clock, sleep=clock.sleep)
    pacer.observe(
        200,
        {
            "date": "Wed, 21 Oct 2015 07:28:00 GMT",  # the server's clock, far from ours
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(1445412480 + 20),
        },
    )
    assert 19 <= pacer.gate_remaining() <= 20.1
    assert pacer.gate_reason == "limit used up"


def test_a_used_up_second_window_waits_one_slot_not_the_minute_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=None, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {**Styles.HIRO, "x-ratelimit-remaining-stacks-second": "0"})
    assert pacer.gate_remaining() == 0  # no gate: the next slot is a twentieth of a second away
    assert send_times(pacer, clock, 1)[0] == pytest.approx(1000.0 + 1 / 20)


def test_a_used_up_minute_window_described_by_the_generic_triple_waits_its_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=None, clock=clock, sleep=clock.sleep)
    pacer.observe(
        200,
        {**Styles.HIRO, "x-ratelimit-remaining-stacks-minute": "0", "ratelimit-remaining": "0"},
    )
    assert pacer.gate_remaining() == pytest.approx(42)
    assert pacer.gate_reason == "60 s limit used up"


def test_a_used_up_monthly_quota_stops_every_request() -> None:
    clock = FakeClock()
    pacer = Pacer(rpm=600, clock=clock, sleep=clock.sleep)
    pacer.observe(
        200,
        {
            **Styles.HIRO,
            "x-ratelimit-limit-stacks-month": "100000",
            "x-ratelimit-remaining-stacks-month": "0",
        },
    )
    with pytest.raises(QuotaExhausted) as caught:
        send_times(pacer, clock, 2)  # one request may still ask when the quota resets
    assert caught.value.quota == "month"
    assert int(caught.value.exit_code) == 75
    assert "monthly" in caught.value.message


def test_cost_counts_against_the_monthly_quota() -> None:
    pacer = Pacer(rpm=600)
    pacer.observe(
        200,
        {"x-ratelimit-cost-stacks": "3", "x-ratelimit-remaining-stacks-month": "2"},
    )
    assert pacer.exhausted is not None


def test_workers_waiting_at_an_assumed_rate_go_as_soon_as_a_faster_one_is_learned() -> None:
    async def go() -> list[float]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(rpm=30, clock=loop.time)  # 2 s apart until the API says more
        times: list[float] = []

        async def worker() -> None:
            await pacer.acquire()
            times.append(loop.time())

        workers = [asyncio.ensure_future(worker()) for _ in range(8)]
        await asyncio.sleep(0.01)  # every worker has booked its slot at the assumed rate
        pacer.observe(200, Styles.SECOND_ONLY)  # 40/s: the 8 go within about 0.2 s
        await asyncio.gather(*workers)
        return times

    times = run_virtual(go())
    # Virtual time (tests/virtual_time.py), so no wait is real: the slots booked at the assumed
    # rate would spread the 8 over 14 s; half of that fails a pacer that kept them.
    assert max(times) - min(times) < 7.0


@pytest.mark.parametrize(
    ("reset", "window"),
    [("61", 60.0), ("60", 60.0), ("3601", 3600.0), ("37", 60.0)],
    ids=["a-minute-rounded-up", "a-minute", "an-hour-rounded-up", "mid-minute"],
)
def test_a_reset_rounded_up_to_whole_seconds_still_names_its_window(
    reset: str, window: float
) -> None:
    pacer = Pacer(rpm=50)
    pacer.observe(200, {"ratelimit-limit": "720", "ratelimit-reset": reset})
    assert pacer.limit_rpm == pytest.approx(paced(720, window) * 60)


class LateClock(FakeClock):
    """A loaded event loop: a sleep ends up to `late` seconds after it was due."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late
        self.jitter = random.Random(7)

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.jitter.uniform(0.0, self.late))


def most_in_any(times: list[float], span: float) -> int:
    """The most sends in any half-open interval of `span` seconds."""
    return max(sum(1 for t in times if start <= t < start + span) for start in times)


@pytest.mark.parametrize("late", [0.002, 0.005, 0.01, 0.02])
def test_sleeps_that_end_late_do_not_slow_the_pace(late: float) -> None:
    """A sleep that overshoots is made up on the next send; it does not push every later send
    back (at 8/s, 10 ms late a send cost 7 % of the rate; on a loaded machine, more)."""
    clock = LateClock(late)
    pacer = Pacer(rpm=480, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {"x-ratelimit-limit-stacks-second": "8"})
    times = send_times(pacer, clock, 400)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.985 * pacer.rate_rps  # held to one spacing: 0.93 at 20 ms
    # what a per-second window sees is never more than the pace allows it
    assert most_in_any(times, 1.0) <= 8
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5 / pacer.rate_rps - 1e-9  # made up gradually, never in a burst


def test_slots_left_behind_by_a_stall_are_made_up_at_most_twice_as_fast_not_in_a_burst() -> None:
    async def go() -> list[float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        pacer = Pacer(rpm=1200, fixed=True, clock=loop.time)  # 20/s: 50 ms apart
        times: list[float] = []

        async def worker() -> None:
            for _ in range(3):
                await pacer.acquire()
                times.append(loop.time())

        workers = [asyncio.ensure_future(worker()) for _ in range(4)]
        await asyncio.sleep(0.01)  # the first slots are booked
        loop.now += 0.3  # the loop stalls: six booked slots pass meanwhile
        await asyncio.gather(*workers)
        return times

    times = sorted(run_virtual(go()))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.025 - 0.002  # never a burst, even right after the stall
    assert most_in_any(times, 1.0) <= 20  # no second holds more than the pace


def test_while_the_quota_probe_is_out_the_others_wait_for_its_answer() -> None:
    async def go() -> tuple[int, QuotaExhausted]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(rpm=None, clock=loop.time)
        pacer.observe(200, {"x-ratelimit-remaining-stacks-month": "0"})  # the last unit
        await pacer.acquire()  # the probe goes out
        waiter = asyncio.ensure_future(pacer.acquire())
        await asyncio.sleep(0.1)
        assert not waiter.done()  # it does not raise "the API did not say when" meanwhile
        pacer.observe(429, {"x-ratelimit-remaining-stacks-month": "0"})  # the probe's answer
        pacer.exhaust("monthly quota", quota="month", resets_at=loop.time() + 3600)
        with pytest.raises(QuotaExhausted) as caught:
            await waiter
        return 1, caught.value

    _, error = asyncio.run(go())
    assert error.resets_at is not None and "resets at" in error.message


def test_an_api_stating_no_limit_is_slowed_from_the_rate_sent_and_not_ratcheted_down() -> None:
    """The first 429 sets the ceiling to the rate requests were sent at (here 50/s, measured over
    the 2 s they took, not a smoothed 5 s); later 429s cut the rate, never that ceiling again."""
    clock = FakeClock()
    pacer = Pacer(rpm=50, clock=clock, sleep=clock.sleep)
    pacer.observe(200, {})  # states no limit: unthrottled

    async def answer(count: int, every: int | None = None) -> None:
        for i in range(1, count + 1):
            await pacer.acquire()
            clock.now += 0.02  # one request at a time, 20 ms each: 50/s
            if every and i % every == 0:
                pacer.on_429(1.0)
            else:
                pacer.observe(200, {})

    asyncio.run(answer(100))
    pacer.on_429(1.0)
    first = pacer.limit_rpm
    assert first == pytest.approx(3000, rel=0.05)
    asyncio.run(answer(300, every=7))  # 429s that have nothing to do with our pace
    assert pacer.limit_rpm == first
    assert pacer.current_rpm is not None and pacer.current_rpm >= 0.1 * first
