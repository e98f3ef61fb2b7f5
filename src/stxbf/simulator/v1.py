"""`GET /extended/v1/tx`, the deprecated list route, and `/extended/v1/status`.

Written to hirosystems/stacks-blockchain-api `src/api/routes/v1/tx.ts` (v9.0.2): the query is
checked in the schema's order (Ajv stops at the first error), then one page is selected from the
chain and rendered. Rendered pages are kept in a byte-bounded cache, so retries and re-reads cost
nothing. The route's deprecation (`Warning: 299`, or `410 Gone`) is the API's deprecation plugin.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stxbf.simulator.chain import API_TX_TYPES, KINDS, SORT_KEYS, Chain
from stxbf.simulator.query import all_values, bool_param, enum_error, int_param
from stxbf.simulator.render import Renderer
from stxbf.simulator.responses import (
    JSON_TYPE,
    BadRequest,
    Response,
    json_response,
    route_not_found,
)

# hirosystems/stacks-blockchain-api src/api/pagination.ts: ResourceType.Tx {default 20, max 50}
MAX_LIMIT = 50
DEFAULT_LIMIT = 20
# src/api/init.ts registers the deprecation plugin with this default message; the plugin
# (src/api/deprecation-plugin.ts) sends `299 - "Deprecated: <message>"` and, switched off, a 410
DEPRECATED_MESSAGE = "See https://docs.hiro.so/stacks/api for more information"
DEPRECATION_WARNING = f'299 - "Deprecated: {DEPRECATED_MESSAGE}"'
GONE_BODY = {"error": "Gone", "message": f"This endpoint has been disabled. {DEPRECATED_MESSAGE}"}
TX_LIST_PATHS = frozenset({"/extended/v1/tx", "/extended/v1/tx/"})
STATUS_PATHS = frozenset({"/extended", "/extended/", "/extended/v1/status"})


class PageCache:
    """Keep rendered page bodies, least recently used first out, bounded in bytes.

    Retries and re-reads of a page then cost nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self._items: OrderedDict[tuple[Any, ...], tuple[bytes, int]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> tuple[bytes, int] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return item

    def put(self, key: tuple[Any, ...], item: tuple[bytes, int]) -> None:
        if len(item[0]) > self.max_bytes or key in self._items:
            return
        self._items[key] = item
        self.bytes += len(item[0])
        while self.bytes > self.max_bytes:
            _, (old, _count) = self._items.popitem(last=False)
            self.bytes -= len(old)


@dataclass(frozen=True)
class ListQuery:
    """Hold one valid list query; it is hashable, so it keys the page cache."""

    offset: int
    limit: int
    kinds: tuple[int, ...] | None  # None = every type; () = only types that never occur
    order: str
    sort_by: str
    start_time: int | None
    end_time: int | None
    exclude_function_args: bool


def parse_list_query(params: Mapping[str, str], query: str) -> ListQuery:
    """Check the parameters in the schema's order, since Ajv stops at the first error.

    `limit=0` means the default (pagination.ts getPagingQueryLimit: `if (!limitOverride)`).
    """
    offset = int_param(params, "offset", 0)
    limit = int_param(params, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    assert offset is not None
    kinds = None
    # repeated `type=a&type=b` as well as `type=a,b` (the route's preValidation splits)
    types = [t for raw in all_values(query, "type") for t in raw.split(",") if t]
    if types:
        for at, name in enumerate(types):
            if name not in API_TX_TYPES:
                raise enum_error(f"type/{at}", API_TX_TYPES)
        kinds = tuple(KINDS.index(t) for t in types if t in KINDS)
    bool_param(params, "unanchored")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise enum_error("order", ("asc", "desc"))
    sort_by = params.get("sort_by", "block_height")
    if sort_by not in SORT_KEYS:
        raise enum_error("sort_by", SORT_KEYS)
    start_time = int_param(params, "start_time", None, minimum=None) or None
    end_time = int_param(params, "end_time", None, minimum=None) or None
    int_param(params, "nonce", None)
    exclude_args = bool_param(params, "exclude_function_args")
    return ListQuery(offset, limit, kinds, order, sort_by, start_time, end_time, exclude_args)


class TxList:
    """Serve the v1 list route over one chain: validation, paging, the page cache, deprecation."""

    def __init__(self, chain: Chain, renderer: Renderer, cache: PageCache) -> None:
        self.chain = chain
        self.renderer = renderer
        self.cache = cache

    def route(
        self, method: str, path: str, params: Mapping[str, str], query: str, state: str
    ) -> Response:
        """Answer the route in the v1 `state` given (on, deprecated or gone)."""
        if method not in ("GET", "HEAD"):
            return route_not_found(method, path)
        if state == "gone":  # onRequest hook: before validation and the handler
            response = json_response(410, GONE_BODY)
        else:
            try:
                response = self.page(parse_list_query(params, query))
            except BadRequest as exc:
                response = exc.response()
        if state != "on":  # the plugin's onSend hook: every answer of the route
            response.headers.append(("warning", DEPRECATION_WARNING))
        return response

    def page(self, q: ListQuery) -> Response:
        """Answer one page as Hiro writes it, from the cache while the chain has not changed."""
        chain = self.chain
        cache_key = (q, chain.version)
        cached = self.cache.get(cache_key)
        if cached is None:
            total, indices = chain.select(
                start_time=q.start_time,
                end_time=q.end_time,
                sort_by=q.sort_by,
                descending=q.order == "desc",
                kinds=q.kinds,
                offset=q.offset,
                limit=q.limit,
            )
            rows = self.renderer.page(indices, exclude_function_args=q.exclude_function_args)
            body = (
                f'{{"limit":{q.limit},"offset":{q.offset},"total":{total},"results":['
                f"{','.join(rows)}]}}"
            ).encode()
            count = len(indices)
            self.cache.put(cache_key, (body, count))
        else:
            body, count = cached
        return Response(200, [("content-type", JSON_TYPE)], body, page_results=count)


def status(chain: Chain, renderer: Renderer) -> Response:
    """Answer `/extended/v1/status` with the server's readiness and the chain tip."""
    summary = chain.summary()
    tip_block = len(chain.block_time) - 1
    tip = {
        "block_height": summary["tip_block_height"],
        "block_hash": renderer.block_hash(tip_block),
        "index_block_hash": renderer.block_hash(tip_block),
        "burn_block_height": summary["tip_burn_block_height"],
    }
    return json_response(
        200, {"server_version": "stxbf-simulator", "status": "ready", "chain_tip": tip}
    )
