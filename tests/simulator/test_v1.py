"""`/extended/v1/tx` as the handler answers it (no sockets): Fastify's 400s, inclusive time
bounds, a stable total order, paging that covers every transaction once, and the route's
deprecation states (a `Warning: 299`, or `410 Gone`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pytest

from stxbf.simulator import KINDS, Chain, SimApi, SimConfig
from tests.simulator.helpers import (
    END,
    all_pages,
    fastify_400,
    get,
    headers_of,
    make_api,
    middle_window,
)

# ---- validation -------------------------------------------------------------------------------


class BadQuery(NamedTuple):
    query: str
    message: str  # Fastify's schemaErrorFormatter over Ajv's errors
    test_id: str


def _anyof(path: str, branches: int) -> str:
    """Ajv's errors for a TypeBox Type.Enum (an anyOf of constants), joined by Fastify."""
    consts = [f"querystring/{path} must be equal to constant"] * branches
    return ", ".join([*consts, f"querystring/{path} must match a schema in anyOf"])


BAD_QUERIES = [
    # the message the real API's own test expects (tests/api/datastore/other.test.ts)
    BadQuery("limit=51", "querystring/limit must be <= 50", "limit-over-50"),
    BadQuery("limit=ten", "querystring/limit must be integer", "limit-not-int"),
    BadQuery("limit=-1", "querystring/limit must be >= 0", "limit-negative"),
    BadQuery("offset=-1", "querystring/offset must be >= 0", "offset-negative"),
    BadQuery("offset=1.5", "querystring/offset must be integer", "offset-fraction"),
    BadQuery("order=up", _anyof("order", 2), "order-unknown"),
    BadQuery("sort_by=nonce", _anyof("sort_by", 3), "sort-by-unknown"),
    BadQuery("type=coinbase,bogus", _anyof("type/1", 6), "type-unknown"),
    BadQuery("start_time=yesterday", "querystring/start_time must be integer", "start-not-int"),
    BadQuery("unanchored=1", "querystring/unanchored must be boolean", "unanchored-not-bool"),
    BadQuery(
        "exclude_function_args=yes",
        "querystring/exclude_function_args must be boolean",
        "exclude-args-not-bool",
    ),
    # Ajv stops at the first property in the schema's order: offset comes before limit
    BadQuery("limit=99&offset=-5", "querystring/offset must be >= 0", "first-error-only"),
]


@pytest.mark.parametrize("case", BAD_QUERIES, ids=[c.test_id for c in BAD_QUERIES])
def test_bad_queries_are_fastify_400s(api: SimApi, case: BadQuery) -> None:
    status, body = get(api, case.query)
    assert status == 400
    assert body == fastify_400(case.message)


def test_limit_zero_means_the_default(api: SimApi) -> None:
    """pagination.ts getPagingQueryLimit: `if (!limitOverride) return defaultLimit`."""
    status, page = get(api, "limit=0")
    assert status == 200 and page["limit"] == 20 and len(page["results"]) == 20


def test_sim_control_400s_have_the_same_shape() -> None:
    api = make_api()
    targets = (
        "/_sim/outage?mode=sideways",
        "/_sim/outage?seconds=soon",
        "/_sim/v1?state=off",
        "/_sim/limits?request_cost=0",
        "/_sim/limits?month_seconds=monthly",
    )
    for target in targets:
        response = api.handle("POST", target, {}, now=END)
        body = orjson.loads(response.body)
        assert response.status == 400, target
        assert set(body) == {"statusCode", "code", "error", "message"}
        assert (body["statusCode"], body["error"]) == (400, "Bad Request")


def test_defaults_limit_20_desc_and_envelope(api: SimApi) -> None:
    status, page = get(api)
    assert status == 200
    assert set(page) == {"limit", "offset", "total", "results"}
    assert (page["limit"], page["offset"], page["total"]) == (20, 0, len(api.chain))
    heights = [(tx["block_height"], tx["tx_index"]) for tx in page["results"]]
    assert heights == sorted(heights, reverse=True)
    assert page["results"][0]["tx_id"] == api.chain.tx_id(len(api.chain) - 1)


