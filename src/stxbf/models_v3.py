"""Turn the v3 and v2 answers (transaction summaries, blocks, burn blocks) into what stxbf keeps;
this module does no I/O.

A v3 summary (`src/api/schemas/v3/entities/transaction-summaries.ts`, serialized by
`src/api/serializers/v3/transactions.ts` serializeDbTransactionSummary in
hirosystems/stacks-blockchain-api) becomes the same row tuple as a v1 transaction
(`stxbf.models.TX_COLUMNS` order), so both sources fill one table. Columns the summary does not
carry stay None: `V3_NULL_COLUMNS`. `canonical` is True because the route lists canonical
transactions only (`WHERE canonical = true AND microblock_canonical = true`, pg-store-v3.ts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from stxbf.models import TX_COLUMN_NAMES, MalformedPage, Row

V3_NULL_COLUMNS: tuple[str, ...] = ("event_count", "coinbase_vrf_proof")
assert all(name in TX_COLUMN_NAMES for name in V3_NULL_COLUMNS)


def summary_row(tx: dict[str, Any]) -> Row:
    """Return one v3 TransactionSummary as a row in TX_COLUMNS order, keeping every status and
    type."""
    kind = tx["type"]
    block = tx["block"]
    burn = tx["bitcoin_block"]
    sender = tx["sender"]
    sponsor = tx.get("sponsor")
    recipient = amount = contract_id = function_name = None
    cause = clarity_version = alt_recipient = None
    if kind == "token_transfer":
        transfer = tx.get("token_transfer") or {}
        recipient = transfer.get("recipient")
        raw_amount = transfer.get("amount")
        amount = None if raw_amount in (None, "") else int(raw_amount)
    elif kind == "contract_call":
        call = tx.get("contract_call") or {}
        contract_id = call.get("contract_id")
        function_name = call.get("function_name")
    elif kind == "smart_contract":
        contract = tx.get("smart_contract") or {}
        contract_id = contract.get("contract_id")
        clarity_version = contract.get("clarity_version")
    elif kind == "tenure_change":
        cause = (tx.get("tenure_change") or {}).get("cause")
    elif kind == "coinbase":
        alt_recipient = (tx.get("coinbase") or {}).get("alt_recipient")
    return (
        tx["tx_id"],
        kind,
        tx.get("status"),
        sender.get("address"),
        sponsor.get("address") if sponsor else None,
        int(sender["nonce"]),
        int(tx["fee_rate"]),
        int(block["height"]),
        block.get("hash"),
        int(block["time"]),
        int(burn["height"]),
        int(burn["time"]),
        int(block["tx_index"]),
        True,
        None,  # event_count: not in a summary
        recipient,
        amount,
        contract_id,
        function_name,
        cause,
        clarity_version,
        alt_recipient,
        None,  # coinbase_vrf_proof: not in a summary
    )


@dataclass(frozen=True, slots=True)
class TxKey:
    """Hold a transaction's place in v3 order and the burn block it belongs to."""

    block_height: int
    tx_index: int
    burn_block_height: int
    burn_block_time: int


@dataclass(slots=True)
class SummaryPage:
    """Hold one `/extended/v3/transactions` answer: its rows, their keys, and the cursor
    envelope."""

    total: int
    limit: int
    next_cursor: str | None
    current_cursor: str | None
    rows: list[Row]
    keys: list[TxKey]


@dataclass(frozen=True, slots=True)
class BurnBlock:
    """Hold one `/extended/v2/burn-blocks` entry, as `src/api/routes/v2/helpers.ts`
    parseDbBurnBlock writes it."""

    height: int
    hash: str
    time: int
    stacks_blocks: tuple[str, ...]  # newest first
    total_tx_count: int


@dataclass(frozen=True, slots=True)
class Block:
    """Hold the fields stxbf uses of one `/extended/v2/blocks/:height_or_hash` answer, as
    parseDbNakamotoBlock writes it."""

    height: int
    hash: str
    burn_block_height: int
    burn_block_time: int
    tx_count: int


def _loads(body: bytes) -> Any:
    """Decode a JSON body; raise MalformedPage when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"body is not JSON ({len(body)} bytes)") from exc


def parse_summary_page(body: bytes) -> SummaryPage:
    """Decode a v3 transactions answer into a SummaryPage; raise MalformedPage for anything
    incomplete."""
    data = _loads(body)
    if not isinstance(data, dict):
        raise MalformedPage("body is not a JSON object")
    results, total, cursor = data.get("results"), data.get("total"), data.get("cursor")
    if not isinstance(results, list) or not isinstance(total, int) or not isinstance(cursor, dict):
        raise MalformedPage("body lacks the {total, cursor, results} envelope")
    try:
        rows = [summary_row(tx) for tx in results]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedPage(f"a transaction lacks a required field ({exc})") from exc
    # The key's fields are read from their positions in the row tuple, found once at import.
    keys = [TxKey(row[_HEIGHT], row[_INDEX], row[_BURN_HEIGHT], row[_BURN_TIME]) for row in rows]
    return SummaryPage(
        total=total,
        limit=int(data.get("limit") or len(rows)),
        next_cursor=cursor.get("next"),
        current_cursor=cursor.get("current"),
        rows=rows,
        keys=keys,
    )


def parse_burn_block(item: Any) -> BurnBlock:
    """Decode one burn-block entry; raise MalformedPage when a field is missing or wrong."""
    try:
        return BurnBlock(
            height=int(item["burn_block_height"]),
            hash=str(item["burn_block_hash"]),
            time=int(item["burn_block_time"]),
            stacks_blocks=tuple(str(h) for h in item["stacks_blocks"]),
            total_tx_count=int(item["total_tx_count"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedPage(f"a burn block lacks a required field ({exc})") from exc


def parse_burn_block_page(body: bytes) -> list[BurnBlock]:
    """Decode a burn-block page into its entries; raise MalformedPage for anything incomplete."""
    data = _loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise MalformedPage("body lacks the {total, results} envelope")
    return [parse_burn_block(item) for item in data["results"]]


def parse_burn_block_total(body: bytes) -> int:
    """Return the `total` of a burn-block page: how many burn blocks the list holds.

    It is 0 on an empty page, as pg-store-v2.ts getBurnBlocks counts the rows of the page's query.
    """
    data = _loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("total"), int):
        raise MalformedPage("body lacks the {total, results} envelope")
    return int(data["total"])


def parse_block(body: bytes) -> Block:
    """Decode a v2 block answer; raise MalformedPage when a field is missing or wrong."""
    data = _loads(body)
    try:
        return Block(
            height=int(data["height"]),
            hash=str(data["hash"]),
            burn_block_height=int(data["burn_block_height"]),
            burn_block_time=int(data["burn_block_time"]),
            tx_count=int(data["tx_count"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedPage(f"a block lacks a required field ({exc})") from exc


_HEIGHT = TX_COLUMN_NAMES.index("block_height")
_INDEX = TX_COLUMN_NAMES.index("tx_index")
_BURN_HEIGHT = TX_COLUMN_NAMES.index("burn_block_height")
_BURN_TIME = TX_COLUMN_NAMES.index("burn_block_time")
