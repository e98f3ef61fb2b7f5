"""The HTTP client at the edges (respx): each answer the API can give, classified."""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson
import pytest
import respx

from stxbf.errors import ApiGone, ApiNotStacks, ApiRejected
from stxbf.fetch.client import ApiClient, RateLimited
from stxbf.fetch.connections import Transient

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


def _page_source(give_up_after: float = 30.0):  # type: ignore[no-untyped-def]
    from stxbf.fetch.pacer import Pacer
    from stxbf.fetch.pages import PageSource

    return PageSource(ApiClient(BASE), Pacer(rpm=None), give_up_after=give_up_after)


@respx.mock
def test_a_retry_after_longer_than_give_up_after_stops_at_once_as_a_quota() -> None:
    from stxbf.errors import QuotaExhausted

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
    from stxbf.errors import QuotaExhausted

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
    from stxbf.errors import QuotaExhausted

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
