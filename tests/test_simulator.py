"""The simulator's handler, chain and httpx transport, without sockets (fast).

The simulator must answer like Hiro's `/extended/v1/tx`: these tests pin the semantics a client
relies on (validation, inclusive time bounds, stable total ordering, paging that covers every tx
once), the realistic shape of a tx, rate limits and the early-request audit, each fault kind, and
chain growth. Loopback HTTP is covered in test_simulator_server.py.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from stxbf.simulator import KINDS, Action, Chain, SimApi, SimConfig, SimTransport
from stxbf.simulator.chain import FEE_LADDER

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


@pytest.fixture(scope="module")
def api() -> SimApi:
    return make_api()


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
    assert body == {
        "statusCode": 400,
        "code": "FST_ERR_VALIDATION",
        "error": "Bad Request",
        "message": case.message,
    }


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
    first, second = make_api(seed=9, page_cache_bytes=0), make_api(seed=9, page_cache_bytes=0)
    query = "offset=120&limit=50&type=contract_call,coinbase,tenure_change,smart_contract"
    assert get(first, query) == get(second, query)
    assert get(first, "offset=3000&limit=50") == get(second, "offset=3000&limit=50")
    assert first._cache.hits == second._cache.hits == 0
    assert get(make_api(seed=10), query) != get(first, query)


# ---- realistic shapes ----------------------------------------------------------------------------

COMMON_FIELDS = {
    "tx_id",
    "nonce",
    "fee_rate",
    "sender_address",
    "sponsored",
    "post_condition_mode",
    "post_conditions",
    "anchor_mode",
    "block_hash",
    "block_height",
    "block_time",
    "block_time_iso",
    "burn_block_time",
    "burn_block_time_iso",
    "burn_block_height",
    "parent_burn_block_time",
    "parent_block_hash",
    "canonical",
    "microblock_canonical",
    "microblock_sequence",
    "microblock_hash",
    "tx_index",
    "tx_status",
    "tx_result",
    "event_count",
    "execution_cost_read_count",
    "execution_cost_runtime",
    "vm_error",
    "tx_type",
}
PAYLOAD_FIELDS = {
    "token_transfer": ("token_transfer", {"recipient_address", "amount", "memo"}),
    "contract_call": (
        "contract_call",
        {"contract_id", "function_name", "function_signature", "function_args"},
    ),
    "smart_contract": ("smart_contract", {"clarity_version", "contract_id", "source_code"}),
    "coinbase": ("coinbase_payload", {"data", "alt_recipient"}),
    "tenure_change": (
        "tenure_change_payload",
        {
            "tenure_consensus_hash",
            "prev_tenure_consensus_hash",
            "burn_view_consensus_hash",
            "previous_tenure_end",
            "previous_tenure_blocks",
            "cause",
            "pubkey_hash",
        },
    ),
}


@pytest.fixture(scope="module")
def sample(api: SimApi) -> list[dict[str, Any]]:
    """Two thousand consecutive txs, oldest first."""
    return all_pages(api, "order=asc&start_time=0", limit=50)[1][:2000]


def test_every_tx_looks_like_hiro(sample: list[dict[str, Any]]) -> None:
    for tx in sample:
        assert tx.keys() >= COMMON_FIELDS, COMMON_FIELDS - tx.keys()
        assert TX_ID.match(tx["tx_id"])
        assert ADDRESS.match(tx["sender_address"])
        assert isinstance(tx["fee_rate"], str) and tx["fee_rate"].isdigit()
        assert tx["canonical"] is True and tx["microblock_canonical"] is True
        assert tx["microblock_sequence"] == 2147483647 and tx["microblock_hash"] == "0x"
        assert tx["anchor_mode"] == "any" and tx["post_conditions"] == []
        assert tx["block_time"] >= tx["burn_block_time"]
        assert tx["block_time_iso"].endswith(".000Z")
        assert set(tx["tx_result"]) == {"hex", "repr"}
        assert ("sponsor_address" in tx) is tx["sponsored"]
        key, fields = PAYLOAD_FIELDS[tx["tx_type"]]
        assert fields <= tx[key].keys()
        if tx["tx_type"] == "token_transfer":
            assert isinstance(tx[key]["amount"], str) and int(tx[key]["amount"]) > 0
            assert ADDRESS.match(tx[key]["recipient_address"])


def test_pages_parse_with_the_clients_model(api: SimApi) -> None:
    """The drift detector: the client's model reads what the simulator writes, field for field."""
    from stxbf.models import TX_COLUMN_NAMES, parse_page

    response = api.handle("GET", "/extended/v1/tx?limit=50&order=asc&offset=0", {}, now=END)
    page = parse_page(response.body)
    raw = orjson.loads(response.body)["results"]
    assert (page.total, page.limit, page.offset, len(page.rows)) == (len(api.chain), 50, 0, 50)
    for row, tx in zip(page.rows, raw, strict=True):
        record = dict(zip(TX_COLUMN_NAMES, row, strict=True))
        assert record["tx_id"] == tx["tx_id"]
        assert record["fee_ustx"] == int(tx["fee_rate"])
        assert record["burn_block_time"] == tx["burn_block_time"]
        if tx["tx_type"] == "token_transfer":
            assert record["token_transfer_amount"] == int(tx["token_transfer"]["amount"])
        if tx["tx_type"] == "contract_call":
            assert record["function_name"] == tx["contract_call"]["function_name"]
        if tx["tx_type"] == "coinbase":
            assert record["coinbase_vrf_proof"] == tx["coinbase_payload"]["vrf_proof"]
            assert record["coinbase_alt_recipient"] == tx["coinbase_payload"]["alt_recipient"]
        if tx["tx_type"] == "tenure_change":
            assert record["tenure_change_cause"] == tx["tenure_change_payload"]["cause"]
        if tx["tx_type"] == "smart_contract":
            assert record["clarity_version"] == tx["smart_contract"]["clarity_version"]
    kinds = {tx["tx_type"] for tx in raw}
    assert {"coinbase", "tenure_change"} <= kinds  # the new columns were compared


