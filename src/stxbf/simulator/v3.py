"""The v1 successor routes: `/extended/v3/transactions` and the `/extended/v2` block and
burn-block routes a v3 backfill needs to size and verify its walks, served from the same chain.

This module is their route table and their parameter checks, written to
hirosystems/stacks-blockchain-api (v9, read at its newest commit): `limit` 1..50 for
transactions (default 20, `src/api/pagination.ts` ResourceType.Tx), <= 30 for blocks and burn
blocks, `offset` >= 0, `cursor` as `H:M:I`, and `:height_or_hash` as `latest`, a height or a
hash. Bad input answers 400 in Fastify's validation shape, missing things 404 in its error shape.
The answers are built in `v3_transactions.py` and `v2_blocks.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stxbf.simulator.chain import Chain
from stxbf.simulator.render import Renderer
from stxbf.simulator.responses import (
    BadRequest,
    DatabaseError,
    Missing,
    Response,
    RouteError,
    fastify_error,
    json_response,
)
from stxbf.simulator.v2_blocks import BlockView
from stxbf.simulator.v3_transactions import I32_MAX, MAX_TX_INDEX, TxView

V3_TX_LIST = "/extended/v3/transactions"
TX_LIMITS = (20, 50)  # (default, max): pagination.ts ResourceType.Tx
BLOCK_LIMITS = (20, 30)  # ResourceType.Block and ResourceType.BurnBlock
_CURSOR = re.compile(r"^[0-9]+:[0-9]+:[0-9]+$")
_HASH = re.compile(r"^(0x)?[a-fA-F0-9]{64}$")
_INTEGER = re.compile(r"^-?[0-9]+$")


def handles(path: str) -> bool:
    return path.startswith(("/extended/v3/", "/extended/v2/"))


def _check_column_ranges(cursor: str) -> None:
    """The cursor's parts go to PostgreSQL as they are: block_height and microblock_sequence
    are `integer`, tx_index `smallint`; a larger value fails the query (a 500, seen on v9)."""
    height, micro, index = (int(part) for part in cursor.split(":"))
    for value, kind, top in ((height, "integer", I32_MAX), (micro, "integer", I32_MAX)):
        if value > top:
            raise DatabaseError("22003", f'value "{value}" is out of range for type {kind}')
    if index > MAX_TX_INDEX:
        raise DatabaseError("22003", f'value "{index}" is out of range for type smallint')


def route(
    chain: Chain, renderer: Renderer, method: str, path: str, params: Mapping[str, str]
) -> Response:
    """Answer one v2/v3 request (the caller holds the API's lock and applied limits/faults)."""
    if method not in ("GET", "HEAD"):  # Fastify: no such route for that method
        message = f"Route {method}:{path} not found"
        return fastify_error(404, {"error": "Not Found", "message": message})
    path = path.rstrip("/") or path
    try:
        payload = _dispatch(chain, renderer, path, params)
    except RouteError as exc:
        return exc.response()
    response = json_response(200, payload)
    if path == V3_TX_LIST:
        response.page_results = len(payload["results"])
    return response


def _dispatch(
    chain: Chain, renderer: Renderer, path: str, params: Mapping[str, str]
) -> dict[str, Any]:
    if path == V3_TX_LIST:
        limit = _limit(params, TX_LIMITS)
        cursor = params.get("cursor")
        if cursor is not None and not _CURSOR.match(cursor):
            raise BadRequest('querystring/cursor must match pattern "^[0-9]+:[0-9]+:[0-9]+$"')
        if cursor is not None:
            _check_column_ranges(cursor)
        return TxView(chain, renderer).transactions(limit, cursor)
    view = BlockView(chain, renderer)
    parts = path.split("/")[3:]  # after "", "extended", "v2"
    if parts == ["burn-blocks"]:
        return view.burn_blocks(_limit(params, BLOCK_LIMITS, zero_ok=True), _offset(params))
    if len(parts) == 2 and parts[0] == "burn-blocks":
        return view.burn_block(_height_or_hash(parts[1]))
    if parts == ["blocks"]:
        return view.blocks(_limit(params, BLOCK_LIMITS), _offset(params), params.get("cursor"))
    if len(parts) == 3 and parts[:2] == ["blocks", "by-block-time"]:
        if not _INTEGER.match(parts[2]):
            raise BadRequest("params/timestamp must be integer")
        return view.block_at(int(parts[2]))
    if len(parts) == 2 and parts[0] == "blocks":
        return view.block(_height_or_hash(parts[1]))
    raise Missing(f"Route GET:{path} not found")


def _limit(params: Mapping[str, str], limits: tuple[int, int], *, zero_ok: bool = False) -> int:
    default, maximum = limits
    raw = params.get("limit")
    if raw is None:
        return default
    if not _INTEGER.match(raw.strip() or "x"):
        raise BadRequest("querystring/limit must be integer")
    value = int(raw)
    if value > maximum:
        raise BadRequest(f"querystring/limit must be <= {maximum}")
    if value < (0 if zero_ok else 1):
        raise BadRequest(f"querystring/limit must be >= {0 if zero_ok else 1}")
    return value


def _offset(params: Mapping[str, str]) -> int:
    raw = params.get("offset")
    if raw is None:
        return 0
    if not _INTEGER.match(raw.strip() or "x"):
        raise BadRequest("querystring/offset must be integer")
    if int(raw) < 0:
        raise BadRequest("querystring/offset must be >= 0")
    return int(raw)


def _height_or_hash(raw: str) -> int | str:
    """`latest`, a height, or a 64-hex hash (`src/api/routes/v2/schemas.ts` parseBlockParam)."""
    if raw == "latest":
        return raw
    if _INTEGER.match(raw) and int(raw) >= 0:
        return int(raw)
    if _HASH.match(raw):
        return "0x" + raw.lower().removeprefix("0x")
    raise BadRequest(
        "params/height_or_hash must be equal to constant, params/height_or_hash must match "
        'pattern "^(0x)?[a-fA-F0-9]{64}$", params/height_or_hash must be integer, '
        "params/height_or_hash must match a schema in anyOf"
    )
