"""The simulated Hiro API as one pure handler: (method, target, headers, client, now) → Response.

No sockets here: the asyncio server (`server.py`) and the httpx transport (`transport.py`) are two
front ends that carry out the `Response`, including its `action` for faults that need a transport
(drop the connection, stall, truncate the body, refuse connections). Everything that decides what a
client sees lives here: validation, paging, rate limits, the early-request audit, seeded faults and
outages, and the `/_sim/` control routes (exempt from limits and faults).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from stxbf.simulator import v3 as v3_routes
from stxbf.simulator.chain import API_TX_TYPES, KINDS, SORT_KEYS, Chain
from stxbf.simulator.config import (
    FAULT_KINDS,
    OUTAGE_MODES,
    V1_STATES,
    SimConfig,
    parse_fault_kinds,
)
from stxbf.simulator.query import all_values, bool_param, enum_error, int_param
from stxbf.simulator.ratelimit import ClientWindows, RatePolicy
from stxbf.simulator.render import Renderer
from stxbf.simulator.responses import (
    JSON_TYPE,
    Action,
    BadRequest,
    Response,
    bad_request,
    error,
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
MALFORMED_BODY = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing api.hiro.so</h1></body></html>"
)


@dataclass
class _Client:
    windows: ClientWindows = field(default_factory=ClientWindows)
    blocked_from: float = 0.0  # when the first unexpired 429 left the server
    blocked_until: float = 0.0  # its retry-after deadline (extended by later 429s)
    requests: int = 0
    rate_limited: int = 0
    early: int = 0


class _PageCache:
    """LRU of rendered page bodies, bounded in bytes (retries and re-reads are free)."""

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


def mask_key(key: str) -> str:
    """How a key appears in stats: never the key itself, yet distinct per key."""
    return f"key:{key[:3]}…{hashlib.blake2b(key.encode(), digest_size=3).hexdigest()}"


class SimApi:
    """The handler and all its run-time state; thread-safe (one lock around each request)."""

    def __init__(
        self,
        config: SimConfig | None = None,
        chain: Chain | None = None,
        *,
        epoch: float | None = None,
    ) -> None:
        self.config = config = config or SimConfig()
        self.chain = chain or Chain(
            seed=config.seed,
            days=config.days,
            tx_per_day=config.tx_per_day,
            end_time=config.end_time,
            growth=config.growth,
            tenure_seconds=config.tenure_seconds,
            extended_tenure_hours=config.extended_tenure_hours,
            block_seconds=config.block_seconds,
        )
        self.renderer = Renderer(self.chain)
        # chain time = wall time + shift: the chain's end_time is "now" at `epoch`; a chain built
        # for "now" keeps wall time (its build may take a second)
        if epoch is None and config.end_time is None and chain is None:
            self.time_shift = 0.0
        else:
            self.time_shift = self.chain.end_time - (time.time() if epoch is None else epoch)
        self.policy = RatePolicy(
            rpm=config.rpm or 0,
            per_second=config.per_second or 0,
            month_quota=config.month_quota or 0,
            month_seconds=config.month_seconds or 0.0,
            cost=config.request_cost,
            style=config.rate_headers,
            generic_window=config.rate_generic_window,
            reset_format=config.rate_reset,
        )
        self.v1_state = config.v1_state
        self.fault_rate = config.fault_rate
        self.fault_kinds = tuple(config.fault_kinds)
        self.outage_until = 0.0
        self.outage_mode = "refuse"
        self._fault_rng = random.Random(f"faults:{config.seed}")
        self._jitter_rng = random.Random(f"latency:{config.seed}")
        self._lock = threading.Lock()
        self._cache = _PageCache(config.page_cache_bytes)
        self._clients: dict[str, _Client] = {}
        self.transport_stats: dict[str, int] = {
            "connections_total": 0,
            "connections_open": 0,
            "in_flight": 0,
            "max_in_flight": 0,
        }
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.pages = 0
        self.results = 0
        self.rate_limited = 0
        self.early_requests = 0
        self.quota_exhausted = 0
        self.by_style: dict[str, dict[str, int]] = {}
        self.auth_rejected = 0
        self.outage_rejected = 0
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.bytes_out = 0

    def chain_now(self, now: float) -> float:
        return now + self.time_shift

    @property
    def rpm(self) -> int:
        return self.policy.rpm

    @property
    def per_second(self) -> int:
        return self.policy.per_second

    # ---- entry point ------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        client: str = "127.0.0.1",
        now: float | None = None,
    ) -> Response:
        """Answer one request. `headers` keys are lower-case; `now` is wall time (default: now)."""
        now = time.time() if now is None else now
        split = urlsplit(target)
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            if path.startswith("/_sim/"):
                try:
                    return self._admin(method, path, params, now)
                except (BadRequest, ValueError) as exc:  # float("abc") too: a 400, not a crash
                    return bad_request(str(exc))
            response = self._api(method, path, params, split.query, headers, client, now)
            self.requests += 1
            self.by_status[response.status] = self.by_status.get(response.status, 0) + 1
            self.bytes_out += len(response.body)
            if response.page_results is not None:
                self.pages += 1
                self.results += response.page_results
            return response

    # ---- the API ----------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query: str,
        headers: Mapping[str, str],
        client: str,
        now: float,
    ) -> Response:
        config = self.config
        if not path.startswith("/extended"):
            return route_not_found(method, path)
        if now < self.outage_until:
            self.outage_rejected += 1
            if self.outage_mode == "503":
                return error(503, "Service Unavailable (simulated outage)")
            action = Action.REFUSE if self.outage_mode == "refuse" else Action.DROP
            return Response(503, [], b"", action=action)
        key_header = headers.get("x-api-key")
        if config.require_key:
            if not key_header:
                self.auth_rejected += 1
                return error(401, "Unauthorized: an API key is required (x-api-key header)")
            if key_header not in config.api_keys:
                self.auth_rejected += 1
                return error(403, "Forbidden: invalid API key")
        who = mask_key(key_header) if key_header else client  # one bucket per key, else per IP
        state = self._clients.get(who)
        if state is None:
            state = self._clients[who] = _Client()
        state.requests += 1
        style = self._style_counters()
        style["requests"] += 1
        delay = self._delay()
        if state.blocked_from + config.early_grace < now < state.blocked_until:
            state.early += 1
            self.early_requests += 1
            style["early"] += 1
        limited, reason, limit_headers = self.policy.admit(state.windows, now)
        if limited is not None:
            self._block(state, now + delay, limited)
            self.rate_limited += 1
            state.rate_limited += 1
            style["rate_limited"] += 1
            if reason == "month":
                self.quota_exhausted += 1
                style["quota_exhausted"] += 1
                message = f"Too Many Requests: monthly quota used up; retry after {limited} s"
            else:
                message = f"Too Many Requests: retry after {limited} s"
            response = error(429, message)
            response.headers += limit_headers
            response.delay = delay
            return response
        kind, response_or_none = self._draw_fault(state, now, delay)
        if response_or_none is None:
            self.chain.advance(self.chain_now(now))
            response = self._route(method, path, params, query)
            spoilable = path in TX_LIST_PATHS or path == v3_routes.V3_TX_LIST
            if kind is not None and response.status == 200 and spoilable:
                self._spoil(response, kind)
        else:
            response = response_or_none
        response.headers += limit_headers
        response.delay = delay
        return response

    def _style_counters(self) -> dict[str, int]:
        """The counters of the rate-header style in force (benchmarks compare styles)."""
        counters = self.by_style.get(self.policy.style)
        if counters is None:
            counters = self.by_style[self.policy.style] = dict.fromkeys(
                ("requests", "rate_limited", "early", "quota_exhausted"), 0
            )
        return counters

    def _route(self, method: str, path: str, params: dict[str, str], query: str) -> Response:
        if path in TX_LIST_PATHS:
            if method not in ("GET", "HEAD"):
                return route_not_found(method, path)
            response = self._v1_tx_route(params, query)
            if self.v1_state != "on":  # the plugin's onSend hook: every answer of the route
                response.headers.append(("warning", DEPRECATION_WARNING))
            return response
        if path in STATUS_PATHS:
            return self._status()
        if v3_routes.handles(path):
            return v3_routes.route(self.chain, self.renderer, method, path, params)
        return route_not_found(method, path)

    def _v1_tx_route(self, params: dict[str, str], query: str) -> Response:
        if self.v1_state == "gone":  # onRequest hook: before validation and the handler
            return json_response(410, GONE_BODY)
        try:
            return self._tx_list(params, query)
        except BadRequest as exc:
            return bad_request(str(exc))

    def _tx_list(self, params: dict[str, str], query: str) -> Response:
        """GET /extended/v1/tx (stacks-blockchain-api src/api/routes/v1/tx.ts, v9.0.2).

        Parameters are checked in the schema's order, as Ajv stops at the first error.
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
            kinds = [KINDS.index(t) for t in types if t in KINDS]
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
        chain = self.chain
        key = (
            start_time,
            end_time,
            sort_by,
            order,
            tuple(kinds or ()),
            kinds is None,
            offset,
            limit,
            exclude_args,
        )
        cache_key = (*key, chain.version)
        cached = self._cache.get(cache_key)
        if cached is None:
            total, indices = chain.select(
                start_time=start_time,
                end_time=end_time,
                sort_by=sort_by,
                descending=order == "desc",
                kinds=kinds,
                offset=offset,
                limit=limit,
            )
            rows = self.renderer.page(indices, exclude_function_args=exclude_args)
            body = (
                f'{{"limit":{limit},"offset":{offset},"total":{total},"results":['
                f"{','.join(rows)}]}}"
            ).encode()
            count = len(indices)
            self._cache.put(cache_key, (body, count))
        else:
            body, count = cached
        return Response(200, [("content-type", JSON_TYPE)], body, page_results=count)

    def _status(self) -> Response:
        chain = self.chain
        summary = chain.summary()
        tip_block = len(chain.block_time) - 1
        tip = {
            "block_height": summary["tip_block_height"],
            "block_hash": self.renderer.block_hash(tip_block),
            "index_block_hash": self.renderer.block_hash(tip_block),
            "burn_block_height": summary["tip_burn_block_height"],
        }
        return json_response(
            200,
            {"server_version": "stxbf-simulator", "status": "ready", "chain_tip": tip},
        )

    # ---- rate limits and the early-request audit --------------------------------------------

    def _block(self, state: _Client, sent_at: float, retry_after: int) -> None:
        """Remember a 429's deadline: requests arriving before it (after a grace) are early."""
        if sent_at >= state.blocked_until:
            state.blocked_from = sent_at
        state.blocked_until = max(state.blocked_until, sent_at + retry_after)

    # ---- latency and faults -----------------------------------------------------------------

    def _delay(self) -> float:
        latency = self.config.latency_ms / 1000.0
        if latency <= 0:
            return 0.0
        jitter = self.config.jitter
        return max(0.0, latency + self._jitter_rng.uniform(-jitter, jitter))

    def _draw_fault(
        self, state: _Client, now: float, delay: float
    ) -> tuple[str | None, Response | None]:
        """(kind, response): a response replaces the answer; truncate/short spoil a real page."""
        if self.fault_rate <= 0 or not self.fault_kinds:
            return None, None
        rng = self._fault_rng
        if rng.random() >= self.fault_rate:
            return None, None
        kind = rng.choice(self.fault_kinds)
        if kind in ("truncate", "short"):
            return kind, None
        self.faults[kind] += 1
        if kind in ("500", "502", "503", "504"):
            status = int(kind)
            response = error(status, f"simulated {status}")
        elif kind == "429":
            retry_after = rng.randint(1, 5)
            self._block(state, now + delay, retry_after)
            response = error(429, "Too Many Requests (simulated storm)")
            response.headers.append(("retry-after", str(retry_after)))
        elif kind == "malformed":
            response = Response(200, [("content-type", "text/html; charset=utf-8")], MALFORMED_BODY)
        elif kind == "drop":
            response = Response(200, [], b"", action=Action.DROP)
        else:  # stall
            stall = self.config.stall_seconds
            response = Response(200, [], b"", action=Action.STALL, stall_seconds=stall)
        response.fault = kind
        return kind, response

    def _spoil(self, response: Response, kind: str) -> None:
        """Truncate a good page in transit, or silently drop some of its results."""
        if kind == "truncate":
            response.action = Action.TRUNCATE
        else:
            page = orjson.loads(response.body)
            results = page["results"]
            if len(results) < 2:
                return  # nothing to leave out
            keep = sorted(self._fault_rng.sample(range(len(results)), k=len(results) // 2))
            page["results"] = [results[i] for i in keep]
            response.body = orjson.dumps(page)
        response.fault = kind
        self.faults[kind] += 1

    # ---- admin ------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, params: dict[str, str], now: float) -> Response:
        if path == "/_sim/stats" and method == "GET":
            return json_response(200, self._stats_locked(now))
        if path == "/_sim/chain" and method == "GET":
            return json_response(200, self.chain.summary())
        if path == "/_sim/truth" and method == "GET":
            start = int_param(params, "start_time", None) or None
            end = int_param(params, "end_time", None) or None
            return json_response(
                200, self.truth(start, end, ids=params.get("ids") in ("1", "true"))
            )
        if path == "/_sim/v1" and method == "GET":
            return json_response(200, {"v1": self.v1_state})
        if method != "POST":
            return error(404 if path not in _ADMIN_POSTS else 405, f"Not found: {path}")
        if path == "/_sim/v1":
            state = params.get("state") or ""
            try:
                self.set_v1(state)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return json_response(200, {"v1": self.v1_state})
        if path == "/_sim/outage":
            seconds = float(params.get("seconds") or 0)
            mode = params.get("mode") or "refuse"
            if mode not in OUTAGE_MODES:
                raise BadRequest(f"mode must be one of {', '.join(OUTAGE_MODES)}")
            self.outage(seconds, mode=mode, now=now)
            response = json_response(200, {"outage_seconds": seconds, "mode": mode})
            if mode == "refuse":
                response.pause_listening = seconds
            return response
        if path == "/_sim/faults":
            rate = float(params.get("rate") or 0)
            try:
                self.set_faults(rate, params.get("kinds"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return json_response(200, {"rate": self.fault_rate, "kinds": list(self.fault_kinds)})
        if path == "/_sim/limits":
            policy = self.policy
            try:
                seconds = float(params.get("month_seconds") or policy.month_seconds)
                self.set_limits(
                    rpm=int_param(params, "rpm", policy.rpm),
                    per_second=int_param(params, "per_second", policy.per_second),
                    month_quota=int_param(params, "month_quota", policy.month_quota),
                    month_seconds=seconds,
                    request_cost=int_param(params, "request_cost", policy.cost, minimum=1),
                    rate_headers=params.get("rate_headers") or None,
                    rate_generic_window=params.get("rate_generic_window") or None,
                    rate_reset=params.get("rate_reset") or None,
                )
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return json_response(200, self._limits_locked())
        if path == "/_sim/advance":
            added = self._advance_clock(float(params.get("seconds") or 0), now)
            return json_response(200, {"added": added, "chain": self.chain.summary()})
        if path == "/_sim/anomaly":
            return json_response(200, self._anomaly(params))
        if path == "/_sim/reset":
            self._reset_counters()
            self._clients.clear()
            return json_response(200, {"reset": True})
        return error(404, f"Not found: {path}")

    # ---- in-process control (tests call these directly; HTTP routes call them too) ----------

    def set_faults(self, rate: float, kinds: str | tuple[str, ...] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        self.fault_rate = rate
        if kinds is not None:
            self.fault_kinds = parse_fault_kinds(
                kinds if isinstance(kinds, str) else ",".join(kinds)
            )

    def advance(self, seconds: float, now: float | None = None) -> int:
        """Move the chain's clock forward (growth catches up at once); return txs added."""
        with self._lock:
            return self._advance_clock(seconds, time.time() if now is None else now)

    def _advance_clock(self, seconds: float, now: float) -> int:
        self.time_shift += max(0.0, seconds)
        return self.chain.advance(self.chain_now(now))

    def set_limits(
        self,
        *,
        rpm: int | None = None,
        per_second: int | None = None,
        month_quota: int | None = None,
        month_seconds: float | None = None,
        request_cost: int | None = None,
        rate_headers: str | None = None,
        rate_generic_window: str | None = None,
        rate_reset: str | None = None,
    ) -> None:
        """Change the limits in force (the names are SimConfig's).

        `rpm` and `per_second` are always set (None = off); the other arguments keep their value
        when None. A combination that cannot hold (ratelimit.check_policy) raises ValueError and
        changes nothing.
        """
        old = self.policy
        new = RatePolicy(
            rpm=rpm or 0,
            per_second=per_second or 0,
            month_quota=old.month_quota if month_quota is None else month_quota,
            month_seconds=old.month_seconds if month_seconds is None else month_seconds,
            cost=old.cost if request_cost is None else request_cost,
            style=rate_headers or old.style,
            generic_window=rate_generic_window or old.generic_window,
            reset_format=rate_reset or old.reset_format,
        )
        new.validate()
        self.policy = new

    def set_v1(self, state: str) -> None:
        """Switch `/extended/v1/tx` on, to deprecated (Warning: 299) or gone (410), at once."""
        if state not in V1_STATES:
            raise ValueError(f"state must be one of {', '.join(V1_STATES)}")
        self.v1_state = state

    def _limits_locked(self) -> dict[str, Any]:
        policy = self.policy
        return {
            "rpm": policy.rpm,
            "per_second": policy.per_second,
            "month_quota": policy.month_quota,
            "month_seconds": policy.month_seconds,
            "request_cost": policy.cost,
            "rate_headers": policy.style,
            "rate_generic_window": policy.generic_window,
            "rate_reset": policy.reset_format,
        }

    def _anomaly(self, params: dict[str, str]) -> dict[str, Any]:
        """POST /_sim/anomaly?kind=extend|earlier|reorg|late (see the Chain's methods)."""
        kind = params.get("kind") or ""
        chain = self.chain
        if kind == "extend":
            added: Any = chain.extend_tenure(float(params.get("seconds") or 3600))
        elif kind == "earlier":
            added = chain.stamp_earlier(float(params.get("seconds") or 1800))
        elif kind == "reorg":
            txs = int_param(params, "txs", None)
            added = chain.reorg(int_param(params, "blocks", 3) or 1, txs)
        elif kind == "late":
            burn_time = int_param(params, "burn_time", None)
            if burn_time is None:
                raise BadRequest("`burn_time` is required for a late insert")
            added = chain.late_insert(burn_time, int_param(params, "txs", 5) or 1)
        else:
            raise BadRequest("`kind` must be one of: extend, earlier, reorg, late")
        return {"kind": kind, "result": added, "chain": chain.summary()}

    def outage(self, seconds: float, *, mode: str = "refuse", now: float | None = None) -> None:
        if mode not in OUTAGE_MODES:
            raise ValueError(f"mode must be one of {', '.join(OUTAGE_MODES)}")
        self.outage_mode = mode
        self.outage_until = (time.time() if now is None else now) + max(0.0, seconds)

    def truth(
        self, start_time: int | None = None, end_time: int | None = None, *, ids: bool = False
    ) -> dict[str, Any]:
        """What a complete backfill of the inclusive burn-time range must hold."""
        chain = self.chain
        result: dict[str, Any] = {
            "start_time": start_time,
            "end_time": end_time,
            "count": chain.count(start_time, end_time),
            "digest": chain.digest(start_time, end_time),
            "digest_method": "sha256 of sorted tx_ids, each followed by a newline",
        }
        if ids:
            result["tx_ids"] = chain.tx_ids(start_time, end_time)
        return result

    def stats(self, now: float | None = None) -> dict[str, Any]:
        with self._lock:
            return self._stats_locked(time.time() if now is None else now)

    def _stats_locked(self, now: float) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "pages": self.pages,
            "results": self.results,
            "rate_limited": self.rate_limited,
            "status_429": self.by_status.get(429, 0),
            "early_requests": self.early_requests,
            "quota_exhausted": self.quota_exhausted,
            "by_style": {style: dict(counts) for style, counts in self.by_style.items()},
            "limits": self._limits_locked(),
            "v1": self.v1_state,
            "auth_rejected": self.auth_rejected,
            "outage_rejected": self.outage_rejected,
            "outage_active": now < self.outage_until,
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "fault_rate": self.fault_rate,
            "fault_kinds": list(self.fault_kinds),
            "rpm": self.rpm,
            "per_second": self.per_second,
            "bytes_out": self.bytes_out,
            "page_cache_hits": self._cache.hits,
            "clients": {
                who: {"requests": c.requests, "rate_limited": c.rate_limited, "early": c.early}
                for who, c in self._clients.items()
            },
            **self.transport_stats,
            "chain": self.chain.summary(),
        }


_ADMIN_POSTS = frozenset(
    {"/_sim/outage", "/_sim/faults", "/_sim/limits", "/_sim/advance", "/_sim/reset", "/_sim/v1"}
    | {"/_sim/anomaly"}
)
