"""A wave of failed requests is one log record with a count, not one record per request.
Asserts on records, not on text."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from stxbf.defaults import DEGRADED_FAILURES
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import PageSource
from stxbf.simulator import SimConfig
from stxbf.simulator.transport import SimTransport


class FirstTryFails(httpx.AsyncBaseTransport):
    """Each distinct request fails once with `status`, then the simulator answers it."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: set[str] = set()
        self.sim = SimTransport(config=SimConfig(days=2, tx_per_day=2000), sleep=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = str(request.url)
        if key not in self.seen:
            self.seen.add(key)
            return httpx.Response(self.status)
        return await self.sim.handle_async_request(request)


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "stxbf.fetch.pages" and "retry" in r.msg]


def test_sixteen_requests_failing_together_are_one_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = PageSource(
        ApiClient("http://sim", transport=FirstTryFails(503)),
        Pacer(rpm=1_000_000, fixed=True),
        give_up_after=60,
    )
    source._wait = lambda state: 0.01  # type: ignore[method-assign]

    async def wave() -> None:
        await asyncio.gather(
            *(source.page(start_time=None, end_time=None, offset=50 * i) for i in range(16))
        )
        source.flush_retry_log()

    with caplog.at_level(logging.INFO, logger="stxbf.fetch.pages"):
        asyncio.run(wave())
    records = retry_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    assert record.args is not None and 16 in tuple(record.args)  # type: ignore[arg-type]
    assert "HTTP 503" in record.getMessage()


def test_a_lone_failure_is_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    source = PageSource(
        ApiClient("http://sim", transport=FirstTryFails(502)),
        Pacer(rpm=1_000_000, fixed=True),
        give_up_after=60,
    )
    source._wait = lambda state: 0.01  # type: ignore[method-assign]

    async def one() -> None:
        await source.page(start_time=None, end_time=None)
        await asyncio.sleep(0)

    with caplog.at_level(logging.INFO, logger="stxbf.fetch.pages"):
        asyncio.run(one())
        source.flush_retry_log()
    records = retry_records(caplog)
    assert len(records) == 1
    assert "HTTP 502" in records[0].getMessage()


class DownFor(httpx.AsyncBaseTransport):
    """The first `failures` requests are refused (an outage), then the simulator answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sim = SimTransport(config=SimConfig(days=2, tx_per_day=2000), sleep=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures > 0:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.sim.handle_async_request(request)


def recovery_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "API reachable again" in r.msg]


@pytest.mark.parametrize(
    ("failures", "logged"),
    [(16, 0), (DEGRADED_FAILURES * 3, 1)],
    ids=["one-failed-wave-is-not-an-outage", "an-outage-ends-once"],
)
def test_the_end_of_an_outage_is_logged_once(
    caplog: pytest.LogCaptureFixture, failures: int, logged: int
) -> None:
    source = PageSource(
        ApiClient("http://sim", transport=DownFor(failures)),
        Pacer(rpm=1_000_000, fixed=True),
        give_up_after=60,
    )
    source._wait = lambda state: 0.01  # type: ignore[method-assign]

    async def pages() -> None:
        await asyncio.gather(
            *(source.page(start_time=None, end_time=None, offset=50 * i) for i in range(16))
        )

    with caplog.at_level(logging.INFO, logger="stxbf.fetch.pages"):
        asyncio.run(pages())
    records = recovery_records(caplog)
    assert len(records) == logged, [r.getMessage() for r in records]
    if logged:
        assert records[0].levelno == logging.WARNING
        assert records[0].args is not None
        assert tuple(records[0].args)[1] >= DEGRADED_FAILURES  # type: ignore[arg-type]
    assert source.stats.consecutive_failures == 0 and source.stats.failing_since is None
