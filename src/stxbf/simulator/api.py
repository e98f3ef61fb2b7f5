"""The simulated Hiro API as one handler: (method, target, headers, client, now) to a Response.

`SimApi` holds everything a request can see or change: the chain and its clock, the rate policy,
the v1 route's state, faults and outages, the page cache, one record per client, and the counters
`/_sim/stats` reports. `handle` answers one request. There are no sockets here: the asyncio server
(`server.py`) and the httpx transport (`transport.py`) are two front ends that carry out the
`Response`, including its `action` for the faults that need a transport (drop the connection,
stall, truncate the body, refuse connections).

Every API request passes one pipeline (an outage, the API key, the rate limits and the audit of
requests sent too early, latency, seeded faults) before the route table sends it to `v1.py` or
`v3.py`. The `/_sim/` control routes (`admin.py`) are answered first, exempt from all of that.
Tests call the control methods (`set_faults`, `set_limits`, `outage`, `advance`, ...) directly.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from stxbf.simulator import admin, v1, v3
from stxbf.simulator.chain import Chain
from stxbf.simulator.config import (
    FAULT_KINDS,
    LOGNORMAL_SIGMA,
    OFFSET_FAULTS,
    OUTAGE_MODES,
    V1_STATES,
    SimConfig,
    parse_fault_kinds,
)
from stxbf.simulator.ratelimit import ClientWindows, RatePolicy
from stxbf.simulator.render import Renderer
from stxbf.simulator.responses import (
    Action,
    BadRequest,
    Response,
    bad_request,
    error,
    route_not_found,
)
from stxbf.simulator.v1 import PageCache

MALFORMED_BODY = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing api.hiro.so</h1></body></html>"
)


def mask_key(key: str) -> str:
    """Return how a key appears in the stats: never the key itself, yet distinct per key."""
    return f"key:{key[:3]}…{hashlib.blake2b(key.encode(), digest_size=3).hexdigest()}"


@dataclass
class ClientState:
    """Hold one client's rate windows and the audit of its early requests.

    A client is an API key, or an IP address when the request carries no key.
    """

    windows: ClientWindows = field(default_factory=ClientWindows)
    blocked_from: float = 0.0  # when the first unexpired 429 left the server
    blocked_until: float = 0.0  # its retry-after deadline (extended by later 429s)
    requests: int = 0
    rate_limited: int = 0
    early: int = 0


def _chain_for(config: SimConfig) -> Chain:
    return Chain(
        seed=config.seed,
        days=config.days,
        tx_per_day=config.tx_per_day,
        end_time=config.end_time,
        growth=config.growth,
        tenure_seconds=config.tenure_seconds,
        extended_tenure_hours=config.extended_tenure_hours,
        block_seconds=config.block_seconds,
        tenures_at=config.tenures_at,
    )


class SimApi:
    """Answer the simulated API's requests, and hold all the state they see and change.

    It is thread-safe: one lock is held around each request and each control.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        chain: Chain | None = None,
        *,
        epoch: float | None = None,
    ) -> None:
        self.config = config = config or SimConfig()
        # the wall time of a request that does not bring its own (`handle(now=…)`): the HTTP
        # front end's; a test replaces it to send requests at chosen instants
        self.clock: Callable[[], float] = time.time
        self.chain = chain or _chain_for(config)
        self.renderer = Renderer(self.chain)
        # chain time = wall time + shift: the chain's end_time is "now" at `epoch`; a chain built
        # for "now" keeps wall time (its build may take a second)
        if epoch is None and config.end_time is None and chain is None:
            self.time_shift = 0.0
        else:
            self.time_shift = self.chain.end_time - (time.time() if epoch is None else epoch)
        self.policy = config.rate_policy()
        self.v1_state = config.v1_state
        self.v1_gone_after = config.v1_gone_after
        self.v1_served = 0  # tx-list requests to v1 so far (for `v1_gone_after`)
        self.fault_rate = config.fault_rate
        self.fault_kinds = tuple(config.fault_kinds)
        self.outage_until = 0.0
        self.outage_mode = "refuse"
        self._fault_rng = random.Random(f"faults:{config.seed}")
        self._jitter_rng = random.Random(f"latency:{config.seed}")
        self._lock = threading.Lock()
        self._cache = PageCache(config.page_cache_bytes)
        self._tx_list = v1.TxList(self.chain, self.renderer, self._cache)
        self._clients: dict[str, ClientState] = {}
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

    def reset_locked(self) -> None:
        """Forget the counters and every client's windows (POST /_sim/reset)."""
        self._reset_counters()
        self._clients.clear()

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
        """Answer one request, at wall time `now` (by default the `clock`'s).

        `headers` has lower-case keys. The `/_sim/` routes are answered first and bypass the
        pipeline; every other request passes it and is counted in the stats.
        """
        now = self.clock() if now is None else now
        split = urlsplit(target)
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            if path.startswith("/_sim/"):
                try:
                    return admin.route(self, method, path, params, now)
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

    # ---- the pipeline -----------------------------------------------------------------------

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
        if not path.startswith("/extended"):
            return route_not_found(method, path)
        if now < self.outage_until:
            return self._outage_answer()
        key = headers.get("x-api-key")
        refused = self._check_key(key)
        if refused is not None:
            return refused
        state = self._client(mask_key(key) if key else client)  # one bucket per key, else per IP
        style = self._style_counters()
        style["requests"] += 1
        delay = self._delay()
        if state.blocked_from + self.config.early_grace < now < state.blocked_until:
            state.early += 1
            self.early_requests += 1
            style["early"] += 1
        retry_after, reason, limit_headers = self.policy.admit(state.windows, now)
        if retry_after is not None:
            response = self._refuse(state, style, now + delay, retry_after, reason)
        else:
            response = self._answer(method, path, params, query, state, now, delay)
        response.headers += limit_headers
        response.delay = delay
        return response

    def _outage_answer(self) -> Response:
        self.outage_rejected += 1
        if self.outage_mode == "503":
            return error(503, "Service Unavailable (simulated outage)")
        action = Action.REFUSE if self.outage_mode == "refuse" else Action.DROP
        return Response(503, [], b"", action=action)

    def _check_key(self, key: str | None) -> Response | None:
        """Refuse a request with 401 when it has no key and 403 when its key is unknown.

        Nothing is refused while the config does not require a key.
        """
        if not self.config.require_key:
            return None
        if not key:
            self.auth_rejected += 1
            return error(401, "Unauthorized: an API key is required (x-api-key header)")
        if key not in self.config.api_keys:
            self.auth_rejected += 1
            return error(403, "Forbidden: invalid API key")
        return None

    def _client(self, who: str) -> ClientState:
        state = self._clients.get(who)
        if state is None:
            state = self._clients[who] = ClientState()
        state.requests += 1
        return state

    def _style_counters(self) -> dict[str, int]:
        """Return the counters of the rate-header style in force (benchmarks compare styles)."""
        counters = self.by_style.get(self.policy.style)
        if counters is None:
            counters = self.by_style[self.policy.style] = dict.fromkeys(
                ("requests", "rate_limited", "early", "quota_exhausted"), 0
            )
        return counters

    def _refuse(
        self,
        state: ClientState,
        style: dict[str, int],
        sent_at: float,
        retry_after: int,
        reason: str | None,
    ) -> Response:
        """Answer a request over a limit with a 429, and remember its retry-after deadline.

        When the monthly quota is what refused it, the message says so.
        """
        self._block(state, sent_at, retry_after)
        self.rate_limited += 1
        state.rate_limited += 1
        style["rate_limited"] += 1
        if reason == "month":
            self.quota_exhausted += 1
            style["quota_exhausted"] += 1
            message = f"Too Many Requests: monthly quota used up; retry after {retry_after} s"
        else:
            message = f"Too Many Requests: retry after {retry_after} s"
        return error(429, message)

    def _block(self, state: ClientState, sent_at: float, retry_after: int) -> None:
        """Remember a 429's deadline, so that requests arriving before it count as early.

        A request within `early_grace` of the first 429 was already in flight and is not early.
        """
        if sent_at >= state.blocked_until:
            state.blocked_from = sent_at
        state.blocked_until = max(state.blocked_until, sent_at + retry_after)

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query: str,
        state: ClientState,
        now: float,
        delay: float,
    ) -> Response:
        """Answer an admitted request with a seeded fault, or with the route's answer.

        Some faults (truncate, short) spoil a real page, and the offset faults move it.
        """
        kind, fault = self._draw_fault(state, now, delay)
        if fault is not None:
            return fault
        self.chain.advance(self.chain_now(now))
        if kind in OFFSET_FAULTS:
            return self._moved_page(method, path, params, query, kind)
        response = self._route(method, path, params, query)
        spoilable = path in v1.TX_LIST_PATHS or path == v3.V3_TX_LIST
        if kind is not None and response.status == 200 and spoilable:
            self._spoil(response, kind)
        return response

    def _moved_page(
        self, method: str, path: str, params: dict[str, str], query: str, kind: str
    ) -> Response:
        """Answer a v1 page from an offset 1 to 3 rows off, labelled with the offset asked for.

        Rows that arrive or leave before the offset between two pages of a live list move every
        later page: an earlier offset repeats rows (`duplicate`), a later one skips them
        (`shift`). Other routes, such as v3 pages by cursor, answer plainly.
        """
        offset = params.get("offset", "0")
        if path not in v1.TX_LIST_PATHS or not offset.isdigit():
            return self._route(method, path, params, query)
        rows = self._fault_rng.randint(1, 3)
        moved = max(0, int(offset) - rows) if kind == "duplicate" else int(offset) + rows
        response = self._route(method, path, {**params, "offset": str(moved)}, query)
        if response.status != 200 or moved == int(offset):
            return response
        page = orjson.loads(response.body)
        page["offset"] = int(offset)
        response.body = orjson.dumps(page)
        response.fault = kind
        self.faults[kind] += 1
        return response

    # ---- the route table --------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict[str, str], query: str) -> Response:
        if path in v1.TX_LIST_PATHS:
            self.count_v1_request()
            return self._tx_list.route(method, path, params, query, self.v1_state)
        if path in v1.STATUS_PATHS:
            return v1.status(self.chain, self.renderer)
        if v3.handles(path):
            return v3.route(self.chain, self.renderer, method, path, params)
        return route_not_found(method, path)

    # ---- latency and faults -----------------------------------------------------------------

    def _delay(self) -> float:
        latency = self.config.latency_ms / 1000.0
        if latency <= 0:
            return 0.0
        if self.config.latency_shape == "lognormal":
            sigma = LOGNORMAL_SIGMA
            return self._jitter_rng.lognormvariate(math.log(latency) - sigma**2 / 2, sigma)
        jitter = self.config.jitter
        return max(0.0, latency + self._jitter_rng.uniform(-jitter, jitter))

    def _draw_fault(
        self, state: ClientState, now: float, delay: float
    ) -> tuple[str | None, Response | None]:
        """Draw whether this request fails, and how: return the kind and the response, if any.

        A response replaces the route's answer; truncate, short and the offset faults return no
        response, because they spoil or move the real page instead.
        """
        if self.fault_rate <= 0 or not self.fault_kinds:
            return None, None
        rng = self._fault_rng
        if rng.random() >= self.fault_rate:
            return None, None
        kind = rng.choice(self.fault_kinds)
        if kind in ("truncate", "short", *OFFSET_FAULTS):
            return kind, None  # the route's answer, spoiled or moved
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

    # ---- in-process control (tests call these directly; the /_sim/ routes call them too) -----

    def set_faults(self, rate: float, kinds: str | tuple[str, ...] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        self.fault_rate = rate
        if kinds is not None:
            self.fault_kinds = parse_fault_kinds(
                kinds if isinstance(kinds, str) else ",".join(kinds)
            )

    def advance(self, seconds: float, now: float | None = None) -> int:
        """Move the chain's clock forward by `seconds`, and return the transactions added.

        A growing chain catches up at once; a frozen one adds nothing.
        """
        with self._lock:
            return self.advance_locked(seconds, time.time() if now is None else now)

    def advance_locked(self, seconds: float, now: float) -> int:
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
        """Change the limits in force (the arguments have SimConfig's names).

        `rpm` and `per_second` are always set (None turns them off); the other arguments keep
        their value when None. A combination that cannot hold (RatePolicy.validate) raises
        ValueError and changes nothing.
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

    def count_v1_request(self) -> None:
        """Count a request to the v1 tx list; past `v1_gone_after` of them the route is gone."""
        self.v1_served += 1
        if self.v1_gone_after is not None and self.v1_served > self.v1_gone_after:
            self.v1_state = "gone"

    def set_v1(self, state: str) -> None:
        """Switch `/extended/v1/tx` on, to deprecated (Warning: 299) or to gone (410), at once."""
        if state not in V1_STATES:
            raise ValueError(f"state must be one of {', '.join(V1_STATES)}")
        self.v1_state = state

    def outage(self, seconds: float, *, mode: str = "refuse", now: float | None = None) -> None:
        if mode not in OUTAGE_MODES:
            raise ValueError(f"mode must be one of {', '.join(OUTAGE_MODES)}")
        self.outage_mode = mode
        self.outage_until = (time.time() if now is None else now) + max(0.0, seconds)

    # ---- what the simulator knows -----------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        """Return the limits in force under SimConfig's names (POST /_sim/limits answers these)."""
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

    def truth(
        self, start_time: int | None = None, end_time: int | None = None, *, ids: bool = False
    ) -> dict[str, Any]:
        """Return what a complete backfill of the inclusive burn-time range must hold.

        That is the count of canonical transactions, the digest of their ids and, with `ids`,
        the ids themselves.
        """
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
            return self.stats_locked(time.time() if now is None else now)

    def stats_locked(self, now: float) -> dict[str, Any]:
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
            "limits": self.limits(),
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
