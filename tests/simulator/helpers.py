"""What the simulator's tests share: a fixed "now", a hand-moved clock, a small handler and the
walk through its pages."""

from __future__ import annotations

import re
from typing import Any

import orjson

from stxbf.simulator import Action, Chain, SimApi, SimConfig

END = 1_750_000_000  # a fixed "now" keeps every test deterministic
TX_ID = re.compile(r"^0x[0-9a-f]{64}$")
ADDRESS = re.compile(r"^SP[0123456789ABCDEFGHJKMNPQRSTVWXYZ]{39}$")
WINDOWS = ("second", "minute", "month")


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = END) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_api(**changes: Any) -> SimApi:
    config = SimConfig(days=2, end_time=END, **changes)
    return SimApi(config, epoch=END)


def get(api: SimApi, query: str = "", now: float = END, **headers: str) -> tuple[int, Any]:
    response = api.handle("GET", f"/extended/v1/tx?{query}", headers, now=now)
    assert response.action is Action.SEND
    return response.status, orjson.loads(response.body)


def all_pages(api: SimApi, query: str, limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """Walk offset paging to the end; return (total, every tx in served order)."""
    txs: list[dict[str, Any]] = []
    offset, total = 0, None
    while total is None or offset < total:
        status, page = get(api, f"{query}&limit={limit}&offset={offset}")
        assert status == 200
        total = page["total"]
        assert page["limit"] == limit and page["offset"] == offset
        txs += page["results"]
        offset += limit
    return total or 0, txs


def middle_window(chain: Chain) -> tuple[int, int]:
    times = chain.tenure_burn_time
    return times[len(times) // 3], times[len(times) // 3 + 5]


def headers_of(response: Any) -> dict[str, str]:
    return dict(response.headers)