def test_other_paths_are_404_json(api: SimApi) -> None:
    response = api.handle("GET", "/extended/v1/address/SP000/transactions", {})
    assert response.status == 404
    assert orjson.loads(response.body) == {
        "message": "Route GET:/extended/v1/address/SP000/transactions not found",
        "error": "Not Found",
        "statusCode": 404,
    }
    assert api.handle("GET", "/v2/info", {}).status == 404


def test_status_route_reports_the_tip(api: SimApi) -> None:
    response = api.handle("GET", "/extended", {})
    body = orjson.loads(response.body)
    assert body["status"] == "ready"
    assert body["chain_tip"]["block_height"] == api.chain.summary()["tip_block_height"]


# ---- time bounds and paging --------------------------------------------------------------------


def test_time_bounds_are_inclusive_on_burn_block_time(api: SimApi) -> None:
    chain = api.chain
    burn = chain.tenure_burn_time[10]
    status, page = get(api, f"start_time={burn}&end_time={burn}&limit=50")
    assert status == 200
    assert page["total"] == chain.count(burn, burn) > 0
    assert {tx["burn_block_time"] for tx in page["results"]} == {burn}
    assert get(api, f"start_time={burn + 1}&end_time={burn + 1}")[1]["total"] == 0


def test_zero_bounds_are_ignored(api: SimApi) -> None:
    total = len(api.chain)
    assert get(api, "start_time=0&end_time=0")[1]["total"] == total
    burn = api.chain.tenure_burn_time[-3]
    assert get(api, f"start_time={burn}&end_time=0")[1]["total"] == api.chain.count(burn, None)


def test_no_data_before_genesis() -> None:
    chain = Chain(seed=2, days=3, end_time=END)
    assert chain.tenure_burn_time[0] >= END - 3 * 86400
    assert chain.count(None, END - 3 * 86400 - 1) == 0
    assert 0.85 < len(chain) / (3 * 6000) < 1.15


SORTS = [
    ("block_height", "asc"),
    ("block_height", "desc"),
    ("burn_block_time", "asc"),
    ("burn_block_time", "desc"),
    ("fee", "asc"),
    ("fee", "desc"),
]


def _sort_key(sort_by: str, tx: dict[str, Any]) -> tuple[int, ...]:
    if sort_by == "fee":
        return (int(tx["fee_rate"]), tx["block_height"], tx["tx_index"])
    if sort_by == "burn_block_time":
        return (tx["burn_block_time"], tx["block_height"], tx["tx_index"])
    return (tx["block_height"], tx["microblock_sequence"], tx["tx_index"])


@pytest.mark.parametrize(("sort_by", "order"), SORTS, ids=[f"{s}-{o}" for s, o in SORTS])
def test_paging_covers_every_tx_once_in_total_order(api: SimApi, sort_by: str, order: str) -> None:
    start, end = middle_window(api.chain)
    total, txs = all_pages(
        api, f"start_time={start}&end_time={end}&sort_by={sort_by}&order={order}"
    )
    ids = [tx["tx_id"] for tx in txs]
    assert total == len(ids) == len(set(ids))
    assert set(ids) == set(api.chain.tx_ids(start, end))
    keys = [_sort_key(sort_by, tx) for tx in txs]
    assert keys == sorted(keys, reverse=order == "desc")


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort_by", ["block_height", "fee"])
def test_type_filter_pages_exactly_the_matching_txs(api: SimApi, sort_by: str, order: str) -> None:
    start, end = middle_window(api.chain)
    query = f"start_time={start}&end_time={end}&type=smart_contract,coinbase&sort_by={sort_by}"
    total, txs = all_pages(api, f"{query}&order={order}", limit=7)
    chain = api.chain
    wanted = {KINDS.index("smart_contract"), KINDS.index("coinbase")}
    expected = {chain.tx_id(i) for i in chain.tx_range(start, end) if chain.tx_kind[i] in wanted}
    assert total == len(txs) == len(expected)
    assert {tx["tx_id"] for tx in txs} == expected
    keys = [_sort_key(sort_by, tx) for tx in txs]
    assert keys == sorted(keys, reverse=order == "desc")
    # repeated `type=` parameters mean the same as a comma list
    repeated = f"start_time={start}&end_time={end}&type=smart_contract&type=coinbase&limit=1"
    assert get(api, repeated)[1]["total"] == total


