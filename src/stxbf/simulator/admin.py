"""The `/_sim/` control routes: read the simulator's state, or change it while it serves.

`SimApi.handle` answers them before anything else, so they are exempt from limits, faults and
outages, and a bad parameter is a 400 in Fastify's validation shape, as on the API's own routes.
Each route calls one of the control methods tests call directly. `Controls` names the part of
`SimApi` the routes use, so that this module needs nothing of the handler that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from stxbf.simulator.chain import Chain
from stxbf.simulator.config import OUTAGE_MODES
from stxbf.simulator.query import int_param
from stxbf.simulator.ratelimit import RatePolicy
from stxbf.simulator.responses import BadRequest, Response, error, json_response


class Controls(Protocol):
    """The state and control methods of `SimApi` that the `/_sim/` routes read and call."""

    chain: Chain
    policy: RatePolicy
    v1_state: str
    fault_rate: float
    fault_kinds: tuple[str, ...]

    def stats_locked(self, now: float) -> dict[str, Any]: ...
    def limits(self) -> dict[str, Any]: ...
    def truth(
        self, start_time: int | None = None, end_time: int | None = None, *, ids: bool = False
    ) -> dict[str, Any]: ...
    def set_v1(self, state: str) -> None: ...
    def outage(self, seconds: float, *, mode: str = "refuse", now: float | None = None) -> None: ...
    def set_faults(self, rate: float, kinds: str | tuple[str, ...] | None = None) -> None: ...
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
    ) -> None: ...
    def advance_locked(self, seconds: float, now: float) -> int: ...
    def reset_locked(self) -> None: ...


_Route = Callable[[Controls, dict[str, str], float], Response]


def route(sim: Controls, method: str, path: str, params: dict[str, str], now: float) -> Response:
    """Answer one `/_sim/` request; the caller holds the simulator's lock.

    Raises BadRequest, or ValueError for a value that does not parse or a setting the
    simulator refuses; the caller answers both with a 400.
    """
    if method == "GET" and path in _GETS:
        return _GETS[path](sim, params, now)
    if method != "POST":
        return error(404 if path not in _POSTS else 405, f"Not found: {path}")
    handler = _POSTS.get(path)
    if handler is None:
        return error(404, f"Not found: {path}")
    return handler(sim, params, now)


# ---- GET ------------------------------------------------------------------------------------


def _stats(sim: Controls, params: dict[str, str], now: float) -> Response:
    return json_response(200, sim.stats_locked(now))


def _chain(sim: Controls, params: dict[str, str], now: float) -> Response:
    return json_response(200, sim.chain.summary())


def _truth(sim: Controls, params: dict[str, str], now: float) -> Response:
    start = int_param(params, "start_time", None) or None
    end = int_param(params, "end_time", None) or None
    return json_response(200, sim.truth(start, end, ids=params.get("ids") in ("1", "true")))


def _v1(sim: Controls, params: dict[str, str], now: float) -> Response:
    return json_response(200, {"v1": sim.v1_state})


# ---- POST -----------------------------------------------------------------------------------


def _set_v1(sim: Controls, params: dict[str, str], now: float) -> Response:
    sim.set_v1(params.get("state") or "")
    return _v1(sim, params, now)


def _outage(sim: Controls, params: dict[str, str], now: float) -> Response:
    seconds = float(params.get("seconds") or 0)
    mode = params.get("mode") or "refuse"
    if mode not in OUTAGE_MODES:
        raise BadRequest(f"mode must be one of {', '.join(OUTAGE_MODES)}")
    sim.outage(seconds, mode=mode, now=now)
    response = json_response(200, {"outage_seconds": seconds, "mode": mode})
    if mode == "refuse":
        response.pause_listening = seconds
    return response


def _faults(sim: Controls, params: dict[str, str], now: float) -> Response:
    sim.set_faults(float(params.get("rate") or 0), params.get("kinds"))
    return json_response(200, {"rate": sim.fault_rate, "kinds": list(sim.fault_kinds)})


def _limits(sim: Controls, params: dict[str, str], now: float) -> Response:
    policy = sim.policy
    month_seconds = float(params.get("month_seconds") or policy.month_seconds)
    sim.set_limits(
        rpm=int_param(params, "rpm", policy.rpm),
        per_second=int_param(params, "per_second", policy.per_second),
        month_quota=int_param(params, "month_quota", policy.month_quota),
        month_seconds=month_seconds,
        request_cost=int_param(params, "request_cost", policy.cost, minimum=1),
        rate_headers=params.get("rate_headers") or None,
        rate_generic_window=params.get("rate_generic_window") or None,
        rate_reset=params.get("rate_reset") or None,
    )
    return json_response(200, sim.limits())


def _advance(sim: Controls, params: dict[str, str], now: float) -> Response:
    added = sim.advance_locked(float(params.get("seconds") or 0), now)
    return json_response(200, {"added": added, "chain": sim.chain.summary()})


def _anomaly(sim: Controls, params: dict[str, str], now: float) -> Response:
    """Make the chain misbehave as `kind` says: extend, earlier, reorg or late.

    Each kind calls one of the Chain's anomaly methods, whose docstrings say what the real
    chain does that the kind models.
    """
    kind = params.get("kind") or ""
    chain = sim.chain
    added: Any
    if kind == "extend":
        added = chain.extend_tenure(float(params.get("seconds") or 3600))
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
    return json_response(200, {"kind": kind, "result": added, "chain": chain.summary()})


def _reset(sim: Controls, params: dict[str, str], now: float) -> Response:
    sim.reset_locked()
    return json_response(200, {"reset": True})


_GETS: dict[str, _Route] = {
    "/_sim/stats": _stats,
    "/_sim/chain": _chain,
    "/_sim/truth": _truth,
    "/_sim/v1": _v1,
}
_POSTS: dict[str, _Route] = {
    "/_sim/v1": _set_v1,
    "/_sim/outage": _outage,
    "/_sim/faults": _faults,
    "/_sim/limits": _limits,
    "/_sim/advance": _advance,
    "/_sim/anomaly": _anomaly,
    "/_sim/reset": _reset,
}