def test_the_mix_is_realistic(sample: list[dict[str, Any]]) -> None:
    types = Counter(tx["tx_type"] for tx in sample)
    assert set(types) == set(KINDS)
    assert types["contract_call"] > types["token_transfer"] > types["smart_contract"] > 0
    statuses = Counter(tx["tx_status"] for tx in sample)
    failed = statuses["abort_by_response"] + statuses["abort_by_post_condition"]
    assert statuses["abort_by_response"] and statuses["abort_by_post_condition"]
    assert 0.005 < failed / len(sample) < 0.08
    assert any(tx["sponsored"] for tx in sample)
    assert len({(tx["sender_address"], tx["nonce"]) for tx in sample}) == len(sample)


@pytest.fixture(scope="module")
def every_tx(api: SimApi) -> list[dict[str, Any]]:
    """Every tx of the two-day chain, rendered straight from the renderer."""
    renderer = api.renderer
    return [orjson.loads(row) for row in renderer.page(list(range(len(api.chain))))]


def test_every_status_and_shape_the_v1_schema_allows_occurs(every_tx: list[dict[str, Any]]) -> None:
    """schemas/v1/entities/transactions.ts: the statuses, tenure-change causes, clarity versions
    and coinbase payloads a real page can hold all occur, the rare ones rarely."""
    statuses = Counter(tx["tx_status"] for tx in every_tx)
    assert set(statuses) == {
        "success",
        "abort_by_response",
        "abort_by_post_condition",
        "problematic_skipped",
    }
    assert 0 < statuses["problematic_skipped"] / len(every_tx) < 0.005
    changes = [tx for tx in every_tx if tx["tx_type"] == "tenure_change"]
    causes = Counter(tx["tenure_change_payload"]["cause"] for tx in changes)
    assert set(causes) == {
        "block_found",
        "extended",
        "extended_runtime",
        "extended_read_count",
        "extended_read_length",
        "extended_write_count",
        "extended_write_length",
    }
    assert causes["block_found"] > causes["extended"] > causes["extended_runtime"]
    for tx in changes:  # an extend stays in its tenure: same burn block, same consensus hash
        payload = tx["tenure_change_payload"]
        extended = payload["cause"] != "block_found"
        assert (
            payload["prev_tenure_consensus_hash"] == payload["tenure_consensus_hash"]
        ) is extended
        assert tx["tx_index"] == 0  # a tenure change opens its block
    versions = Counter(
        tx["smart_contract"]["clarity_version"] for tx in every_tx if "smart_contract" in tx
    )
    assert set(versions) == {None, 2, 3}
    coinbases = [tx["coinbase_payload"] for tx in every_tx if tx["tx_type"] == "coinbase"]
    assert all(set(c) == {"data", "alt_recipient", "vrf_proof"} for c in coinbases)
    assert all(re.fullmatch(r"0x[0-9a-f]{160}", c["vrf_proof"]) for c in coinbases)
    recipients = [c["alt_recipient"] for c in coinbases]
    assert None in recipients
    assert any(r and ADDRESS.match(r) for r in recipients)
    assert any(r and "." in r for r in recipients)  # a contract principal


