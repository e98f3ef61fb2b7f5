"""What the simulator's tests share: a fixed "now", a hand-moved clock, a small handler and the
walk through its pages."""

from __future__ import annotations

import inspect
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


CHAIN_FIELDS = tuple(inspect.signature(Chain).parameters)  # the config fields a chain is built from
_chains: dict[tuple[Any, ...], Chain] = {}  # the shared chains, by what they are built from


_built: dict[tuple[Any, ...], tuple[int, int]] = {}  # each shared chain's length and version


def changed_shared_chains() -> list[tuple[Any, ...]]:
    """Return the keys of the shared chains that are no longer as they were built."""
    return [key for key, chain in _chains.items() if (len(chain), chain.version) != _built[key]]


def make_api(*, own_chain: bool = False, **changes: Any) -> SimApi:
    """Return a simulator over two days ending at END. A chain that does not grow never changes,
    so simulators whose configs build the same one share it (each builds its own in ~25 ms).
    `own_chain` builds one anyway: for a test of determinism, which compares two built apart,
    and for any test that changes the chain (an anomaly), which would change it for every other
    test (tests/simulator/conftest.py checks that no shared chain changes)."""
    config = SimConfig(days=2, end_time=END, **changes)
    if config.growth or own_chain:
        return SimApi(config, epoch=END)
    key = tuple(getattr(config, name) for name in CHAIN_FIELDS)
    if key not in _chains:
        chain = _chains[key] = SimApi(config, epoch=END).chain
        _built[key] = (len(chain), chain.version)
    return SimApi(config, _chains[key], epoch=END)


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


def fastify_400(message: str) -> dict[str, Any]:
    """Return the body the real API's Fastify sends for a request its schema rejects (Ajv's
    message through schemaErrorFormatter; tests/fixtures/realapi/v1_tx_bad_limit.json)."""
    return {
        "statusCode": 400,
        "code": "FST_ERR_VALIDATION",
        "error": "Bad Request",
        "message": message,
    }
