"""The httpx front end (`SimTransport`): socket faults become the exceptions httpx raises for
them, and pages read as over the network."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import httpx
import pytest

from stxbf.simulator import SimTransport
from tests.simulator.helpers import (
    END,
    Clock,
    make_api,
)

# ---- the httpx transport -------------------------------------------------------------------------


class TransportCase(NamedTuple):
    kind: str
    error: type[Exception]


TRANSPORT_CASES = [
    TransportCase("drop", httpx.RemoteProtocolError),
    TransportCase("stall", httpx.ReadTimeout),
    TransportCase("truncate", httpx.RemoteProtocolError),
]


@pytest.mark.parametrize("case", TRANSPORT_CASES, ids=[c.kind for c in TRANSPORT_CASES])
def test_transport_maps_socket_faults_to_httpx_errors(case: TransportCase) -> None:
    transport = SimTransport(make_api(fault_rate=1.0, fault_kinds=(case.kind,)), clock=Clock())
    with (
        httpx.Client(transport=transport, base_url="http://sim") as client,
        pytest.raises(case.error),
    ):
        client.get("/extended/v1/tx")


def test_transport_refuses_during_an_outage() -> None:
    api = make_api()
    api.outage(60, now=END)
    transport = SimTransport(api, clock=Clock(END + 1))
    with (
        httpx.Client(transport=transport, base_url="http://sim") as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("/extended/v1/tx")


def test_async_transport_pages_like_the_api() -> None:
    async def go() -> httpx.Response:
        transport = SimTransport(make_api(), clock=Clock())
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await client.get("/extended/v1/tx", params={"limit": 50, "offset": 100})

    response = asyncio.run(go())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    page = response.json()
    assert len(page["results"]) == 50 and page["offset"] == 100
