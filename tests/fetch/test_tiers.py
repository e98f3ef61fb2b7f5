"""Every Hiro tier at its limit (issue 16): the requests in flight follow the learned limit and
the latency, so the pacer's rate is reached at any tier, and no more is sent than it allows.

Each backfill runs the real request path (engine, page source, in-flight controller, pacer,
client) against the in-process simulator, which enforces the limit it states in Hiro's headers
and draws a heavy-tailed latency. The event loop's clock is virtual (`tests/virtual_time.py`):
the rates are read in it, so they are the same on a loaded machine as on an idle one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from stxbf.codes import WindowState
from stxbf.fetch.client import ApiClient
from stxbf.fetch.engine import Engine
from stxbf.fetch.pacer import HIRO_RPM_WITH_KEY, HIRO_RPM_WITHOUT_KEY, Pacer
from stxbf.fetch.pages import PageSource
from stxbf.fetch.windows import CompletedWindow
from stxbf.simulator import SimConfig
from stxbf.simulator.api import SimApi
from stxbf.simulator.transport import SimTransport
from tests.virtual_time import run_virtual

DEFAULT_CAP = 256  # stxbf.defaults.CONCURRENCY, the cap every tier runs under here


class VirtualTransport(SimTransport):
    """The simulator on the loop's virtual clock, noting when each request came and how it was
    answered, and how many were in flight at once."""

    def __init__(self, api: SimApi) -> None:
        loop = asyncio.get_running_loop()
        offset = time.time() - loop.time()
        super().__init__(api, clock=lambda: loop.time() + offset)
        self.loop = loop
        self.requests: list[tuple[float, int]] = []
        self.on_wire = 0
        self.peak_on_wire = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = self.loop.time()
        self.on_wire += 1
        self.peak_on_wire = max(self.peak_on_wire, self.on_wire)
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError:
            self.requests.append((sent, 0))
            raise
        finally:
            self.on_wire -= 1
        self.requests.append((sent, response.status_code))
        return response


@dataclass
class Backfill:
    transport: VirtualTransport
    source: PageSource
    api: SimApi
    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    states: list[str] = field(default_factory=list)
    limits: list[tuple[float, int]] = field(default_factory=list)  # (time, in-flight limit)

    def rate(self, start: float, end: float) -> float:
        """Requests a second sent in [start, end) of virtual time, from the first request."""
        first = self.transport.requests[0][0]
        sent = [t for t, _ in self.transport.requests if first + start <= t < first + end]
        return len(sent) / (end - start)

    def count(self, status: int) -> int:
        return sum(1 for _, s in self.transport.requests if s == status)


async def backfill(
    config: SimConfig,
    *,
    api_key: str | None = "sim-key",
    cap: int = DEFAULT_CAP,
    during: Callable[[Backfill], Any] | None = None,
) -> Backfill:
    """Backfill the simulator's whole history; `during(backfill)` runs alongside (to change the
    API mid-run)."""
    api = SimApi(config)
    transport = VirtualTransport(api)
    loop = asyncio.get_running_loop()
    pacer = Pacer(rpm=HIRO_RPM_WITH_KEY if api_key else HIRO_RPM_WITHOUT_KEY, clock=loop.time)
    client = ApiClient("http://sim.test", api_key=api_key, max_connections=cap, transport=transport)
    source = PageSource(client, pacer, give_up_after=3600, concurrency=cap)
    result = Backfill(transport, source, api)

    async def on_window(window: CompletedWindow) -> None:
        result.states.append(window.state)
        for row in window.rows:
            assert row[0] not in result.rows, "a transaction stored twice"
            result.rows[row[0]] = row

    engine = Engine(
        source, concurrency=cap, on_window=on_window, max_started=source.inflight.started
    )
    summary = api.chain.summary()
    start, end = int(summary["genesis_time"]), int(summary["end_time"])  # type: ignore[call-overload]
    side = asyncio.ensure_future(during(result)) if during is not None else None
    try:
        await engine.run_pass([(start, end)], head_start=None, page_budget=10**9)
    finally:
        if side is not None:
            side.cancel()
    await client.aclose()
    return result


def tier(rpm: int, latency_ms: float, minutes: float, **changes: Any) -> SimConfig:
    """A simulated tier whose history takes about `minutes` at its rate (50 transactions a
    page), answering after a lognormal latency of mean `latency_ms`."""
    days = 2.0
    tx_per_day = int(rpm * minutes * 50 / days)
    return SimConfig(
        days=days,
        tx_per_day=tx_per_day,
        rpm=rpm,
        latency_ms=latency_ms,
        latency_shape="lognormal",
        **changes,
    )


async def sample_limit(run: Backfill, every: float = 1.0) -> None:
    """Note the in-flight limit each `every` seconds (run alongside a backfill)."""
    loop = asyncio.get_running_loop()
    while True:
        run.limits.append((loop.time(), run.source.inflight.limit()))
        await asyncio.sleep(every)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rpm", "latency_ms"), [(3_000, 600), (7_000, 300)], ids=["build-600ms", "scale-300ms"]
)
def test_a_high_tier_is_used_to_its_limit(rpm: int, latency_ms: float) -> None:
    """Fixed at 16 in flight: 0.52 and 0.45 of the limit."""
    run = run_virtual(backfill(tier(rpm, latency_ms, minutes=2.6)))
    assert run.rate(20, 140) >= 0.95 * rpm / 60  # two minutes, after the first answers
    assert run.api.stats()["early_requests"] == 0
    assert run.count(429) <= 0.01 * len(run.transport.requests)
    assert len(run.rows) == run.api.chain.summary()["transactions"]


def test_starter_at_a_long_latency_is_used_to_its_limit() -> None:
    """900/min at 1,500 ms (heavy tail): 0.66 of the limit with 16 in flight."""
    run = run_virtual(backfill(tier(900, 1_500, minutes=0.5)))
    assert run.rate(10, 25) >= 0.95 * 900 / 60
    assert run.count(429) == 0 and run.api.stats()["early_requests"] == 0


def test_no_key_sends_one_request_at_a_time_at_its_limit() -> None:
    """25/min without a key, 600 ms: one request on the wire suffices, and the limit is met."""
    run = run_virtual(backfill(tier(25, 600, minutes=6), api_key=None))
    assert run.transport.peak_on_wire == 1
    assert run.source.inflight.peak == 1
    assert run.rate(30, 330) >= 0.95 * 25 / 60
    assert run.count(429) == 0 and run.api.stats()["early_requests"] == 0


@pytest.mark.slow
def test_the_rate_holds_when_latency_rises_mid_run() -> None:
    """100 ms, then 1,500 ms from 30 s on: 30 s later the rate is within 10 % of before."""

    async def slow_down(run: Backfill) -> None:
        await asyncio.sleep(30)
        run.api.config = run.api.config.with_(latency_ms=1_500)

    run = run_virtual(backfill(tier(900, 100, minutes=1.6), during=slow_down))
    before, after = run.rate(10, 30), run.rate(60, 90)
    assert after >= 0.9 * before
    assert before >= 0.95 * 900 / 60


@pytest.mark.slow
def test_a_struggling_api_gets_fewer_requests_in_flight_and_the_run_stays_exact() -> None:
    """503 to 30 % of requests from 20 s on: the limit is cut (AIMD), every transaction is
    stored once, every window proven."""

    async def struggle(run: Backfill) -> None:
        sampler = asyncio.ensure_future(sample_limit(run))
        try:
            await asyncio.sleep(20)
            run.api.fault_rate, run.api.fault_kinds = 0.3, ("503",)
            await asyncio.sleep(3600)
        finally:
            sampler.cancel()

    run = run_virtual(backfill(tier(3_000, 600, minutes=1.0), during=struggle))
    start = run.transport.requests[0][0]
    healthy = max(n for t, n in run.limits if 10 <= t - start < 20)
    struggling = [n for t, n in run.limits if t - start >= 30]
    assert struggling and max(struggling) <= healthy / 2
    assert run.count(503) > 100
    truth = run.api.chain.summary()["transactions"]
    assert len(run.rows) == truth
    assert set(run.states) == {WindowState.VERIFIED}


@pytest.mark.slow
def test_the_odd_5xx_of_a_healthy_api_cuts_nothing() -> None:
    """503 to 1 % of requests: the rate stays at the limit (cut at every failure: 0.33)."""
    run = run_virtual(
        backfill(tier(3_000, 600, minutes=1.2, fault_rate=0.01, fault_kinds=("503",)))
    )
    assert run.count(503) > 10
    assert run.rate(20, 60) >= 0.95 * 3_000 / 60
    assert len(run.rows) == run.api.chain.summary()["transactions"]
