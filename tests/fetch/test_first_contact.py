"""Until the API has answered once, no answer at all is a configuration problem: fail fast, say
what to check. After the first answer, an outage is waited out as before.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stxbf.cli.run import execute
from stxbf.errors import ApiUnreachable
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import PageSource
from stxbf.settings import load_settings
from stxbf.simulator import SimConfig, run_in_thread

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


# -- the retry policy itself, without waiting ---------------------------------------------------


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
    source = source_over(transport, give_up_after=0.5)
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
