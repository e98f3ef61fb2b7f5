"""Turn the API's pages and transactions into the columns stxbf stores; this module does no I/O.

A page is decoded once (orjson) and flattened straight into row tuples in `TX_COLUMNS` order, so the
store can insert a whole window column-wise without building per-row objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

# Each column's name and DuckDB type, in row-tuple order; the store generates its DDL from this
# list.
TX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tx_id", "VARCHAR"),
    ("tx_type", "VARCHAR"),
    ("tx_status", "VARCHAR"),
    ("sender_address", "VARCHAR"),
    ("sponsor_address", "VARCHAR"),
    ("nonce", "BIGINT"),
    ("fee_ustx", "BIGINT"),
    ("block_height", "BIGINT"),
    ("block_hash", "VARCHAR"),
    ("block_time", "BIGINT"),
    ("burn_block_height", "BIGINT"),
    ("burn_block_time", "BIGINT"),
    ("tx_index", "INTEGER"),
    ("canonical", "BOOLEAN"),
    ("event_count", "INTEGER"),
    ("token_transfer_recipient", "VARCHAR"),
    ("token_transfer_amount", "HUGEINT"),
    ("contract_id", "VARCHAR"),
    ("function_name", "VARCHAR"),
    # Schema 3 added these; each is read only for its own tx_type (tenure_change_payload.cause,
    # smart_contract.clarity_version, coinbase_payload.alt_recipient / .vrf_proof).
    ("tenure_change_cause", "VARCHAR"),
    ("clarity_version", "INTEGER"),
    ("coinbase_alt_recipient", "VARCHAR"),
    ("coinbase_vrf_proof", "VARCHAR"),
)
TX_COLUMN_NAMES = tuple(name for name, _ in TX_COLUMNS)
BURN_TIME_INDEX = TX_COLUMN_NAMES.index("burn_block_time")

Row = tuple[Any, ...]

# The API's largest tx page, v1 and v3 (pagination.ts ResourceType.Tx); asking for more is a 400.
PAGE_LIMIT = 50


class MalformedPage(ValueError):
    """Raised when a body is not a complete, well-formed page: truncated, not JSON, or of the
    wrong shape."""


@dataclass(slots=True)
class Page:
    """Hold one decoded page: the API's `total`, `offset` and `limit`, and its transactions as
    rows in `TX_COLUMNS` order."""

    total: int
    offset: int
    limit: int
    rows: list[Row] = field(default_factory=list)


def _int(value: Any) -> int | None:
    """Return a number, which the API may send as a string, as an int; return None when it is
    absent or empty."""
    if value is None or value == "":
        return None
    return int(value)


def tx_row(tx: dict[str, Any]) -> Row:
    """Return one transaction as a row; every status and type is kept, since stxbf never filters
    at ingest.

    Written for speed (it runs for every transaction, on the event loop): one bound `get`, and
    numbers that are already ints (all but fee and amount, in practice) skip `_int`.
    """
    get = tx.get
    tx_type = tx["tx_type"]
    recipient = amount = contract_id = function_name = None
    cause = clarity = alt_recipient = vrf_proof = None
    if tx_type == "contract_call":
        call = get("contract_call") or {}
        contract_id = call.get("contract_id")
        function_name = call.get("function_name")
    elif tx_type == "token_transfer":
        transfer = get("token_transfer") or {}
        recipient = transfer.get("recipient_address")
        amount = _int(transfer.get("amount"))
    elif tx_type == "smart_contract":
        contract = get("smart_contract") or {}
        contract_id = contract.get("contract_id")
        clarity = _int(contract.get("clarity_version"))
    elif tx_type == "coinbase":
        coinbase = get("coinbase_payload") or {}
        alt_recipient = coinbase.get("alt_recipient")
        vrf_proof = coinbase.get("vrf_proof")
    elif tx_type == "tenure_change":
        cause = (get("tenure_change_payload") or {}).get("cause")
    nonce, fee, height = get("nonce"), get("fee_rate"), get("block_height")
    block_time, burn_height = get("block_time"), get("burn_block_height")
    burn_time, tx_index, events = tx["burn_block_time"], get("tx_index"), get("event_count")
    return (
        tx["tx_id"],
        tx_type,
        get("tx_status"),
        get("sender_address"),
        get("sponsor_address") if get("sponsored") else None,
        nonce if type(nonce) is int else _int(nonce),
        fee if type(fee) is int else _int(fee),
        height if type(height) is int else _int(height),
        get("block_hash"),
        block_time if type(block_time) is int else _int(block_time),
        burn_height if type(burn_height) is int else _int(burn_height),
        burn_time if type(burn_time) is int else int(burn_time),
        tx_index if type(tx_index) is int else _int(tx_index),
        get("canonical"),
        events if type(events) is int else _int(events),
        recipient,
        amount,
        contract_id,
        function_name,
        cause,
        clarity,
        alt_recipient,
        vrf_proof,
    )


def parse_page(body: bytes) -> Page:
    """Decode a `/extended/v1/tx` envelope into a Page; raise MalformedPage for anything
    incomplete."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"body is not JSON ({len(body)} bytes)") from exc
    if not isinstance(data, dict):
        raise MalformedPage("body is not a JSON object")
    results = data.get("results")
    total = data.get("total")
    if not isinstance(results, list) or not isinstance(total, int):
        raise MalformedPage("body lacks the {total, results} envelope")
    try:
        rows = [tx_row(tx) for tx in results]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedPage(f"a transaction lacks a required field ({exc})") from exc
    return Page(
        total=total,
        offset=int(data.get("offset") or 0),
        limit=int(data.get("limit") or len(rows)),
        rows=rows,
    )