def test_same_query_same_page() -> None:
    """Determinism from the seed alone: two simulators built apart, no page cache between them."""
    first = make_api(seed=9, page_cache_bytes=0, own_chain=True)
    second = make_api(seed=9, page_cache_bytes=0, own_chain=True)
    assert first.chain is not second.chain
    query = "offset=120&limit=50&type=contract_call,coinbase,tenure_change,smart_contract"
    assert get(first, query) == get(second, query)
    assert get(first, "offset=3000&limit=50") == get(second, "offset=3000&limit=50")
    assert first._cache.hits == second._cache.hits == 0
    assert get(make_api(seed=10), query) != get(first, query)


DEPRECATION_WARNING = '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"'
GONE_BODY = {
    "error": "Gone",
    "message": "This endpoint has been disabled. See https://docs.hiro.so/stacks/api for more "
    "information",
}


class V1Case(NamedTuple):
    config: dict[str, Any]
    status: int
    warning: str | None
    test_id: str


V1_CASES = [
    V1Case({}, 200, None, "default-on"),
    V1Case({"v1": "on"}, 200, None, "on"),
    V1Case({"v1": "deprecated"}, 200, DEPRECATION_WARNING, "deprecated"),
    V1Case({"v1": "gone"}, 410, DEPRECATION_WARNING, "gone"),
    V1Case({"deprecation": True}, 200, DEPRECATION_WARNING, "older-deprecation-flag"),
    V1Case({"v1_gone": True}, 410, DEPRECATION_WARNING, "older-v1-gone-flag"),
]


@pytest.mark.parametrize("case", V1_CASES, ids=[c.test_id for c in V1_CASES])
def test_v1_route_states(case: V1Case) -> None:
    """deprecation-plugin.ts: onSend adds the Warning to the deprecated route; switched off,
    onRequest answers 410 {error, message} before validation (the Warning still goes out)."""
    api = make_api(**case.config)
    response = api.handle("GET", "/extended/v1/tx?limit=999", {}, now=END)
    assert response.status == (400 if case.status == 200 else case.status)
    assert headers_of(response).get("warning") == case.warning
    if case.status == 410:
        assert orjson.loads(response.body) == GONE_BODY
    assert "warning" not in headers_of(api.handle("GET", "/extended", {}, now=END))


def test_v1_switches_in_the_middle_of_a_run() -> None:
    api = make_api(rpm=100)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END).status == 200
    switched = api.handle("POST", "/_sim/v1?state=deprecated", {}, now=END)
    assert orjson.loads(switched.body) == {"v1": "deprecated"}
    assert headers_of(api.handle("GET", "/extended/v1/tx", {}, now=END))["warning"]
    api.handle("POST", "/_sim/v1?state=gone", {}, now=END)
    gone = api.handle("GET", "/extended/v1/tx", {}, now=END + 1)
    assert gone.status == 410 and headers_of(gone)["ratelimit-remaining"] == "97"
    assert orjson.loads(api.handle("GET", "/_sim/v1", {}, now=END).body) == {"v1": "gone"}
    assert api.stats()["v1"] == "gone"
    api.set_v1("on")
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 2).status == 200
    with pytest.raises(ValueError, match="on, deprecated, gone"):
        api.set_v1("off")
    with pytest.raises(ValueError, match="v1 must be"):
        SimConfig(v1="retired")


def test_v1_gone_after_n_requests_is_the_operators_switch() -> None:
    """`v1_gone_after` (`sim serve --v1-gone-after`): N tx-list answers, then 410 Gone."""
    api = SimApi(SimConfig(days=1, tx_per_day=500, end_time=END, v1_gone_after=2), epoch=END)
    statuses = [api.handle("GET", "/extended/v1/tx?limit=1", {}, now=END).status for _ in range(4)]
    assert statuses == [200, 200, 410, 410]
    with pytest.raises(ValueError, match="v1_gone_after"):
        SimConfig(v1_gone_after=-1)
