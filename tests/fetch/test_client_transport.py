"""What the client does itself now that it talks to httpx transports directly (no AsyncClient)."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import orjson
import pytest

from stxbf.fetch.client import ApiClient
from stxbf.fetch.connections import environment_proxy
from stxbf.simulator import SimConfig, run_in_thread

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
