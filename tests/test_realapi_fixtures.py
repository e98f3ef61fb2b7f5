"""Both sides anchored to the real API: answers the stacks-blockchain-api (v9, 759c4a58) gave, built
from source (/work/shared/realapi), kept in tests/fixtures/realapi with their requests
(`index.json`, recorded by `record.py` there). No server is needed to run these tests.

- The client's parsers read every fixture, and every column stxbf stores equals the field the
  fixture holds, derived here from the JSON by this file's own reading of the API (not from the
  client's column list).
- The simulator's answers to the same routes have the fixtures' shape: keys, JSON types, nulls.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stxbf.codes import WindowState
from stxbf.fetch.client import ApiClient
from stxbf.fetch.ratelimit import read_rate_headers
from stxbf.models import parse_page
from stxbf.models_v3 import (
    parse_block,
    parse_burn_block_page,
    parse_burn_block_total,
    parse_summary_page,
)
from stxbf.simulator import SimApi, SimConfig
from stxbf.store import Store, WindowRecord

FIXTURES = Path(__file__).parent / "fixtures" / "realapi"
INDEX = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))
END = 1_750_000_000


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def data(name: str) -> Any:
    return json.loads(body(name))


# -- what the API's fields mean, read independently of stxbf.models ------------------------------
# src/api/schemas/v1/entities/transactions.ts and v3/entities/transaction-summaries.ts


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def expected_v1(tx: dict[str, Any]) -> dict[str, Any]:
    """The columns stxbf should store for one v1 transaction."""
    kind = tx["tx_type"]
    payload = tx.get(kind if kind != "coinbase" else "coinbase_payload") or {}
    return {
        "tx_id": tx["tx_id"],
        "tx_type": kind,
        "tx_status": tx["tx_status"],
        "sender_address": tx["sender_address"],
        "sponsor_address": tx.get("sponsor_address"),  # absent without a sponsor
        "nonce": tx["nonce"],
        "fee_ustx": int(tx["fee_rate"]),  # a string in the API
        "block_height": tx["block_height"],
        "block_hash": tx["block_hash"],
        "block_time": tx["block_time"],
        "burn_block_height": tx["burn_block_height"],
        "burn_block_time": tx["burn_block_time"],
        "tx_index": tx["tx_index"],
        "canonical": tx["canonical"],
        "event_count": tx["event_count"],
        "token_transfer_recipient": payload.get("recipient_address"),
        "token_transfer_amount": _int(payload.get("amount")),
        "contract_id": payload.get("contract_id"),
        "function_name": payload.get("function_name"),
        "tenure_change_cause": (tx.get("tenure_change_payload") or {}).get("cause"),
        "clarity_version": payload.get("clarity_version"),
        "coinbase_alt_recipient": payload.get("alt_recipient") if kind == "coinbase" else None,
        "coinbase_vrf_proof": payload.get("vrf_proof") if kind == "coinbase" else None,
    }


def expected_v3(tx: dict[str, Any]) -> dict[str, Any]:
    """The columns stxbf should store for one v3 summary (it carries no event count or VRF
    proof; the route lists canonical transactions only, pg-store-v3.ts)."""
    kind = tx["type"]
    payload = tx.get(kind) or {}
    sponsor = tx.get("sponsor")
    return {
        "tx_id": tx["tx_id"],
        "tx_type": kind,
        "tx_status": tx["status"],
        "sender_address": tx["sender"]["address"],
        "sponsor_address": sponsor["address"] if sponsor else None,
        "nonce": tx["sender"]["nonce"],
        "fee_ustx": int(tx["fee_rate"]),
        "block_height": tx["block"]["height"],
        "block_hash": tx["block"]["hash"],
        "block_time": tx["block"]["time"],
        "burn_block_height": tx["bitcoin_block"]["height"],
        "burn_block_time": tx["bitcoin_block"]["time"],
        "tx_index": tx["block"]["tx_index"],
        "canonical": True,
        "event_count": None,
        "token_transfer_recipient": payload.get("recipient"),
        "token_transfer_amount": _int(payload.get("amount")),
        "contract_id": payload.get("contract_id"),
        "function_name": payload.get("function_name"),
        "tenure_change_cause": payload.get("cause"),
        "clarity_version": payload.get("clarity_version"),
        "coinbase_alt_recipient": payload.get("alt_recipient") if kind == "coinbase" else None,
        "coinbase_vrf_proof": None,
    }


def stored(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """The rows as the store keeps them: committed to a real DuckDB, read back column by name."""
    with Store.open(":memory:") as store:
        record = WindowRecord(0, 2**40, len(rows), len(rows), WindowState.VERIFIED, 1)
        store.commit_window(record, rows)
        cursor = store._con.execute("SELECT * FROM transactions")
        names = [column[0] for column in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


# -- the client reads the real answers -------------------------------------------------------------


def test_the_fixtures_carry_their_provenance() -> None:
    assert INDEX["api"]["commit"].startswith("759c4a58")
    assert "759c4a58" in INDEX["api"]["server_version"]
    for name, meta in INDEX["fixtures"].items():
        assert meta["request"].startswith("GET /"), name
        assert (FIXTURES / f"{name}.json").exists(), name
    chain = json.loads((FIXTURES / "chain.json").read_text(encoding="utf-8"))
    assert chain["summary"]["seed"] == 42


def test_the_fixtures_hold_every_tx_type_and_a_problematic_skipped_tx() -> None:
    """poison_microblock is absent: the seeded chain is Nakamoto-only, with no microblocks."""
    txs = data("v1_tx_page")["results"]
    assert {tx["tx_type"] for tx in txs} == {
        "token_transfer",
        "smart_contract",
        "contract_call",
        "coinbase",
        "tenure_change",
    }
    assert "problematic_skipped" in {tx["tx_status"] for tx in data("v1_tx_problematic")["results"]}
    v3 = data("v3_transactions_problematic")["results"]
    assert "problematic_skipped" in {tx["status"] for tx in v3}


@pytest.mark.parametrize("name", ["v1_tx_page", "v1_tx_problematic"])
def test_a_v1_page_is_stored_field_for_field(name: str) -> None:
    page = parse_page(body(name))
    txs = data(name)["results"]
    assert page.total == data(name)["total"] == len(txs)
    rows = stored(page.rows)
    assert len(rows) == len(txs)
    for tx in txs:
        assert rows[tx["tx_id"]] == expected_v1(tx), tx["tx_type"]


def test_a_v1_limit_1_page_gives_the_windows_total() -> None:
    page = parse_page(body("v1_tx_limit_1"))
    assert (page.total, page.limit, len(page.rows)) == (data("v1_tx_page")["total"], 1, 1)
    assert stored(page.rows)[page.rows[0][0]] == expected_v1(data("v1_tx_limit_1")["results"][0])


@pytest.mark.parametrize(
    "name",
    [
        "v3_transactions_first",
        "v3_transactions_next",
        "v3_transactions_walk_start",
        "v3_transactions_chain_start",
        "v3_transactions_problematic",
    ],
)
def test_a_v3_page_is_stored_field_for_field(name: str) -> None:
    answer = data(name)
    page = parse_summary_page(body(name))
    assert page.next_cursor == answer["cursor"]["next"]
    assert page.current_cursor == answer["cursor"]["current"]
    assert page.total == answer["total"] and len(page.rows) == len(answer["results"])
    rows = stored(page.rows)
    for tx, key in zip(answer["results"], page.keys, strict=True):
        assert rows[tx["tx_id"]] == expected_v3(tx), tx["type"]
        assert (key.block_height, key.tx_index) == (tx["block"]["height"], tx["block"]["tx_index"])
        assert (key.burn_block_height, key.burn_block_time) == (
            tx["bitcoin_block"]["height"],
            tx["bitcoin_block"]["time"],
        )


def test_the_next_v3_page_follows_the_cursor() -> None:
    first, following = data("v3_transactions_first"), data("v3_transactions_next")
    assert following["cursor"]["current"] == first["cursor"]["next"]
    assert following["cursor"]["previous"] == first["cursor"]["current"]
    assert not {tx["tx_id"] for tx in first["results"]} & {
        tx["tx_id"] for tx in following["results"]
    }


def test_burn_blocks_and_blocks_are_read() -> None:
    answer = data("v2_burn_blocks")
    blocks = parse_burn_block_page(body("v2_burn_blocks"))
    assert [
        (b.height, b.hash, b.time, list(b.stacks_blocks), b.total_tx_count) for b in blocks
    ] == [
        (
            item["burn_block_height"],
            item["burn_block_hash"],
            item["burn_block_time"],
            item["stacks_blocks"],
            item["total_tx_count"],
        )
        for item in answer["results"]
    ]
    assert parse_burn_block_total(body("v2_burn_blocks_limit_1")) == answer["total"]
    block, raw = parse_block(body("v2_block")), data("v2_block")
    assert (block.height, block.hash, block.burn_block_height, block.burn_block_time) == (
        raw["height"],
        raw["hash"],
        raw["burn_block_height"],
        raw["burn_block_time"],
    )
    assert block.tx_count == raw["tx_count"]


def test_a_burn_blocks_count_includes_its_problematic_skipped_tx() -> None:
    """v3 windows are proven by total_tx_count: it counts a problematic_skipped tx as v1 lists it
    (pg-store-v2.ts sums its Stacks blocks' tx_count, which counts every tx of a block)."""
    (burn,) = parse_burn_block_page(body("v2_burn_blocks_problematic"))
    assert burn.total_tx_count == data("v1_tx_problematic")["total"]


def answer_with(name: str) -> ApiClient:
    """A client whose every request gets the fixture's recorded status, headers and body."""
    meta = INDEX["fixtures"][name]

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(meta["status"], headers=meta["headers"], content=body(name))

    return ApiClient("http://api", transport=httpx.MockTransport(respond))


@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        ("v1_tx_gone", "ApiGone", "410 Gone"),
        ("v1_tx_bad_limit", "ApiRejected", "querystring/limit must be <= 50"),
        ("v1_tx_bad_offset", "ApiRejected", "querystring/offset must be >= 0"),
    ],
)
def test_the_real_error_answers_are_classified(name: str, error: str, says: str) -> None:
    with pytest.raises(Exception) as caught:
        asyncio.run(answer_with(name).tx_page(limit=1))
    assert type(caught.value).__name__ == error
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["v3_transactions_bad_cursor", "v3_transactions_bad_limit"])
def test_the_real_v3_400s_are_rejections(name: str) -> None:
    with pytest.raises(Exception) as caught:
        asyncio.run(answer_with(name).get("/extended/v3/transactions", {"limit": 1}))
    assert type(caught.value).__name__ == "ApiRejected"
    assert data(name)["message"] in str(caught.value)


