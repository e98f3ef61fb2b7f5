"""The simulated Hiro API as one pure handler: (method, target, headers, client, now) → Response.

No sockets here: the asyncio server (`server.py`) and the httpx transport (`transport.py`) are two
front ends that carry out the `Response`, including its `action` for faults that need a transport
(drop the connection, stall, truncate the body, refuse connections). Everything that decides what a
client sees lives here: validation, paging, rate limits, the early-request audit, seeded faults and
outages, and the `/_sim/` control routes (exempt from limits and faults).
"""

from __future__ import annotations

import enum
import hashlib
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from stxbf.simulator import v3 as v3_routes
from stxbf.simulator.chain import API_TX_TYPES, KINDS, SORT_KEYS, Chain
from stxbf.simulator.config import FAULT_KINDS, OUTAGE_MODES, SimConfig, parse_fault_kinds
from stxbf.simulator.render import Renderer

MAX_LIMIT = 50
DEFAULT_LIMIT = 20
TX_LIST_PATHS = frozenset({"/extended/v1/tx", "/extended/v1/tx/"})
STATUS_PATHS = frozenset({"/extended", "/extended/", "/extended/v1/status"})
JSON_TYPE = "application/json; charset=utf-8"
MALFORMED_BODY = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing api.hiro.so</h1></body></html>"
)


class Action(enum.Enum):
    """What the transport does besides (or instead of) writing the response."""

    SEND = "send"
    DROP = "drop"  # close the connection, no response
    STALL = "stall"  # say nothing for `stall_seconds` (or until the client leaves), then close
    TRUNCATE = "truncate"  # full Content-Length, part of the body, then close
    REFUSE = "refuse"  # outage: close the connection; the server also stops listening


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    action: Action = Action.SEND
    delay: float = 0.0  # seconds to wait before acting (latency), without blocking others
    fault: str | None = None
    stall_seconds: float = 0.0
    pause_listening: float = 0.0  # set by POST /_sim/outage in refuse mode
    close: bool = False


class _BadRequest(Exception):
    pass


@dataclass
class _Client:
    minute: deque[float] = field(default_factory=deque)
    second: deque[float] = field(default_factory=deque)
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


def _json_response(
    status: int, payload: Any, extra: list[tuple[str, str]] | None = None
) -> Response:
    headers = [("content-type", JSON_TYPE), *(extra or [])]
    return Response(status, headers, orjson.dumps(payload))


def _error(status: int, message: str) -> Response:
    return _json_response(status, {"error": message})