def test_miner_nonces_stay_unique_with_tenure_extends(every_tx: list[dict[str, Any]]) -> None:
    pairs = [(tx["sender_address"], tx["nonce"]) for tx in every_tx]
    assert len(set(pairs)) == len(pairs)


def test_exclude_function_args_leaves_them_out_and_nothing_else(api: SimApi) -> None:
    """db-controller.ts parseContractCallMetadata: with exclude_function_args=true the key
    `function_args` is absent (not empty); every other field is unchanged. Asked in both orders
    on one simulator, the page cache must not hand one answer out for the other."""
    query = "type=contract_call&limit=50&offset=40"
    for flag_first in (False, True):
        sim = make_api(seed=3 if flag_first else 4)
        if flag_first:
            slim = get(sim, f"{query}&exclude_function_args=true")
            full = get(sim, query)
        else:
            full = get(sim, query)
            slim = get(sim, f"{query}&exclude_function_args=true")
        assert full[0] == slim[0] == 200
        assert all("function_args" in tx["contract_call"] for tx in full[1]["results"])
        assert all("function_args" not in tx["contract_call"] for tx in slim[1]["results"])
        for a, b in zip(full[1]["results"], slim[1]["results"], strict=True):
            del a["contract_call"]["function_args"]
            assert a == b
        again = get(sim, query)  # a cache hit now, and still the full shape
        assert all("function_args" in tx["contract_call"] for tx in again[1]["results"])
        assert get(sim, f"{query}&exclude_function_args=false") == again


def test_tenures_share_one_burn_time_across_many_blocks(sample: list[dict[str, Any]]) -> None:
    by_burn: dict[int, list[dict[str, Any]]] = {}
    for tx in sample:
        by_burn.setdefault(tx["burn_block_time"], []).append(tx)
    full = list(by_burn.values())[1:-1]  # whole tenures only
    assert full
    blocks_per_tenure = []
    for txs in full:
        assert len({tx["burn_block_height"] for tx in txs}) == 1
        first = [tx for tx in txs if tx["block_height"] == txs[0]["block_height"]]
        assert [tx["tx_type"] for tx in first[:2]] == ["tenure_change", "coinbase"]
        assert [tx["tx_index"] for tx in first[:2]] == [0, 1]
        blocks = {tx["block_height"]: tx["block_time"] for tx in txs}
        assert len(set(blocks.values())) == len(blocks)  # each block has its own time
        blocks_per_tenure.append(len(blocks))
    assert sorted(blocks_per_tenure)[len(blocks_per_tenure) // 2] >= 10
    gaps = [b - a for a, b in zip(list(by_burn), list(by_burn)[1:], strict=False)]
    assert 60 < sum(gaps) / len(gaps) < 1800


def test_tx_ids_are_unique_and_seeded() -> None:
    chain = Chain(seed=5, days=1, end_time=END)
    ids = chain.tx_ids()
    assert len(ids) == len(set(ids)) == len(chain)
    assert Chain(seed=5, days=1, end_time=END).tx_ids() == ids
    assert Chain(seed=6, days=1, end_time=END).tx_ids()[:5] != ids[:5]
    assert chain.digest() == Chain(seed=5, days=1, end_time=END).digest()


def test_fee_ladder_is_ascending_and_distinct() -> None:
    assert list(FEE_LADDER) == sorted(set(FEE_LADDER))


# ---- rate limits and the early-request audit -------------------------------------------------


def _headers(response: Any) -> dict[str, str]:
    return dict(response.headers)


def test_rate_limit_headers_429_and_retry_after() -> None:
    api = make_api(rpm=3)
    seen = []
    for step in range(3):
        response = api.handle("GET", "/extended/v1/tx", {}, now=END + step)
        assert response.status == 200
        seen.append(_headers(response))
    assert [h["ratelimit-remaining"] for h in seen] == ["2", "1", "0"]
    assert {h["ratelimit-limit"] for h in seen} == {"3"}
    assert {h["x-ratelimit-limit-stacks-minute"] for h in seen} == {"3"}
    assert seen[0]["x-ratelimit-remaining-stacks-minute"] == "2"
    assert 1 <= int(seen[2]["ratelimit-reset"]) <= 60
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 3)
    assert limited.status == 429
    retry_after = int(_headers(limited)["retry-after"])
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
    assert _headers(limited)["retry-after"] == "1"
    assert _headers(limited)["x-ratelimit-limit-stacks-second"] == "2"
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
            now += int(_headers(response)["retry-after"])
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
    retry_after = int(_headers(response)["retry-after"])
    api.handle("GET", "/extended/v1/tx", {}, now=now + retry_after / 2)  # impatient
    stats = api.stats()
    style = case.config.get("rate_headers", "full")
    assert stats["early_requests"] == stats["by_style"][style]["early"] == 1


