"""Rate limits in the handler: the windows, their headers in each style Hiro documents, the audit
of requests sent before a retry-after, cost units and the monthly quota."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pytest

from stxbf.simulator import SimApi, SimConfig
from tests.simulator.helpers import (
    END,
    WINDOWS,
    headers_of,
    make_api,
)

# ---- rate limits and the early-request audit -------------------------------------------------


def test_rate_limit_headers_429_and_retry_after() -> None:
    api = make_api(rpm=3)
    seen = []
    for step in range(3):
        response = api.handle("GET", "/extended/v1/tx", {}, now=END + step)
        assert response.status == 200
        seen.append(headers_of(response))
    assert [h["ratelimit-remaining"] for h in seen] == ["2", "1", "0"]
    assert {h["ratelimit-limit"] for h in seen} == {"3"}
    assert {h["x-ratelimit-limit-stacks-minute"] for h in seen} == {"3"}
    assert seen[0]["x-ratelimit-remaining-stacks-minute"] == "2"
    assert 1 <= int(seen[2]["ratelimit-reset"]) <= 60
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 3)
    assert limited.status == 429
    retry_after = int(headers_of(limited)["retry-after"])
    assert retry_after == 57  # the first request leaves the 60 s window at END + 60
    assert "error" in orjson.loads(limited.body)
    # a patient client is served once the window frees a slot
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 3 + retry_after).status == 200
    assert api.stats()["early_requests"] == 0
    assert api.stats()["rate_limited"] == 1


def test_early_requests_are_audited_but_in_flight_ones_are_not() -> None:
    api = make_api(rpm=1)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 1).status == 429  # retry-after 59
    api.handle("GET", "/extended/v1/tx", {}, now=END + 1.1)  # was already in flight: grace
    assert api.stats()["early_requests"] == 0
    api.handle("GET", "/extended/v1/tx", {}, now=END + 30)  # ignored retry-after
    assert api.stats()["early_requests"] == 1
    assert api.stats()["clients"]["127.0.0.1"]["early"] == 1


def test_limits_are_per_client_key_or_ip() -> None:
    api = make_api(rpm=1)
    assert api.handle("GET", "/extended/v1/tx", {"x-api-key": "a"}, now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {"x-api-key": "b"}, now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {"x-api-key": "key-1"}, now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {"x-api-key": "key-2"}, now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {}, client="10.0.0.2", now=END).status == 200
    assert api.handle("GET", "/extended/v1/tx", {"x-api-key": "a"}, now=END).status == 429
    clients = api.stats()["clients"]
    assert len(clients) == 5
    assert not any(who in ("a", "key-1") or "key-1" in who for who in clients)  # masked


def test_per_second_cap() -> None:
    api = make_api(rpm=600, per_second=2)
    statuses = [
        api.handle("GET", "/extended/v1/tx", {}, now=END + 0.1 * i).status for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 0.3)
    assert headers_of(limited)["retry-after"] == "1"
    assert headers_of(limited)["x-ratelimit-limit-stacks-second"] == "2"
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 1.5).status == 200


# ---- rate-limit header styles (Hiro's documented set, each enforced) --------------------------

LIMIT_HEADERS = {
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "retry-after",
    "x-ratelimit-cost-stacks",
    *(f"x-ratelimit-{kind}-stacks-{w}" for kind in ("limit", "remaining") for w in WINDOWS),
}


def _limit_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers if k in LIMIT_HEADERS}


class StyleCase(NamedTuple):
    config: dict[str, Any]
    first: dict[str, str]  # the limit headers of the first answer, exactly
    test_id: str


STYLE_CASES = [
    StyleCase(
        {"rpm": 120, "per_second": 5},
        {
            "ratelimit-limit": "120",
            "ratelimit-remaining": "119",
            "ratelimit-reset": "60",
            "x-ratelimit-limit-stacks-minute": "120",
            "x-ratelimit-remaining-stacks-minute": "119",
            "x-ratelimit-limit-stacks-second": "5",
            "x-ratelimit-remaining-stacks-second": "4",
        },
        "full-generic-minute-default",
    ),
    StyleCase(
        {"rpm": 120, "per_second": 5, "rate_generic_window": "second"},
        {
            "ratelimit-limit": "5",
            "ratelimit-remaining": "4",
            "ratelimit-reset": "1",
            "x-ratelimit-limit-stacks-minute": "120",
            "x-ratelimit-remaining-stacks-minute": "119",
            "x-ratelimit-limit-stacks-second": "5",
            "x-ratelimit-remaining-stacks-second": "4",
        },
        "full-generic-second",
    ),
    StyleCase(  # exactly what an independent per-second API sent
        {"per_second": 40, "rate_headers": "second"},
        {
            "ratelimit-limit": "40",
            "ratelimit-remaining": "39",
            "ratelimit-reset": "1",
            "x-ratelimit-limit-stacks-second": "40",
            "x-ratelimit-remaining-stacks-second": "39",
        },
        "second-only",
    ),
    StyleCase(
        {"rpm": 50, "rate_headers": "minute"},
        {
            "ratelimit-limit": "50",
            "ratelimit-remaining": "49",
            "ratelimit-reset": "60",
            "x-ratelimit-limit-stacks-minute": "50",
            "x-ratelimit-remaining-stacks-minute": "49",
        },
        "minute-only",
    ),
    StyleCase(
        {"rpm": 50, "rate_headers": "generic"},
        {"ratelimit-limit": "50", "ratelimit-remaining": "49", "ratelimit-reset": "60"},
        "generic-no-policy",
    ),
    StyleCase(
        {"rpm": 50, "rate_headers": "generic-policy"},
        {
            "ratelimit-limit": "50",
            "ratelimit-remaining": "49",
            "ratelimit-reset": "60",
            "ratelimit-policy": "50;w=60",
        },
        "generic-policy-minute",
    ),
    StyleCase(
        {"per_second": 10, "rate_headers": "generic-policy", "rate_generic_window": "second"},
        {
            "ratelimit-limit": "10",
            "ratelimit-remaining": "9",
            "ratelimit-reset": "1",
            "ratelimit-policy": "10;w=1",
        },
        "generic-policy-second",
    ),
    StyleCase(
        {"per_second": 10, "request_cost": 3, "rate_headers": "second"},
        {
            "ratelimit-limit": "10",
            "ratelimit-remaining": "7",
            "ratelimit-reset": "1",
            "x-ratelimit-limit-stacks-second": "10",
            "x-ratelimit-remaining-stacks-second": "7",
            "x-ratelimit-cost-stacks": "3",
        },
        "cost-3",
    ),
    StyleCase(
        {"rpm": 50, "month_quota": 1000, "month_seconds": 86400.0, "rate_headers": "minute"},
        {
            "ratelimit-limit": "50",
            "ratelimit-remaining": "49",
            "ratelimit-reset": "60",
            "x-ratelimit-limit-stacks-minute": "50",
            "x-ratelimit-remaining-stacks-minute": "49",
            "x-ratelimit-limit-stacks-month": "1000",
            "x-ratelimit-remaining-stacks-month": "999",
        },
        "monthly-quota",
    ),
    StyleCase(
        {"rpm": 50, "rate_headers": "generic", "rate_reset": "unix"},
        {"ratelimit-limit": "50", "ratelimit-remaining": "49", "ratelimit-reset": str(END + 60)},
        "reset-as-unix-time",
    ),
    StyleCase({"rpm": 50, "rate_headers": "none"}, {}, "none"),
]


@pytest.mark.parametrize("case", STYLE_CASES, ids=[c.test_id for c in STYLE_CASES])
def test_each_rate_header_style_sends_exactly_its_headers(case: StyleCase) -> None:
    api = make_api(**case.config)
    assert _limit_headers(api.handle("GET", "/extended/v1/tx", {}, now=END)) == case.first


def _polite_run(api: SimApi, seconds: float, step: float) -> tuple[list[float], int]:
    """A client that asks every `step` s and, after a 429, waits exactly its retry-after:
    (the times it was served, how many 429s it got)."""
    served: list[float] = []
    refused, now = 0, float(END)
    while now < END + seconds:
        response = api.handle("GET", "/extended/v1/tx?limit=1", {}, now=now)
        if response.status == 429:
            refused += 1
            now += int(headers_of(response)["retry-after"])
        else:
            assert response.status == 200
            served.append(now)
            now += step
    return served, refused


@pytest.mark.parametrize("case", STYLE_CASES, ids=[c.test_id for c in STYLE_CASES])
def test_each_style_is_enforced_and_patience_is_served(case: StyleCase) -> None:
    """Whatever a style announces, the configured windows hold (in cost units), and a client
    that waits each retry-after out is served again, with no request counted early."""
    config = case.config
    api = make_api(**config)
    cost = config.get("request_cost", 1)
    window, limit = (
        (1.0, config["per_second"]) if config.get("per_second") else (60.0, config["rpm"])
    )
    served, refused = _polite_run(api, 3 * window, window / 200)
    assert refused > 0
    for start in served:  # no sliding window ever holds more than the limit
        assert sum(start <= t < start + window for t in served) * cost <= limit
    assert sum(t < END + window for t in served) == limit // cost  # and it is reached
    assert max(served) >= END + 2 * window  # served again after waiting
    stats = api.stats()
    assert stats["early_requests"] == 0
    style = config.get("rate_headers", "full")
    assert stats["by_style"][style]["rate_limited"] == stats["rate_limited"] == refused
    assert stats["by_style"][style]["requests"] == stats["requests"]


@pytest.mark.parametrize("case", STYLE_CASES, ids=[c.test_id for c in STYLE_CASES])
def test_each_style_audits_a_request_sent_before_retry_after(case: StyleCase) -> None:
    api = make_api(**case.config)
    now = float(END)
    while (response := api.handle("GET", "/extended/v1/tx", {}, now=now)).status == 200:
        now += 0.001
    retry_after = int(headers_of(response)["retry-after"])
    api.handle("GET", "/extended/v1/tx", {}, now=now + retry_after / 2)  # impatient
    stats = api.stats()
    style = case.config.get("rate_headers", "full")
    assert stats["early_requests"] == stats["by_style"][style]["early"] == 1


def test_generic_reset_counts_down_the_window_it_describes() -> None:
    api = make_api(rpm=3, rate_headers="generic")
    resets = [
        headers_of(api.handle("GET", "/extended/v1/tx", {}, now=END + t))["ratelimit-reset"]
        for t in (0, 20, 40)
    ]
    assert resets == ["60", "40", "20"]  # until the first request leaves the window
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 45)
    assert headers_of(limited)["ratelimit-reset"] == headers_of(limited)["retry-after"] == "15"
    unix = make_api(rpm=3, rate_headers="generic", rate_reset="unix")
    for t in (0, 20, 40):
        unix.handle("GET", "/extended/v1/tx", {}, now=END + t)
    limited = unix.handle("GET", "/extended/v1/tx", {}, now=END + 45.5)
    assert headers_of(limited)["retry-after"] == "15"
    assert int(headers_of(limited)["ratelimit-reset"]) == END + 46 + 15


def test_cost_units_drain_the_window_faster() -> None:
    api = make_api(rpm=10, request_cost=4, rate_headers="minute")
    remaining = [
        headers_of(api.handle("GET", "/extended/v1/tx", {}, now=END + t))[
            "x-ratelimit-remaining-stacks-minute"
        ]
        for t in (0, 1)
    ]
    assert remaining == ["6", "2"]
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 2)
    assert limited.status == 429 and headers_of(limited)["x-ratelimit-cost-stacks"] == "4"
    # 4 units must free up: only when the first request (4 units) leaves at END + 60
    assert headers_of(limited)["retry-after"] == "58"


def test_monthly_quota_refuses_until_the_calendar_month_ends() -> None:
    api = make_api(rpm=100, month_quota=3)  # END is 2025-06-15 15:06:40 UTC
    for t in range(3):
        assert api.handle("GET", "/extended/v1/tx", {}, now=END + t).status == 200
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 3)
    headers = headers_of(limited)
    assert limited.status == 429
    assert headers["x-ratelimit-remaining-stacks-month"] == "0"
    july = 1_751_328_000  # 2025-07-01T00:00:00Z
    assert int(headers["retry-after"]) == july - (END + 3) > 86400
    assert "quota" in orjson.loads(limited.body)["error"]
    # asking again an hour later ignores the retry-after: the audit sees it
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 3600).status == 429
    stats = api.stats()
    assert (stats["quota_exhausted"], stats["early_requests"]) == (2, 1)
    assert api.handle("GET", "/extended/v1/tx", {}, now=july).status == 200


def test_monthly_quota_with_a_short_period_resets_on_time() -> None:
    api = make_api(month_quota=2, month_seconds=600.0)
    period_end = (END // 600 + 1) * 600
    statuses = [api.handle("GET", "/extended/v1/tx", {}, now=END + t).status for t in range(3)]
    assert statuses == [200, 200, 429]
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 3)
    assert int(headers_of(limited)["retry-after"]) == period_end - (END + 3)
    fresh = api.handle("GET", "/extended/v1/tx", {}, now=period_end)
    assert fresh.status == 200 and headers_of(fresh)["x-ratelimit-remaining-stacks-month"] == "1"


def test_styles_switch_at_run_time_and_count_apart() -> None:
    api = make_api(rpm=2)
    for t in range(3):
        api.handle("GET", "/extended/v1/tx", {}, now=END + t)
    response = api.handle(
        "POST",
        "/_sim/limits?rpm=0&per_second=40&rate_headers=second&request_cost=2&month_quota=500",
        {},
        now=END,
    )
    limits = orjson.loads(response.body)
    assert (limits["rate_headers"], limits["per_second"], limits["request_cost"]) == (
        "second",
        40,
        2,
    )
    answer = api.handle("GET", "/extended/v1/tx", {}, now=END + 100)
    assert _limit_headers(answer) == {
        "ratelimit-limit": "40",
        "ratelimit-remaining": "38",
        "ratelimit-reset": "1",
        "x-ratelimit-limit-stacks-second": "40",
        "x-ratelimit-remaining-stacks-second": "38",
        "x-ratelimit-limit-stacks-month": "500",
        "x-ratelimit-remaining-stacks-month": "498",
        "x-ratelimit-cost-stacks": "2",
    }
    by_style = api.stats()["by_style"]
    assert by_style["full"]["requests"] == 3 and by_style["full"]["rate_limited"] == 1
    assert by_style["second"] == {
        "requests": 1,
        "rate_limited": 0,
        "early": 0,
        "quota_exhausted": 0,
    }
    bad = api.handle("POST", "/_sim/limits?rate_headers=minute", {}, now=END)
    assert bad.status == 400 and "minute window" in orjson.loads(bad.body)["message"]
    assert api.stats()["limits"]["rate_headers"] == "second"  # a refused change changes nothing


class BadLimits(NamedTuple):
    config: dict[str, Any]
    match: str
    test_id: str


BAD_LIMITS = [
    BadLimits({"rate_headers": "fancy"}, "rate_headers must be one of", "unknown-style"),
    BadLimits({"rpm": 60, "rate_headers": "second"}, "second window", "second-without-limit"),
    BadLimits({"per_second": 5, "rate_headers": "minute"}, "minute window", "minute-without-rpm"),
    BadLimits({"per_second": 2, "request_cost": 3}, "nothing could pass", "cost-over-limit"),
    BadLimits({"rpm": 60, "rate_reset": "http-date"}, "reset format", "unknown-reset"),
    BadLimits({"rpm": 60, "rate_generic_window": "hour"}, "generic window", "unknown-window"),
    BadLimits({"per_second": -1}, "must be >= 0", "negative-limit"),  # used to crash a handler
]


@pytest.mark.parametrize("case", BAD_LIMITS, ids=[c.test_id for c in BAD_LIMITS])
def test_impossible_limit_configs_are_refused(case: BadLimits) -> None:
    with pytest.raises(ValueError, match=case.match):
        SimConfig(**case.config)