def _int_param(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"`{name}` must be an integer") from None
    if value < 0:
        raise _BadRequest(f"`{name}` must be equal to or greater than 0")
    return value


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
            block_seconds=config.block_seconds,
        )
        self.renderer = Renderer(self.chain)
        # chain time = wall time + shift: the chain's end_time is "now" at `epoch`; a chain built
        # for "now" keeps wall time (its build may take a second)
        if epoch is None and config.end_time is None and chain is None:
            self.time_shift = 0.0
        else:
            self.time_shift = self.chain.end_time - (time.time() if epoch is None else epoch)
        self.rpm = config.rpm or 0
        self.per_second = config.per_second or 0
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
        self.auth_rejected = 0
        self.outage_rejected = 0
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.bytes_out = 0

    def chain_now(self, now: float) -> float:
        return now + self.time_shift

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
                except _BadRequest as exc:
                    return _error(400, str(exc))
            response = self._api(method, path, params, split.query, headers, client, now)
            self.requests += 1
            self.by_status[response.status] = self.by_status.get(response.status, 0) + 1
            self.bytes_out += len(response.body)
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
            return _error(404, f"Not found: {path}")
        if now < self.outage_until:
            self.outage_rejected += 1
            if self.outage_mode == "503":
                return _error(503, "Service Unavailable (simulated outage)")
            action = Action.REFUSE if self.outage_mode == "refuse" else Action.DROP
            return Response(503, [], b"", action=action)
        key_header = headers.get("x-api-key")
        if config.require_key:
            if not key_header:
                self.auth_rejected += 1
                return _error(401, "Unauthorized: an API key is required (x-api-key header)")
            if key_header not in config.api_keys:
                self.auth_rejected += 1
                return _error(403, "Forbidden: invalid API key")
        who = mask_key(key_header) if key_header else client  # one bucket per key, else per IP
        state = self._clients.get(who)
        if state is None:
            state = self._clients[who] = _Client()
        state.requests += 1
        delay = self._delay()
        if state.blocked_from + config.early_grace < now < state.blocked_until:
            state.early += 1
            self.early_requests += 1
        limited, limit_headers = self._rate_limit(state, now)
        if limited is not None:
            self._block(state, now + delay, limited)
            self.rate_limited += 1
            state.rate_limited += 1
            response = _error(429, f"Too Many Requests: retry after {limited} s")
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
        if config.deprecation:
            response.headers.append(("warning", '299 - "Deprecated API"'))
        response.delay = delay
        return response

    def _route(self, method: str, path: str, params: dict[str, str], query: str) -> Response:
        if path in TX_LIST_PATHS:
            if method not in ("GET", "HEAD"):
                return _error(405, "Method Not Allowed")
            if self.config.v1_gone:
                return _error(410, "Gone: /extended/v1/tx is retired; use /extended/v2")
            try:
                return self._tx_list(params, query)
            except _BadRequest as exc:
                return _error(400, str(exc))
        if path in STATUS_PATHS:
            return self._status()
        if v3_routes.handles(path):
            return v3_routes.route(self, method, path, params)
        return _error(404, f"Not found: {path}")

    def _tx_list(self, params: dict[str, str], query: str) -> Response:
        limit = _int_param(params, "limit", DEFAULT_LIMIT)
        offset = _int_param(params, "offset", 0)
        start_time = _int_param(params, "start_time", None) or None
        end_time = _int_param(params, "end_time", None) or None
        assert limit is not None and offset is not None
        if limit > MAX_LIMIT or limit < 1:
            raise _BadRequest(f"`limit` must be between 1 and {MAX_LIMIT}")
        order = params.get("order", "desc") or "desc"
        if order not in ("asc", "desc"):
            raise _BadRequest("`order` must be one of: asc, desc")
        sort_by = params.get("sort_by", "block_height") or "block_height"
        if sort_by not in SORT_KEYS:
            raise _BadRequest(f"`sort_by` must be one of: {', '.join(SORT_KEYS)}")
        kinds = None
        # repeated `type=a&type=b` as well as `type=a,b`
        types = [t for raw in _all_values(query, "type") for t in raw.split(",") if t]
        if types:
            bad = [t for t in types if t not in API_TX_TYPES]
            if bad:
                raise _BadRequest(f"`type` must be among: {', '.join(API_TX_TYPES)}")
            kinds = [KINDS.index(t) for t in types if t in KINDS]
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
            rows = self.renderer.page(indices)
            body = (
                f'{{"limit":{limit},"offset":{offset},"total":{total},"results":['
                f"{','.join(rows)}]}}"
            ).encode()
            self._cache.put(cache_key, (body, len(indices)))
            self.results += len(indices)
        else:
            body, count = cached
            self.results += count
        self.pages += 1
        return Response(200, [("content-type", JSON_TYPE)], body)

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
        return _json_response(
            200,
            {"server_version": "stxbf-simulator", "status": "ready", "chain_tip": tip},
        )

    # ---- rate limits and the early-request audit --------------------------------------------

    def _rate_limit(self, state: _Client, now: float) -> tuple[int | None, list[tuple[str, str]]]:
        """(retry_after or None, headers): a sliding 60 s window plus an optional 1 s cap."""
        if not self.rpm and not self.per_second:
            return None, []
        headers: list[tuple[str, str]] = []
        minute, second = state.minute, state.second
        while minute and minute[0] <= now - 60.0:
            minute.popleft()
        while second and second[0] <= now - 1.0:
            second.popleft()
        retry_after: int | None = None
        if self.rpm and len(minute) >= self.rpm:
            retry_after = max(1, math.ceil(minute[0] + 60.0 - now))
        elif self.per_second and len(second) >= self.per_second:
            retry_after = max(1, math.ceil(second[0] + 1.0 - now))
        if retry_after is None:
            minute.append(now)
            second.append(now)
        if self.rpm:
            remaining = max(0, self.rpm - len(minute))
            reset = retry_after or max(1, math.ceil(minute[0] + 60.0 - now))
            headers += [
                ("ratelimit-limit", str(self.rpm)),
                ("ratelimit-remaining", str(remaining)),
                ("ratelimit-reset", str(reset)),
                ("x-ratelimit-limit-stacks-minute", str(self.rpm)),
                ("x-ratelimit-remaining-stacks-minute", str(remaining)),
            ]
        if self.per_second:
            headers += [
                ("x-ratelimit-limit-stacks-second", str(self.per_second)),
                ("x-ratelimit-remaining-stacks-second", str(max(0, self.per_second - len(second)))),
            ]
        if retry_after is not None:
            headers.append(("retry-after", str(retry_after)))
        return retry_after, headers

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
            response = _error(status, f"simulated {status}")
        elif kind == "429":
            retry_after = rng.randint(1, 5)
            self._block(state, now + delay, retry_after)
            response = _error(429, "Too Many Requests (simulated storm)")
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
            return _json_response(200, self._stats_locked(now))
        if path == "/_sim/chain" and method == "GET":
            return _json_response(200, self.chain.summary())
        if path == "/_sim/truth" and method == "GET":
            start = _int_param(params, "start_time", None) or None
            end = _int_param(params, "end_time", None) or None
            return _json_response(
                200, self.truth(start, end, ids=params.get("ids") in ("1", "true"))
            )
        if method != "POST":
            return _error(404 if path not in _ADMIN_POSTS else 405, f"Not found: {path}")
        if path == "/_sim/outage":
            seconds = float(params.get("seconds") or 0)
            mode = params.get("mode") or "refuse"
            if mode not in OUTAGE_MODES:
                raise _BadRequest(f"mode must be one of {', '.join(OUTAGE_MODES)}")
            self.outage(seconds, mode=mode, now=now)
            response = _json_response(200, {"outage_seconds": seconds, "mode": mode})
            if mode == "refuse":
                response.pause_listening = seconds
            return response
        if path == "/_sim/faults":
            rate = float(params.get("rate") or 0)
            try:
                self.set_faults(rate, params.get("kinds"))
            except ValueError as exc:
                raise _BadRequest(str(exc)) from None
            return _json_response(200, {"rate": self.fault_rate, "kinds": list(self.fault_kinds)})
        if path == "/_sim/limits":
            rpm = _int_param(params, "rpm", self.rpm)
            per_second = _int_param(params, "per_second", self.per_second)
            self.set_limits(rpm=rpm, per_second=per_second)
            return _json_response(200, {"rpm": self.rpm, "per_second": self.per_second})
        if path == "/_sim/advance":
            added = self._advance_clock(float(params.get("seconds") or 0), now)
            return _json_response(200, {"added": added, "chain": self.chain.summary()})
        if path == "/_sim/reset":
            self._reset_counters()
            self._clients.clear()
            return _json_response(200, {"reset": True})
        return _error(404, f"Not found: {path}")

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

    def set_limits(self, *, rpm: int | None = None, per_second: int | None = None) -> None:
        self.rpm = rpm or 0
        self.per_second = per_second or 0

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
    {"/_sim/outage", "/_sim/faults", "/_sim/limits", "/_sim/advance", "/_sim/reset"}
)


def _all_values(query: str, name: str) -> list[str]:
    return [value for key, value in parse_qsl(query, keep_blank_values=True) if key == name]
