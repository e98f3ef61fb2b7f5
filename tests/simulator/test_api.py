"""The request pipeline of `SimApi.handle`: the `/_sim/` routes answered first, the API key, and
latency as a delay the front end carries out."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.simulator.helpers import (
    END,
    make_api,
)


def test_sim_routes_are_exempt_from_limits_and_faults() -> None:
    api = make_api(rpm=1, fault_rate=1.0)
    for _ in range(5):
        assert api.handle("GET", "/_sim/stats", {}, now=END).status == 200
    assert api.stats()["requests"] == 0


class KeyCase(NamedTuple):
    headers: dict[str, str]
    status: int
    test_id: str


KEY_CASES = [
    KeyCase({}, 401, "missing-key"),
    KeyCase({"x-api-key": "wrong"}, 403, "wrong-key"),
    KeyCase({"x-api-key": "sim-key"}, 200, "good-key"),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c.test_id for c in KEY_CASES])
def test_require_key(case: KeyCase) -> None:
    api = make_api(require_key=True)
    assert api.handle("GET", "/extended/v1/tx", case.headers, now=END).status == case.status


def test_latency_is_a_delay_with_jitter_not_a_sleep() -> None:
    api = make_api(latency_ms=200)
    delays = [api.handle("GET", "/extended/v1/tx", {}, now=END).delay for _ in range(20)]
    assert all(0.15 <= d <= 0.25 for d in delays)
    assert len(set(delays)) > 1