def test_generic_reset_counts_down_the_window_it_describes() -> None:
    api = make_api(rpm=3, rate_headers="generic")
    resets = [
        _headers(api.handle("GET", "/extended/v1/tx", {}, now=END + t))["ratelimit-reset"]
        for t in (0, 20, 40)
    ]
    assert resets == ["60", "40", "20"]  # until the first request leaves the window
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 45)
    assert _headers(limited)["ratelimit-reset"] == _headers(limited)["retry-after"] == "15"
    unix = make_api(rpm=3, rate_headers="generic", rate_reset="unix")
    for t in (0, 20, 40):
        unix.handle("GET", "/extended/v1/tx", {}, now=END + t)
    limited = unix.handle("GET", "/extended/v1/tx", {}, now=END + 45.5)
    assert _headers(limited)["retry-after"] == "15"
    assert int(_headers(limited)["ratelimit-reset"]) == END + 46 + 15


def test_cost_units_drain_the_window_faster() -> None:
    api = make_api(rpm=10, request_cost=4, rate_headers="minute")
    remaining = [
        _headers(api.handle("GET", "/extended/v1/tx", {}, now=END + t))[
            "x-ratelimit-remaining-stacks-minute"
        ]
        for t in (0, 1)
    ]
    assert remaining == ["6", "2"]
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 2)
    assert limited.status == 429 and _headers(limited)["x-ratelimit-cost-stacks"] == "4"
    # 4 units must free up: only when the first request (4 units) leaves at END + 60
    assert _headers(limited)["retry-after"] == "58"


def test_monthly_quota_refuses_until_the_calendar_month_ends() -> None:
    api = make_api(rpm=100, month_quota=3)  # END is 2025-06-15 15:06:40 UTC
    for t in range(3):
        assert api.handle("GET", "/extended/v1/tx", {}, now=END + t).status == 200
    limited = api.handle("GET", "/extended/v1/tx", {}, now=END + 3)
    headers = _headers(limited)
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
    assert int(_headers(limited)["retry-after"]) == period_end - (END + 3)
    fresh = api.handle("GET", "/extended/v1/tx", {}, now=period_end)
    assert fresh.status == 200 and _headers(fresh)["x-ratelimit-remaining-stacks-month"] == "1"


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
    assert _headers(response).get("warning") == case.warning
    if case.status == 410:
        assert orjson.loads(response.body) == GONE_BODY
    assert "warning" not in _headers(api.handle("GET", "/extended", {}, now=END))


def test_v1_switches_in_the_middle_of_a_run() -> None:
    api = make_api(rpm=100)
    assert api.handle("GET", "/extended/v1/tx", {}, now=END).status == 200
    switched = api.handle("POST", "/_sim/v1?state=deprecated", {}, now=END)
    assert orjson.loads(switched.body) == {"v1": "deprecated"}
    assert _headers(api.handle("GET", "/extended/v1/tx", {}, now=END))["warning"]
    api.handle("POST", "/_sim/v1?state=gone", {}, now=END)
    gone = api.handle("GET", "/extended/v1/tx", {}, now=END + 1)
    assert gone.status == 410 and _headers(gone)["ratelimit-remaining"] == "97"
    assert orjson.loads(api.handle("GET", "/_sim/v1", {}, now=END).body) == {"v1": "gone"}
    assert api.stats()["v1"] == "gone"
    api.set_v1("on")
    assert api.handle("GET", "/extended/v1/tx", {}, now=END + 2).status == 200
    with pytest.raises(ValueError, match="on, deprecated, gone"):
        api.set_v1("off")
    with pytest.raises(ValueError, match="v1 must be"):
        SimConfig(v1="retired")


def test_latency_is_a_delay_with_jitter_not_a_sleep() -> None:
    api = make_api(latency_ms=200)
    delays = [api.handle("GET", "/extended/v1/tx", {}, now=END).delay for _ in range(20)]
    assert all(0.15 <= d <= 0.25 for d in delays)
    assert len(set(delays)) > 1


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
    headers = _headers(response)
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


# ---- growth ------------------------------------------------------------------------------------


