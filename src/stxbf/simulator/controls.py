"""The simulator's run-time state and the controls that change it while it serves.

`SimControls` holds what a request can see or change: the chain and its clock, the rate policy,
the v1 route's state, faults and outages, the page cache, one record per client, and the counters
`/_sim/stats` reports. Tests call its methods directly; the `/_sim/` routes (`admin.py`) call
them too. `SimApi` (`api.py`) adds the request handler on top.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stxbf.simulator.chain import Chain
from stxbf.simulator.config import (
    FAULT_KINDS,
    OUTAGE_MODES,
    V1_STATES,
    SimConfig,
    parse_fault_kinds,
)
from stxbf.simulator.ratelimit import ClientWindows, RatePolicy
from stxbf.simulator.render import Renderer
from stxbf.simulator.v1 import PageCache


@dataclass
class ClientState:
    """One client (API key, else IP): its rate windows and the early-request audit."""

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


class SimControls:
    """The state behind the handler, and its in-process controls; guarded by `_lock`."""

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
        """Move the chain's clock forward (growth catches up at once); return txs added."""
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
        """Change the limits in force (the names are SimConfig's).

        `rpm` and `per_second` are always set (None = off); the other arguments keep their value
        when None. A combination that cannot hold (RatePolicy.validate) raises ValueError and
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

    def count_v1_request(self) -> None:
        """One more request to the v1 tx list; past `v1_gone_after` of them the route is gone."""
        self.v1_served += 1
        if self.v1_gone_after is not None and self.v1_served > self.v1_gone_after:
            self.v1_state = "gone"

    def set_v1(self, state: str) -> None:
        """Switch `/extended/v1/tx` on, to deprecated (Warning: 299) or gone (410), at once."""
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
        """The limits in force, under SimConfig's names (POST /_sim/limits answers these)."""
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
