"""The simulated Hiro API as one pure handler: (method, target, headers, client, now) → Response.

No sockets here: the asyncio server (`server.py`) and the httpx transport (`transport.py`) are two
front ends that carry out the `Response`, including its `action` for faults that need a transport
(drop the connection, stall, truncate the body, refuse connections). This module is the request
pipeline every API request passes (outage, API key, rate limits and the early-request audit,
latency, seeded faults) and the route table behind it; the routes live in `v1.py`, `v3.py` and
`admin.py` (the `/_sim/` control routes, exempt from limits and faults).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from functools import cached_property
from urllib.parse import parse_qsl, urlsplit

import orjson

from stxbf.simulator import admin, v1, v3
from stxbf.simulator.config import LOGNORMAL_SIGMA, OFFSET_FAULTS
from stxbf.simulator.controls import ClientState, SimControls
from stxbf.simulator.responses import (
    Action,
    BadRequest,
    Response,
    bad_request,
    error,
    route_not_found,
)

MALFORMED_BODY = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing api.hiro.so</h1></body></html>"
)


def mask_key(key: str) -> str:
    """How a key appears in stats: never the key itself, yet distinct per key."""
    return f"key:{key[:3]}…{hashlib.blake2b(key.encode(), digest_size=3).hexdigest()}"


class SimApi(SimControls):
    """The handler and all its run-time state; thread-safe (one lock around each request)."""

    @cached_property
    def _tx_list(self) -> v1.TxList:
        return v1.TxList(self.chain, self.renderer, self._cache)

    # ---- entry point ------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        client: str = "127.0.0.1",
        now: float | None = None,
    ) -> Response:
        """Answer one request. `headers` keys are lower-case; `now` is wall time (default: the
        `clock`'s)."""
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
        """401 without a key, 403 with an unknown one, when keys are required."""
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
        """The counters of the rate-header style in force (benchmarks compare styles)."""
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
        """The 429 of a request over a limit (the monthly quota says so in its message)."""
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
        """Remember a 429's deadline: requests arriving before it (after a grace) are early."""
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
        """An admitted request: a seeded fault, or the route's answer (perhaps spoiled)."""
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
        """A v1 page read from an offset 1-3 rows off (earlier: `duplicate`, later: `shift`) and
        labelled with the offset asked for, as when rows arrive or leave before the offset
        between two pages of a live list. Other routes (v3 pages by cursor) answer plainly."""
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
        """(kind, response): a response replaces the answer; truncate/short spoil a real page."""
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