def test_the_hosted_gateways_documented_headers_are_read() -> None:
    """The rate-limit headers come from Hiro's gateway, not the server: as documented."""
    documented = json.loads((FIXTURES / "hosted_rate_limit_headers.json").read_text())
    assert documented["source"].startswith("https://docs.hiro.so/")
    headers = read_rate_headers(documented["example"])
    assert headers.minute is not None
    assert (headers.minute.limit, headers.minute.remaining, headers.cost) == (500, 499, 1)
    assert headers.paces


# -- the simulator answers in the same shape -------------------------------------------------------


def shape(value: Any) -> Any:
    """Keys, JSON types and nulls, not values (a list: the set of its items' shapes)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return ("list", sorted({json.dumps(shape(item), sort_keys=True) for item in value}))
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"  # JSON has one number type
    return "null" if value is None else type(value).__name__


def compatible(real: Any, sim: Any) -> bool:
    """The same keys at every depth and the same JSON types, a null on either side aside (a
    nullable field: the chains differ, e.g. one coinbase names an alt recipient, another not)."""
    if isinstance(real, dict) and isinstance(sim, dict):
        return real.keys() == sim.keys() and all(compatible(real[k], sim[k]) for k in real)
    return real == sim or "null" in (real, sim)


@pytest.fixture(scope="module")
def sim() -> SimApi:
    return SimApi(SimConfig(days=2, tx_per_day=2000, end_time=END), epoch=END)


def sim_get(api: SimApi, target: str) -> tuple[int, Any]:
    response = api.handle("GET", target, {}, now=END)
    return response.status, json.loads(response.body)


def by_type(txs: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for tx in txs:
        found.setdefault(tx[key], tx)
    return found


def test_the_simulators_v1_transactions_have_the_real_shape(sim: SimApi) -> None:
    real = data("v1_tx_page")
    for kind, tx in by_type(real["results"], "tx_type").items():
        query = "limit=50&order=asc&sort_by=block_height&exclude_function_args=true"
        status, answer = sim_get(sim, f"/extended/v1/tx?{query}&type={kind}")
        # the real chain has no sponsored tx: a sponsored one adds sponsor_address/_nonce
        alike = [item for item in answer["results"] if item["sponsored"] == tx["sponsored"]]
        assert status == 200 and alike, kind
        assert compatible(shape(tx), shape(alike[0])), kind
    envelope = {key: value for key, value in real.items() if key != "results"}
    _, answer = sim_get(sim, "/extended/v1/tx?limit=50&offset=0")
    assert shape({key: value for key, value in answer.items() if key != "results"}) == shape(
        envelope
    )


def test_the_simulators_v3_summaries_have_the_real_shape(sim: SimApi) -> None:
    real = [
        tx
        for name in ("v3_transactions_first", "v3_transactions_chain_start")
        for tx in data(name)["results"]
    ]
    wanted = by_type(real, "type")
    found: dict[str, dict[str, Any]] = {}
    target = "/extended/v3/transactions?limit=50"
    pages: list[Any] = []
    while (set(wanted) - set(found) or len(pages) < 2) and len(pages) < 400:
        status, answer = sim_get(sim, target)
        assert status == 200
        pages.append(answer)
        for kind, tx in by_type(answer["results"], "type").items():
            found.setdefault(kind, tx)
        if answer["cursor"]["next"] is None:
            break
        target = f"/extended/v3/transactions?limit=50&cursor={answer['cursor']['next']}"
    for kind, tx in wanted.items():
        assert kind in found, f"the simulator serves no {kind}"
        assert compatible(shape(tx), shape(found[kind])), kind
    # the envelope: a first page (no previous) and a later one (all three cursors set)
    for real_name, sim_page in (
        ("v3_transactions_first", pages[0]),
        ("v3_transactions_next", pages[1]),
    ):
        real_page = data(real_name)
        assert shape(sim_page["cursor"]) == shape(real_page["cursor"]), real_name
        assert set(sim_page) == set(real_page)


def test_the_simulators_blocks_and_burn_blocks_have_the_real_shape(sim: SimApi) -> None:
    _, burn = sim_get(sim, "/extended/v2/burn-blocks?limit=30&offset=0")
    assert shape(burn) == shape(data("v2_burn_blocks"))
    _, one = sim_get(sim, "/extended/v2/burn-blocks?limit=1&offset=0")
    assert shape(one) == shape(data("v2_burn_blocks_limit_1"))
    status, block = sim_get(sim, f"/extended/v2/blocks/{burn['results'][3]['stacks_blocks'][0]}")
    assert status == 200 and shape(block) == shape(data("v2_block"))
    _, blocks = sim_get(sim, "/extended/v2/blocks?limit=5&offset=0")
    assert shape(blocks) == shape(data("v2_blocks"))


def test_the_simulators_burn_block_average_is_an_integer_as_the_real_one(sim: SimApi) -> None:
    """avg_block_time is parseFloat(toFixed(2)) in routes/v2/helpers.ts, but its schema is
    Type.Integer, so Fastify's serializer (fast-json-stringify) truncates it."""
    _, burn = sim_get(sim, "/extended/v2/burn-blocks?limit=30&offset=0")
    assert all(type(item["avg_block_time"]) is int for item in burn["results"])
    assert all(type(item["avg_block_time"]) is int for item in data("v2_burn_blocks")["results"])


@pytest.mark.parametrize(
    "name",
    [
        "v1_tx_bad_limit",
        "v1_tx_bad_offset",
        "v3_transactions_bad_cursor",
        "v3_transactions_bad_limit",
        "v1_tx_gone",
    ],
)
def test_the_simulators_error_answers_are_the_real_ones(name: str) -> None:
    meta = INDEX["fixtures"][name]
    v1 = "gone" if name == "v1_tx_gone" else "on"
    api = SimApi(SimConfig(days=1, tx_per_day=500, end_time=END, v1=v1), epoch=END)
    status, answer = sim_get(api, meta["request"].split(" ", 1)[1])
    assert (status, answer) == (meta["status"], data(name))
