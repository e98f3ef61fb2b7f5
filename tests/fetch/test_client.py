"""The HTTP client: each answer the API can give, classified on the v1 route and on any other
route (`get`), with respx or a mock transport at the edges; and what the client does itself now
that it talks to httpx transports directly (the proxy, the headers, the timeouts, gzip, the
connections over real HTTP)."""

from __future__ import annotations

import asyncio
import gzip
import logging

import httpx
import orjson
import pytest
import respx

from stxbf.errors import ApiGone, ApiNotStacks, ApiRejected
from stxbf.fetch.client import ApiClient, RateLimited, Transient, environment_proxy
from stxbf.simulator import SimConfig, run_in_thread

BASE = "https://api.example.test"
TX = f"{BASE}/extended/v1/tx"

TRANSFER = {
    "tx_id": "0x" + "ab" * 32,
    "tx_type": "token_transfer",
    "tx_status": "success",
    "sender_address": "SP000000000000000000002Q6VF78",
    "sponsored": False,
    "nonce": 7,
    "fee_rate": "180",
    "block_height": 170000,
    "block_hash": "0x" + "cd" * 32,
    "block_time": 1730000005,
    "burn_block_height": 870000,
    "burn_block_time": 1730000000,
    "tx_index": 3,
    "canonical": True,
    "event_count": 1,
    "token_transfer": {
        "recipient_address": "SP3FBR2AGK5H9QBDH3EEN6DF8EK8JY7RX8QJ5SVTE",
        "amount": "123456789012",
        "memo": "0x00",
    },
}


def page_body(results: list[dict[str, object]], total: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "limit": 50,
            "offset": 0,
            "total": total if total is not None else len(results),
            "results": results,
        }
    )


def fetch(**client_kwargs: object) -> object:
    async def go() -> object:
        async with ApiClient(BASE, **client_kwargs) as client:  # type: ignore[arg-type]
            return await client.tx_page(start_time=1, end_time=2)

    return asyncio.run(go())


@respx.mock
def test_a_page_becomes_typed_rows() -> None:
    respx.get(TX).mock(return_value=httpx.Response(200, content=page_body([TRANSFER])))
    response = fetch()
    page = response.page  # type: ignore[attr-defined]
    assert page.total == 1
    row = page.rows[0]
    assert row[0] == TRANSFER["tx_id"]
    assert 123456789012 in row and 180 in row  # amounts and fee_rate arrive as strings


@respx.mock
def test_key_travels_only_in_the_header() -> None:
    route = respx.get(TX).mock(return_value=httpx.Response(200, content=page_body([])))
    fetch(api_key="sekrit-key")
    request = route.calls.last.request
    assert request.headers["x-api-key"] == "sekrit-key"
    assert "sekrit" not in str(request.url)


@respx.mock
def test_time_bounds_and_paging_parameters() -> None:
    route = respx.get(TX).mock(return_value=httpx.Response(200, content=page_body([])))
    fetch()
    params = route.calls.last.request.url.params
    assert params["start_time"] == "1" and params["end_time"] == "2"
    assert (
        params["limit"] == "50" and params["order"] == "asc" and params["sort_by"] == "block_height"
    )


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (httpx.Response(429, headers={"retry-after": "9"}), RateLimited, "429"),
        (httpx.Response(500), Transient, "HTTP 500"),
        (httpx.Response(503), Transient, "HTTP 503"),
        (
            httpx.Response(
                200, content=b"<html>oops</html>", headers={"content-type": "text/html"}
            ),
            Transient,
            "text/html",
        ),
        (httpx.Response(200, content=b'{"total": 5, "results": [{"tx_id"'), Transient, "not JSON"),
        (httpx.Response(401), ApiRejected, "API key"),
        (httpx.Response(403), ApiRejected, "API key"),
        (httpx.Response(404), ApiNotStacks, "404"),
        (httpx.Response(410), ApiGone, "switched off"),
        (
            httpx.Response(  # Fastify's shape: `error` is only the status phrase
                400,
                json={
                    "statusCode": 400,
                    "code": "FST_ERR_VALIDATION",
                    "error": "Bad Request",
                    "message": "querystring/limit must be <= 50",
                },
            ),
            ApiRejected,
            "querystring/limit must be <= 50",
        ),
    ],
    ids=["429", "500", "503", "html", "truncated", "401", "403", "404", "410", "400-fastify"],
)
@respx.mock
def test_every_answer_is_classified(
    response: httpx.Response, error: type[Exception], text: str
) -> None:
    respx.get(TX).mock(return_value=response)
    with pytest.raises(error) as caught:
        fetch()
    assert text in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 9


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, "ApiNotStacks"), (410, "ApiGone"), (403, "ApiRejected"), (503, "Transient")],
    ids=["404", "410", "403", "503"],
)
def test_client_get_classifies_answers_like_tx_page(status: int, error: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"statusCode": status, "message": "nope"})

    client = ApiClient("http://api", transport=httpx.MockTransport(answer))
    with pytest.raises(Exception) as caught:
        asyncio.run(client.get("/extended/v2/burn-blocks", {"limit": 1}))
    assert type(caught.value).__name__ == error
    if status == 404:
        assert "/extended/v2/burn-blocks" in str(caught.value)


