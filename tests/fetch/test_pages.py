"""The one request path (`PageSource`): quotas and long retry-afters end a run at once; until
the API has answered once, no answer at all is a configuration problem (fail fast, say what to
check), and after the first answer an outage is waited out; a wave of failed requests is one log
record with a count, not one record per request (asserted on records, not on text)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from stxbf.cli.run import execute
from stxbf.defaults import DEGRADED_FAILURES
from stxbf.errors import ApiUnreachable, QuotaExhausted
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import PageSource
from stxbf.settings import load_settings
from stxbf.simulator import SimConfig, run_in_thread
from stxbf.simulator.transport import SimTransport
from tests.fakes import as_json, make_row

BASE = "https://api.example.test"
TX = f"{BASE}/extended/v1/tx"
TRANSFER = as_json(make_row("0x" + "ab" * 32, 1_730_000_000, 170_000, 3))


# -- quotas: a long retry-after or a used-up month ends the run at once ---------------------------


def _page_source(give_up_after: float = 30.0) -> PageSource:
    return PageSource(ApiClient(BASE), Pacer(rpm=None), give_up_after=give_up_after)


@respx.mock
def test_a_retry_after_longer_than_give_up_after_stops_at_once_as_a_quota() -> None:
    route = respx.get(TX).mock(return_value=httpx.Response(429, headers={"retry-after": "3600"}))
    source = _page_source(give_up_after=60)
    with pytest.raises(QuotaExhausted) as caught:
        asyncio.run(source.page(start_time=1, end_time=5))
    assert route.call_count == 1  # no waiting out an hour, no second request
    assert caught.value.quota == "retry-after"
    assert caught.value.resets_at is not None
    assert "resets at" in caught.value.message and "3600 s" in caught.value.message


@respx.mock
def test_a_429_from_a_used_up_monthly_quota_names_it_and_its_reset() -> None:
    respx.get(TX).mock(
        return_value=httpx.Response(
            429,
            headers={
                "retry-after": "86400",
                "x-ratelimit-limit-stacks-month": "1000000",
                "x-ratelimit-remaining-stacks-month": "0",
            },
        )
    )
    with pytest.raises(QuotaExhausted) as caught:
        asyncio.run(_page_source(give_up_after=600).page(start_time=1, end_time=5))
    assert caught.value.quota == "month"
    assert "monthly request quota" in caught.value.message
    assert "resets at" in caught.value.message


@respx.mock
def test_the_last_unit_of_the_monthly_quota_keeps_its_page_and_one_more_asks_the_reset() -> None:
    body = {"limit": 50, "offset": 0, "total": 1, "results": [TRANSFER]}
    respx.get(TX).mock(
        side_effect=[
            httpx.Response(200, json=body, headers={"x-ratelimit-remaining-stacks-month": "0"}),
            httpx.Response(
                429, headers={"retry-after": "7200", "x-ratelimit-remaining-stacks-month": "0"}
            ),
        ]
    )
    source = _page_source()
    page = asyncio.run(source.page(start_time=1, end_time=5))
    assert len(page.rows) == 1
    with pytest.raises(QuotaExhausted) as caught:
        asyncio.run(source.page(start_time=1, end_time=5))
    assert "resets at" in caught.value.message
    with pytest.raises(QuotaExhausted):  # and nothing more is sent
        asyncio.run(source.page(start_time=1, end_time=5))
    assert source.stats.requests == 2


# -- the first contact ----------------------------------------------------------------------------

HINT_WORDS = ("http or https", "host", "port", "proxy")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def run_against(url: str, home: Path) -> ApiUnreachable:
    settings = load_settings(
        api_url=url, home=home, target_days=1, request_timeout=0.3, give_up_after=20
    )
    with pytest.raises(ApiUnreachable) as caught:
        execute(settings, interactive=False)
    return caught.value


def assert_fast_give_up_with_hint(error: ApiUnreachable, reason: str) -> None:
    assert reason in error.message
    assert "gave up after 3 attempts" in error.message
    assert error.hint is not None
    for word in HINT_WORDS:
        assert word in error.hint


@pytest.mark.slow  # real connect timeouts: seconds
def test_a_port_that_never_answers_gives_up_after_three_attempts(
    isolated_env: Path, silent_port: int
) -> None:
    error = run_against(f"http://127.0.0.1:{silent_port}", isolated_env)
    assert_fast_give_up_with_hint(error, "timed out")
    last = (isolated_env / "logs" / "stxbf.log").read_text(encoding="utf-8").splitlines()[-1]
    assert "ended: exit 1" in last and "hint: Nothing at" in last  # the log has the hint too


@pytest.mark.slow  # real handshake timeouts: seconds
def test_https_to_a_plain_http_port_gives_up_after_three_attempts(isolated_env: Path) -> None:
    with run_in_thread(SimConfig(days=2, tx_per_day=10)) as sim:
        error = run_against(sim.url.replace("http://", "https://"), isolated_env)
    assert_fast_give_up_with_hint(error, "timed out")
    assert error.hint is not None and "http://" in error.hint  # the scheme to try instead


# -- the first contact's retry policy itself, without waiting -------------------------------------


def source_over(handler: httpx.MockTransport, give_up_after: float) -> PageSource:
    client = ApiClient("https://api.example", transport=handler)
    source = PageSource(client, Pacer(rpm=1_000_000), give_up_after=give_up_after)
    source._wait = lambda state: 0.0  # type: ignore[method-assign]
    return source


def failing(*errors: Exception) -> tuple[httpx.MockTransport, list[int]]:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        index = min(len(calls), len(errors)) - 1
        error = errors[index]
        if isinstance(error, _Status):
            return httpx.Response(error.status)
        raise error

    return httpx.MockTransport(handle), calls


class _Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


NO_ANSWER = {
    "read-timeout": httpx.ReadTimeout("no answer"),
    "connect-timeout": httpx.ConnectTimeout("handshake"),
    "tls-error": httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"),
    "dropped": httpx.RemoteProtocolError("Server disconnected without sending a response."),
}


@pytest.mark.parametrize("error", NO_ANSWER.values(), ids=NO_ANSWER.keys())
def test_first_contact_without_an_answer_stops_after_the_attempts(error: Exception) -> None:
    transport, calls = failing(error)
    source = source_over(transport, give_up_after=30)
    with pytest.raises(ApiUnreachable) as caught:
        asyncio.run(source.page(start_time=None, end_time=None, limit=1, connect_attempts=3))
    assert len(calls) == 3
    assert caught.value.hint is not None and "proxy" in caught.value.hint


def test_once_the_api_has_answered_timeouts_are_waited_out() -> None:
    transport, calls = failing(_Status(503), httpx.ReadTimeout("slow"))
    source = source_over(transport, give_up_after=0.1)  # retries with no backoff
    with pytest.raises(ApiUnreachable) as caught:
        asyncio.run(source.page(start_time=None, end_time=None, limit=1, connect_attempts=3))
    assert len(calls) > 3  # the give-up came from --give-up-after, not the first-contact rule
    assert caught.value.hint is None


class Silent(httpx.AsyncBaseTransport):
    """Connects, then never sends a header: only the whole-answer deadline ends the wait."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover


def test_a_deadline_with_no_headers_counts_as_no_answer() -> None:
    """On a loaded machine the whole-answer deadline can fire before httpx's read timeout; with
    no header seen that is still no answer, and the first-contact rule gives up after 3 tries."""
    transport = Silent()
    client = ApiClient("https://api.example", transport=transport, timeout=0.05)
    source = PageSource(client, Pacer(rpm=1_000_000), give_up_after=30)
    source._wait = lambda state: 0.0  # type: ignore[method-assign]
    with pytest.raises(ApiUnreachable) as caught:
        asyncio.run(source.page(start_time=None, end_time=None, limit=1, connect_attempts=3))
    assert transport.calls == 3
    assert caught.value.hint is not None and "proxy" in caught.value.hint


# -- retry waves and the end of an outage in the log ----------------------------------------------


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
