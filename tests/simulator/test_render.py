"""The shape of a simulated transaction: every field and payload Hiro's v1 schema has, parsed by
the client's own model, in a realistic mix of kinds, statuses and tenures."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest

from stxbf.simulator import KINDS, SimApi
from tests.simulator.helpers import (
    ADDRESS,
    END,
    TX_ID,
    all_pages,
    get,
    make_api,
)

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
