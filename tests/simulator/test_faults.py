"""Each fault kind the simulator injects, seeded and at the rate asked, and its outage modes."""

from __future__ import annotations

from typing import NamedTuple

import orjson
import pytest

from stxbf.simulator import Action
from tests.simulator.helpers import (
    END,
    headers_of,
    make_api,
)

# ---- faults ------------------------------------------------------------------------------------


class FaultCase(NamedTuple):
    kind: str
    status: int
    action: Action


FAULT_CASES = [
    FaultCase("500", 500, Action.SEND),
    FaultCase("502", 502, Action.SEND),
    FaultCase("503", 503, Action.SEND),
    FaultCase("504", 504, Action.SEND),
    FaultCase("429", 429, Action.SEND),
    FaultCase("malformed", 200, Action.SEND),
    FaultCase("short", 200, Action.SEND),
    FaultCase("truncate", 200, Action.TRUNCATE),
    FaultCase("drop", 200, Action.DROP),
    FaultCase("stall", 200, Action.STALL),
]


@pytest.mark.parametrize("case", FAULT_CASES, ids=[c.kind for c in FAULT_CASES])
def test_each_fault_kind(case: FaultCase) -> None:
    api = make_api(fault_rate=1.0, fault_kinds=(case.kind,), rpm=100)
    response = api.handle("GET", "/extended/v1/tx?limit=50", {}, now=END)
    assert (response.status, response.action, response.fault) == (
        case.status,
        case.action,
        case.kind,
    )
    assert api.stats()["faults"][case.kind] == 1
    headers = headers_of(response)
    assert headers["ratelimit-remaining"] == "99"  # faulted requests count toward the limit
    if case.kind == "429":
        assert int(headers["retry-after"]) >= 1
    if case.kind == "malformed":
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.body)
    if case.kind == "short":
        page = orjson.loads(response.body)
        assert page["total"] == len(api.chain) and 0 < len(page["results"]) < 50
    if case.status in (500, 502, 503, 504):
        assert "error" in orjson.loads(response.body)


def test_faults_are_seeded_and_follow_the_rate() -> None:
    def sequence(seed: int) -> list[str | None]:
        api = make_api(seed=seed, fault_rate=0.3)
        return [api.handle("GET", "/extended/v1/tx", {}, now=END).fault for _ in range(300)]

    first = sequence(7)
    assert first == sequence(7)
    assert first != sequence(8)
    assert 50 < sum(kind is not None for kind in first) < 130


def test_faults_can_change_at_run_time() -> None:
    api = make_api()
    response = api.handle("POST", "/_sim/faults?rate=1&kinds=503", {}, now=END)
    assert orjson.loads(response.body) == {"rate": 1.0, "kinds": ["503"]}
    assert api.handle("GET", "/extended/v1/tx", {}, now=END).status == 503
    assert api.handle("POST", "/_sim/faults?rate=1&kinds=teapot", {}, now=END).status == 400
    api.set_faults(0.0)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END).status == 200


def test_outage_modes() -> None:
    api = make_api()
    api.handle("POST", "/_sim/outage?seconds=10&mode=503", {}, now=END)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 5).status == 503
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 11).status == 200
    api.outage(10, mode="refuse", now=END + 20)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 21).action is Action.REFUSE
    assert api.stats(now=END + 21)["outage_rejected"] == 2