def test_growth_appends_to_the_open_tenure_then_opens_new_ones() -> None:
    api = make_api(growth=5.0)
    chain = api.chain
    head_burn = chain.tenure_burn_time[-1]
    window = f"start_time={END - 3600}&end_time={END}&limit=1"
    before = get(api, window)[1]["total"]
    tenures = chain.n_tenures
    # 30 s later: same tenure (its burn time is in the window) has more blocks
    later = get(api, window, now=END + 30)[1]["total"]
    if chain.n_tenures == tenures:
        assert later > before
        assert chain.tenure_burn_time[-1] == head_burn
    newest = get(api, "limit=1", now=END + 30)[1]["results"][0]
    assert newest["block_time"] > END
    # an hour on, new tenures have started with their own (later) burn times
    get(api, "limit=1", now=END + 3600)
    assert chain.n_tenures > tenures
    assert chain.tenure_burn_time[-1] > END
    assert chain.count(END - 3600, END) >= later


def test_a_window_ending_now_gains_txs_while_its_tenure_lasts() -> None:
    config = SimConfig(
        days=1, end_time=END, growth=20.0, tenure_seconds=3600.0, block_seconds=(1.0, 2.0)
    )
    api = SimApi(config, epoch=END)
    chain = api.chain
    head_burn = chain.tenure_burn_time[-1]
    window = f"start_time={head_burn}&end_time={END}&limit=1"
    before = get(api, window)[1]["total"]
    after = get(api, window, now=END + 20)[1]["total"]
    assert chain.tenure_burn_time[-1] == head_burn  # a one-hour tenure is still open
    assert after > before
    assert after == api.truth(head_burn, END)["count"]


def test_frozen_chain_does_not_grow(api: SimApi) -> None:
    n = len(api.chain)
    get(api, "limit=1", now=END + 7200)
    assert len(api.chain) == n


def test_advance_route_moves_the_chain_clock() -> None:
    api = make_api(growth=2.0)
    n = len(api.chain)
    body = orjson.loads(api.handle("POST", "/_sim/advance?seconds=120", {}, now=END).body)
    assert body["added"] > 0 and len(api.chain) == n + body["added"]
    assert api.advance(120, now=END) > 0


def test_truth_route_matches_the_chain(api: SimApi) -> None:
    start, end = middle_window(api.chain)
    response = api.handle("GET", f"/_sim/truth?start_time={start}&end_time={end}&ids=1", {})
    truth = orjson.loads(response.body)
    assert truth["count"] == api.chain.count(start, end) == len(truth["tx_ids"])
    assert truth["digest"] == api.chain.digest(start, end)
    assert truth["tx_ids"] == api.chain.tx_ids(start, end)


def test_chain_memory_per_tx_is_small() -> None:
    chain = Chain(seed=1, days=4, tx_per_day=20_000, end_time=END)
    per_tx = sum(
        arr.itemsize * len(arr)
        for arr in (
            chain.tx_kind,
            chain.tx_fee,
            chain.block_time,
            chain.block_first_tx,
            chain.block_tenure,
        )
    ) / len(chain)
    assert per_tx < 16


SCALE_PROBE = """
import psutil, orjson
from stxbf.simulator import SimApi, SimConfig
before = psutil.Process().memory_info().rss
api = SimApi(SimConfig(days=30, tx_per_day=35_000, end_time=1_750_000_000), epoch=1_750_000_000)
for k in range(200):
    response = api.handle("GET", f"/extended/v1/tx?limit=50&offset={k * 5000}", {})
    assert response.status == 200 and len(orjson.loads(response.body)["results"]) == 50
response = api.handle("GET", "/extended/v1/tx?limit=50&sort_by=fee&type=token_transfer", {})
assert response.status == 200
grown = psutil.Process().memory_info().rss - before
print(len(api.chain), grown // 2**20)
"""


@pytest.mark.slow
def test_a_million_txs_fit_in_modest_memory() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", SCALE_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    n_txs, grown_mib = map(int, result.stdout.split())
    assert n_txs > 1_000_000
    assert grown_mib < 150, f"{grown_mib} MiB for {n_txs} txs"


def test_v1_gone_after_n_requests_is_the_operators_switch() -> None:
    """`v1_gone_after` (`sim serve --v1-gone-after`): N tx-list answers, then 410 Gone."""
    api = SimApi(SimConfig(days=1, tx_per_day=500, end_time=END, v1_gone_after=2), epoch=END)
    statuses = [api.handle("GET", "/extended/v1/tx?limit=1", {}, now=END).status for _ in range(4)]
    assert statuses == [200, 200, 410, 410]
    with pytest.raises(ValueError, match="v1_gone_after"):
        SimConfig(v1_gone_after=-1)
