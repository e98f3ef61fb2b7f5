"""The simulator's v3 and v2 routes against what the real API's source does (in-process, fast).

Pins the points a v3 client relies on: order and completeness of a cursor walk, the exact cursor
resolution of resolveTransactionCursor, the previous/next/current cursors, Fastify's 400s for bad
limits and cursors, burn blocks whose `total_tx_count` counts their transactions, and one
transaction reading the same through v1 and v3.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pytest

from stxbf.models import TX_COLUMN_NAMES, parse_page
from stxbf.models_v3 import V3_NULL_COLUMNS, parse_summary_page, summary_row
from stxbf.simulator import SimApi, SimConfig
from stxbf.simulator.chain import GENESIS_BLOCK_HEIGHT, GENESIS_BURN_HEIGHT
from tests.simulator.helpers import END, fastify_400

M = 2_147_483_647


@pytest.fixture(scope="module")
def api() -> SimApi:
    return SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END), epoch=END)


def get(api: SimApi, target: str) -> tuple[int, Any]:
    response = api.handle("GET", target, {}, now=END)
    return response.status, orjson.loads(response.body)


def key(tx: dict[str, Any]) -> tuple[int, int]:
    return tx["block"]["height"], tx["block"]["tx_index"]


def test_a_cursor_walk_lists_every_transaction_once_newest_first(api: SimApi) -> None:
    chain = api.chain
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "limit=50" + (f"&cursor={cursor}" if cursor else "")
        status, page = get(api, f"/extended/v3/transactions?{query}")
        assert status == 200 and page["total"] == len(chain)
        if cursor is not None:  # the next page starts exactly at the cursor it was given
            assert page["cursor"]["current"] == cursor
        seen += page["results"]
        cursor = page["cursor"]["next"]
        if cursor is None:
            break
    keys = [key(tx) for tx in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert [tx["tx_id"] for tx in reversed(seen)] == chain.tx_ids()


class CursorCase(NamedTuple):
    cursor: str
    first: str  # which tx comes first: "top:B" = the newest of block B, "B:I" = exactly that
    test_id: str


def _block(api: SimApi, offset_from_tip: int) -> int:
    return GENESIS_BLOCK_HEIGHT + api.chain.n_blocks - 1 - offset_from_tip


def _first_of(api: SimApi, cursor: str) -> tuple[int, int]:
    status, page = get(api, f"/extended/v3/transactions?limit=3&cursor={cursor}")
    assert status == 200
    return key(page["results"][0])


def test_cursor_resolution_follows_resolve_transaction_cursor(api: SimApi) -> None:
    chain = api.chain
    h = _block(api, 5)
    b = h - GENESIS_BLOCK_HEIGHT
    size = chain.block_first_tx[b + 1] - chain.block_first_tx[b]
    prev_size = chain.block_first_tx[b] - chain.block_first_tx[b - 1]
    # (H, 0, 0) names no tx (Nakamoto txs have microblock_sequence I32_MAX): (H, I32_MAX, 0x7fff)
    assert _first_of(api, f"{h}:0:0") == (h, size - 1)
    # an exact key is used as it is, and the page starts at that very tx
    assert _first_of(api, f"{h}:{M}:0") == (h, 0)
    assert _first_of(api, f"{h}:{M}:{size - 1}") == (h, size - 1)
    assert _first_of(api, f"{h}:{M}:999") == (h, size - 1)
    # a non-zero part is never resolved: (H, 5, 0) < every tx of block H
    assert _first_of(api, f"{h}:5:0") == (h - 1, prev_size - 1)
    assert _first_of(api, f"{h}:0:1") == (h - 1, prev_size - 1)
    # beyond the tip: the newest tx; below genesis: an empty page with total 0
    tip = _block(api, 0)
    assert _first_of(api, "99999999:0:0")[0] == tip
    status, page = get(api, "/extended/v3/transactions?limit=2&cursor=0:0:0")
    assert status == 200 and page["results"] == [] and page["total"] == 0
    assert page["cursor"] == {"next": None, "previous": None, "current": None}


def test_previous_next_and_current_cursors(api: SimApi) -> None:
    chain = api.chain
    n = len(chain)
    status, top = get(api, "/extended/v3/transactions?limit=4")
    assert top["cursor"]["previous"] is None
    height, index = key(top["results"][0])
    assert top["cursor"]["current"] == f"{height}:{M}:{index}"
    # next is the 5th newest, previous of the next page is the newest again (limit above it)
    status, second = get(api, f"/extended/v3/transactions?limit=4&cursor={top['cursor']['next']}")
    assert status == 200
    assert second["cursor"]["current"] == top["cursor"]["next"]
    assert second["cursor"]["previous"] == top["cursor"]["current"]
    assert second["results"][0]["tx_id"] == chain.tx_id(n - 5)


class BadQuery(NamedTuple):
    target: str
    message: str
    test_id: str


BAD = [
    BadQuery(
        "/extended/v3/transactions?limit=51", "querystring/limit must be <= 50", "v3-limit-51"
    ),
    BadQuery("/extended/v3/transactions?limit=0", "querystring/limit must be >= 1", "v3-limit-0"),
    BadQuery("/extended/v3/transactions?limit=abc", "querystring/limit must be integer", "v3-abc"),
    BadQuery("/extended/v3/transactions?limit=", "querystring/limit must be integer", "v3-empty"),
    BadQuery(
        "/extended/v3/transactions?cursor=1:2",
        'querystring/cursor must match pattern "^[0-9]+:[0-9]+:[0-9]+$"',
        "v3-cursor",
    ),
    BadQuery("/extended/v2/burn-blocks?limit=31", "querystring/limit must be <= 30", "bb-31"),
    BadQuery("/extended/v2/burn-blocks?offset=-1", "querystring/offset must be >= 0", "bb-off"),
    BadQuery("/extended/v2/blocks?limit=31", "querystring/limit must be <= 30", "blocks-31"),
    BadQuery("/extended/v2/blocks/by-block-time/abc", "params/timestamp must be integer", "bbt"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.test_id for c in BAD])
def test_bad_input_is_a_fastify_400(api: SimApi, case: BadQuery) -> None:
    status, body = get(api, case.target)
    assert status == 400
    assert body == fastify_400(case.message)


def test_burn_blocks_count_their_transactions_and_list_their_blocks(api: SimApi) -> None:
    chain = api.chain
    burn_blocks: list[dict[str, Any]] = []
    offset = 0
    while True:
        status, page = get(api, f"/extended/v2/burn-blocks?limit=30&offset={offset}")
        assert status == 200
        if not page["results"]:
            assert page["total"] == 0  # as the real one: 0 on an empty page
            break
        assert page["total"] == chain.n_blocks  # the real one counts Stacks blocks here
        burn_blocks += page["results"]
        offset += 30
    heights = [b["burn_block_height"] for b in burn_blocks]
    assert heights == list(range(heights[0], heights[0] - len(heights), -1))
    assert sum(b["total_tx_count"] for b in burn_blocks) == len(chain)
    middle = burn_blocks[len(burn_blocks) // 2]
    tenure = middle["burn_block_height"] - GENESIS_BURN_HEIGHT
    t = middle["burn_block_time"]
    assert middle["total_tx_count"] == chain.count(t, t)
    status, one = get(api, f"/extended/v2/burn-blocks/{middle['burn_block_height']}")
    assert one == middle
    newest = middle["stacks_blocks"][0]
    status, block = get(api, f"/extended/v2/blocks/{newest}")
    assert status == 200 and block["burn_block_height"] == middle["burn_block_height"]
    next_first = chain.tenure_first_block[tenure + 1]
    assert block["height"] == GENESIS_BLOCK_HEIGHT + next_first - 1
    status, by_height = get(api, f"/extended/v2/blocks/{block['height']}")
    assert by_height == block and block["tx_count"] >= 1
    status, at = get(api, f"/extended/v2/blocks/by-block-time/{block['block_time']}")
    assert at["height"] == block["height"]
    assert get(api, "/extended/v2/blocks/99999999")[0] == 404
    assert get(api, "/extended/v2/burn-blocks/1")[0] == 404


def test_the_same_transaction_reads_the_same_through_v1_and_v3(api: SimApi) -> None:
    _, v1 = get(api, "/extended/v1/tx?limit=50&offset=100")
    v1_rows = {row[0]: row for row in parse_page(orjson.dumps(v1)).rows}
    cursor = None
    v3_rows: dict[str, tuple[Any, ...]] = {}
    while not set(v1_rows) <= set(v3_rows):
        query = "limit=50" + (f"&cursor={cursor}" if cursor else "")
        response = api.handle("GET", f"/extended/v3/transactions?{query}", {}, now=END)
        page = parse_summary_page(response.body)
        v3_rows.update((row[0], row) for row in page.rows)
        cursor = page.next_cursor
    kinds = set()
    for tx_id, row in v1_rows.items():
        other = v3_rows[tx_id]
        for name, a, b in zip(TX_COLUMN_NAMES, row, other, strict=True):
            if name in V3_NULL_COLUMNS:
                assert b is None
            else:
                assert a == b, (name, a, b)
        kinds.add(row[1])
    assert {"token_transfer", "contract_call"} <= kinds


def test_summary_row_keeps_sponsor_and_types() -> None:
    tx = {
        "tx_id": "0x" + "ab" * 32,
        "sender": {"address": "SP1", "nonce": 7},
        "sponsor": {"address": "SP2", "nonce": 3},
        "fee_rate": "1200",
        "block": {"height": 5, "hash": "0x01", "index_hash": "0x02", "time": 100, "tx_index": 2},
        "bitcoin_block": {"height": 9, "time": 90},
        "status": "abort_by_response",
        "type": "smart_contract",
        "smart_contract": {"clarity_version": 2, "contract_id": "SP1.c"},
    }
    row = dict(zip(TX_COLUMN_NAMES, summary_row(tx), strict=True))
    assert row["sponsor_address"] == "SP2" and row["fee_ustx"] == 1200
    assert row["contract_id"] == "SP1.c" and row["tx_status"] == "abort_by_response"
    assert row["canonical"] is True and row["event_count"] is None


def test_faults_and_limits_apply_to_v3_routes() -> None:
    api = SimApi(SimConfig(days=0.2, end_time=END, fault_rate=1.0, fault_kinds=("503",)), epoch=END)
    assert get(api, "/extended/v3/transactions?limit=5")[0] == 503
    assert get(api, "/extended/v2/burn-blocks")[0] == 503
    api.set_faults(0.0)
    api.set_limits(rpm=2)
    statuses = [get(api, "/extended/v2/burn-blocks?limit=1")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(
    ("cursor", "kind"),
    [("5:2147483648:0", "integer"), ("2147483648:0:0", "integer"), ("5:0:32768", "smallint")],
    ids=["micro", "height", "tx_index"],
)
def test_a_cursor_part_beyond_its_column_type_is_a_500_as_on_v9(
    api: SimApi, cursor: str, kind: str
) -> None:
    status, body = get(api, f"/extended/v3/transactions?limit=1&cursor={cursor}")
    assert status == 500 and body["code"] == "22003"
    assert body["message"].endswith(f"is out of range for type {kind}")