@respx.mock
def test_transport_failures_are_transient() -> None:
    respx.get(TX).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(Transient) as caught:
        fetch()
    assert caught.value.connect


@respx.mock
def test_deprecation_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    respx.get(TX).mock(
        return_value=httpx.Response(
            200, content=page_body([]), headers={"warning": '299 - "Deprecated API"'}
        )
    )

    async def go() -> None:
        async with ApiClient(BASE) as client:
            for _ in range(3):
                await client.tx_page()

    with caplog.at_level(logging.WARNING, logger="stxbf"):
        asyncio.run(go())
    warnings = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1


# -- what the client does itself: proxy, headers, timeouts, gzip, connections ---------------------

PAGE = orjson.dumps({"limit": 50, "offset": 0, "total": 0, "results": []})


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://api.hiro.so", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://api.hiro.so", "http://proxy:3128"),
        ({"https_proxy": "http://proxy:3128"}, "http://127.0.0.1:3999", None),
        ({"ALL_PROXY": "http://proxy:3128"}, "http://api.local:3999", "http://proxy:3128"),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "hiro.so"},
            "https://api.hiro.so",
            None,
        ),
    ],
    ids=["none", "https-proxy", "scheme-mismatch", "all-proxy", "no-proxy-wins"],
)
def test_the_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == expected


def test_headers_timeouts_and_gzip() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, headers={"content-encoding": "gzip"}, content=gzip.compress(PAGE)
        )

    async def go() -> object:
        async with ApiClient(
            "https://api.example.test",
            api_key="k",
            timeout=7.0,
            transport=httpx.MockTransport(handler),
        ) as client:
            return await client.tx_page(start_time=0, end_time=5, offset=100)

    response = asyncio.run(go())
    assert response.page.total == 0  # type: ignore[attr-defined]
    request = seen[0]
    assert request.url.host == "api.example.test" and request.url.path == "/extended/v1/tx"
    assert dict(request.url.params) == {
        "limit": "50",
        "offset": "100",
        "order": "asc",
        "sort_by": "block_height",
        "exclude_function_args": "true",
        "start_time": "1",
        "end_time": "5",
    }
    assert "gzip" in request.headers["accept-encoding"]
    assert request.headers["x-api-key"] == "k" and request.headers["user-agent"].startswith(
        "stxbf/"
    )
    assert request.extensions["timeout"]["read"] == 7.0


def test_connections_are_reused_and_bounded_over_real_http() -> None:
    async def go(url: str) -> None:
        async with ApiClient(url, max_connections=3) as client:
            await asyncio.gather(*(client.tx_page(offset=i * 50) for i in range(30)))
            assert 1 <= len(client._owned) <= 3

    with run_in_thread(SimConfig(days=1, tx_per_day=2000, seed=4)) as sim:
        asyncio.run(go(sim.url))
        stats = sim.api.stats()
    assert stats["connections_total"] <= 3
    assert stats["max_in_flight"] <= 3
