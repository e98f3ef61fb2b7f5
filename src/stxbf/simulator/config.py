"""Every knob of the simulator lives in one frozen dataclass, which the CLI, the server and the
tests share, so a setting has one name and one check wherever it is given."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from stxbf.defaults import LOOPBACK_HOSTS
from stxbf.simulator.ratelimit import RatePolicy

FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "504",
    "stall",
    "drop",
    "truncate",
    "malformed",
    "short",
    "429",
    "duplicate",  # a v1 page starts 1-3 rows early: rows of the page before, again
    "shift",  # a v1 page starts 1-3 rows late: rows skipped
)
# a live chain under offset paging (Hiro issues #2349, #924): rows that arrive or leave before
# the offset move every later page, so pages overlap or leave gaps while each looks whole
OFFSET_FAULTS: tuple[str, ...] = ("duplicate", "shift")
OUTAGE_MODES: tuple[str, ...] = ("refuse", "drop", "503")
# the state of the deprecated `/extended/v1/tx` route (hirosystems/stacks-blockchain-api
# src/api/deprecation-plugin.ts): served plainly, served with `Warning: 299`, or `410 Gone`
V1_STATES: tuple[str, ...] = ("on", "deprecated", "gone")
DEFAULT_API_KEY = "sim-key"
# how a response's latency is drawn around `latency_ms`: evenly within the jitter, or from a
# lognormal of that mean (a long tail, as Hiro's filtered /extended/v1/tx answers have)
LATENCY_SHAPES: tuple[str, ...] = ("even", "lognormal")
LOGNORMAL_SIGMA = 0.8  # the tail: the 99th percentile is ~4.5 times the mean


def check_loopback(host: str) -> None:
    """Refuse a host that is not loopback: the simulator serves anyone who can reach it."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the simulator binds loopback only, not {host!r}")


def parse_fault_kinds(text: str | None) -> tuple[str, ...]:
    """Split a list such as `"500,drop"` into fault kinds; empty or None means every kind."""
    if not text:
        return FAULT_KINDS
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s): {', '.join(unknown)}; choose from {','.join(FAULT_KINDS)}"
        )
    return kinds or FAULT_KINDS


def parse_instant(text: str) -> float:
    """Read `--now` as unix seconds: `1796083200`, or ISO 8601 (`2026-12-01T00:00:00Z`).

    An ISO time without an offset is UTC. A value of neither form raises ValueError with
    a message that names both.
    """
    text = text.strip()
    with contextlib.suppress(ValueError):
        seconds = float(text)
        if math.isfinite(seconds):
            return seconds
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("z", "Z") else text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    raise ValueError(
        f"{text!r} is not a time: give unix seconds (1796083200) or ISO 8601 (2026-12-01T00:00:00Z)"
    )


@dataclass(frozen=True)
class SimConfig:
    """Describe a simulated Hiro API: the chain it serves, and how (un)kindly it serves it.

    Times are unix seconds. `end_time=None` means "now" when the chain is built; `growth`
    keeps appending blocks after that (regular transactions a second, 0 for a frozen
    chain). Every block time follows from `seed` and `end_time` (genesis is `days` before
    it), so two chains with the same seed and a fixed `end_time` (`stxbf sim serve --now`)
    are the same chain.
    """

    # the chain
    seed: int = 1
    days: float = 30.0
    tx_per_day: int = 6000
    end_time: float | None = None
    growth: float = 0.0
    tenure_seconds: float = 600.0
    block_seconds: tuple[float, float] = (5.0, 10.0)
    # anomalies of the real chain (off by default; tests trigger more through /_sim/anomaly or
    # the Chain's methods): the head tenure elected this many hours ago and extended since
    extended_tenure_hours: float = 0.0
    # burn times that get a tenure of their own (a window's last second, in tests)
    tenures_at: tuple[int, ...] = ()
    # the listener (loopback only)
    host: str = "127.0.0.1"
    port: int = 0
    # rate limiting, per client (x-api-key value, else the client's IP), in cost units
    rpm: int | None = None
    per_second: int | None = None
    month_quota: int | None = None  # units per month; a 429 with retry-after to its end
    month_seconds: float | None = None  # the quota's period; None = the UTC calendar month
    request_cost: int = 1  # units each request spends; > 1 sends x-ratelimit-cost-stacks
    rate_headers: str = "full"  # see simulator.ratelimit.RATE_HEADER_STYLES
    rate_generic_window: str = "minute"  # the window `ratelimit-*` describes in full/generic*
    rate_reset: str = "delta"  # `ratelimit-reset` as delta seconds, or "unix" (a Unix time)
    early_grace: float = 0.25
    require_key: bool = False
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    v1: str = "on"  # on | deprecated | gone (see V1_STATES)
    # the operator's switch, mid-run: v1 answers 410 once it has served this many tx-list requests
    v1_gone_after: int | None = None
    v1_gone: bool = False  # older spelling of v1="gone"
    deprecation: bool = False  # older spelling of v1="deprecated"
    # latency and seeded faults
    latency_ms: float = 0.0
    jitter_ms: float | None = None
    latency_shape: str = "even"  # see LATENCY_SHAPES
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 60.0
    # caches
    page_cache_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        check_loopback(self.host)
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within 0..1")
        if self.days <= 0 or self.tx_per_day < 0 or self.growth < 0:
            raise ValueError("days must be > 0, tx_per_day and growth >= 0")
        lo, hi = self.block_seconds
        if not 0 < lo <= hi or self.tenure_seconds <= 0:
            raise ValueError("block_seconds must be 0 < lo <= hi and tenure_seconds > 0")
        parse_fault_kinds(",".join(self.fault_kinds))
        if self.latency_shape not in LATENCY_SHAPES:
            raise ValueError(f"latency_shape must be one of {', '.join(LATENCY_SHAPES)}")
        if self.v1 not in V1_STATES:
            raise ValueError(f"v1 must be one of {', '.join(V1_STATES)}")
        if self.v1_gone_after is not None and self.v1_gone_after < 0:
            raise ValueError("v1_gone_after must be >= 0")
        self.rate_policy().validate()

    def with_(self, **changes: Any) -> SimConfig:
        return replace(self, **changes)

    def rate_policy(self) -> RatePolicy:
        """Return the limits as the rate limiter takes them (None becomes 0, off)."""
        return RatePolicy(
            rpm=self.rpm or 0,
            per_second=self.per_second or 0,
            month_quota=self.month_quota or 0,
            month_seconds=self.month_seconds or 0.0,
            cost=self.request_cost,
            style=self.rate_headers,
            generic_window=self.rate_generic_window,
            reset_format=self.rate_reset,
        )

    @property
    def v1_state(self) -> str:
        """Return `v1`, with the older `v1_gone` and `deprecation` switches folded in."""
        if self.v1_gone or self.v1 == "gone":
            return "gone"
        if self.deprecation or self.v1 == "deprecated":
            return "deprecated"
        return "on"

    @property
    def jitter(self) -> float:
        """Return the seconds of jitter around the latency: 20 % of it unless set."""
        jitter_ms = self.latency_ms * 0.2 if self.jitter_ms is None else self.jitter_ms
        return max(0.0, jitter_ms) / 1000.0
