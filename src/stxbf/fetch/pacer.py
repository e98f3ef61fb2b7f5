"""Proactive pacing shared by every worker: even spacing at the API's rate, and a hard gate.

Requests leave one slot apart (no bursts, so per-second caps hold too). The rate comes from the
API's own headers (`ratelimit-*`, `x-ratelimit-*-minute/-second`), or from `--rpm`; a 429 closes
the gate until its `retry-after` has passed and lowers the rate, which then climbs back slowly.
Nothing is sent while the gate is closed.

Why not aiolimiter: its leaky bucket cannot change rate while waiters are queued, and it has no
"not before" gate, which is the one promise we must keep after a 429. This is ~100 lines of pure
logic with an injectable clock, tested without I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

HIRO_RPM_WITHOUT_KEY = 50.0
HIRO_RPM_WITH_KEY = 500.0
SAFETY = 0.985  # stay just under the ceiling so clock jitter does not cost a 429
DECREASE = 0.85  # multiplicative decrease after a 429 (the gate does the real waiting)
RECOVERY_REQUESTS = 150  # successes needed to climb back from a decrease to the ceiling
MIN_RPS = 0.05
INFERRED_CEILING_TTL = 60.0  # an API that states no limit gets unthrottled again after this


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """What one response said about the limit. None = not stated."""

    limit_per_second: float | None  # the tightest stated ceiling, in requests per second
    remaining: int | None
    reset_seconds: float | None

    @property
    def stated(self) -> bool:
        return self.limit_per_second is not None


def _first_number(value: str | None) -> float | None:
    if not value:
        return None
    head = value.split(",")[0].split(";")[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


def _window_seconds(policy: str | None) -> float:
    # `ratelimit-policy: 500;w=60` (IETF draft); Hiro's limits are per minute otherwise.
    if policy:
        for part in policy.split(",")[0].split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key == "w":
                number = _first_number(value)
                if number and number > 0:
                    return number
    return 60.0


def read_rate_headers(headers: Mapping[str, str]) -> RateHeaders:
    ceilings: list[float] = []
    remaining: list[float] = []
    minute_limit = _first_number(headers.get("x-ratelimit-limit-stacks-minute"))
    if minute_limit is not None:
        ceilings.append(minute_limit / 60.0)
    second_limit = _first_number(headers.get("x-ratelimit-limit-stacks-second"))
    if second_limit is not None:
        ceilings.append(second_limit)
    generic = _first_number(headers.get("ratelimit-limit"))
    if generic is not None:
        ceilings.append(generic / _window_seconds(headers.get("ratelimit-policy")))
    for name in ("ratelimit-remaining", "x-ratelimit-remaining-stacks-minute"):
        number = _first_number(headers.get(name))
        if number is not None:
            remaining.append(number)
    return RateHeaders(
        limit_per_second=min(ceilings) if ceilings else None,
        remaining=int(min(remaining)) if remaining else None,
        reset_seconds=_reset_seconds(headers.get("ratelimit-reset")),
    )


def _reset_seconds(value: str | None) -> float | None:
    """`ratelimit-reset` is delta-seconds; some servers send an epoch time instead. Cap: 1 h."""
    number = _first_number(value)
    if number is None:
        return None
    if number > 1_000_000_000:
        number -= time.time()
    return min(3600.0, max(0.0, number))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `retry-after` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    number = _first_number(value)
    if number is not None:
        return max(0.0, number)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class Pacer:
    """Hands out send slots. `rpm=None` and not `fixed` means: learn the rate from the API."""

    def __init__(
        self,
        *,
        rpm: float | None,
        fixed: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.fixed = fixed
        self.ceiling_rps: float | None = rpm / 60.0 if rpm else None
        self.rate_rps: float | None = self.ceiling_rps
        self._next_slot = 0.0
        self.gate_until = 0.0  # monotonic time before which nothing may be sent
        self._learned = fixed
        self.sent: deque[float] = deque()
        self.last_429_at: float | None = None
        self._inferred = False  # the ceiling was guessed from a 429, not stated by the API

    @property
    def limit_rpm(self) -> float | None:
        return None if self.ceiling_rps is None else self.ceiling_rps * 60.0

    @property
    def current_rpm(self) -> float | None:
        return None if self.rate_rps is None else self.rate_rps * 60.0

    def achieved_rpm(self, window: float = 60.0) -> float:
        """Requests sent over the last `window` seconds, as a per-minute rate."""
        now = self._clock()
        while self.sent and self.sent[0] < now - window:
            self.sent.popleft()
        if not self.sent:
            return 0.0
        span = min(window, max(5.0, now - self.sent[0]))
        return len(self.sent) * 60.0 / span

    def gate_remaining(self) -> float:
        return max(0.0, self.gate_until - self._clock())

    async def acquire(self) -> None:
        """Wait for this caller's slot; never returns while the gate is closed."""
        while True:
            now = self._clock()
            if now < self.gate_until:
                await self._sleep(self.gate_until - now)
                continue
            if self.rate_rps is None:
                break
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate_rps
            if slot > now:
                await self._sleep(slot - now)
            if self._clock() >= self.gate_until:
                break
        self.sent.append(self._clock())

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: the stated ceiling, and a window already used up."""
        now = self._clock()
        rate = read_rate_headers(headers)
        if not self.fixed:
            if rate.stated:
                assert rate.limit_per_second is not None
                ceiling = max(MIN_RPS, rate.limit_per_second * SAFETY)
                if self.ceiling_rps is None or abs(ceiling - self.ceiling_rps) > 1e-9:
                    self.ceiling_rps = ceiling
                    if self.rate_rps is None or self.rate_rps > ceiling or not self._learned:
                        self.rate_rps = ceiling
                        # A slot reserved at the assumed (slower) rate need not be waited for.
                        self._next_slot = min(self._next_slot, now + 1.0 / ceiling)
                self._learned = True
            elif status < 400 and (not self._learned or self._inferred_expired(now)):
                # A self-hosted API states no limit: run unthrottled until it pushes back.
                self.ceiling_rps = self.rate_rps = None
                self._learned = True
                self._inferred = False
        if status < 400 and self.rate_rps is not None and self.ceiling_rps is not None:
            step = self.ceiling_rps / RECOVERY_REQUESTS
            self.rate_rps = min(self.ceiling_rps, self.rate_rps + step)
        if status != 429 and rate.remaining is not None and rate.remaining <= 0:
            reset = rate.reset_seconds if rate.reset_seconds is not None else 1.0
            self.gate_until = max(self.gate_until, now + max(0.0, reset))

    def _inferred_expired(self, now: float) -> bool:
        return (
            self._inferred
            and self.last_429_at is not None
            and now - self.last_429_at > INFERRED_CEILING_TTL
        )

    def on_429(self, retry_after: float | None) -> None:
        """Close the gate for `retry-after` (at least 1 s) and slow down."""
        now = self._clock()
        wait = max(1.0, retry_after if retry_after is not None else 1.0)
        self.gate_until = max(self.gate_until, now + wait + 0.05)
        self.last_429_at = now
        if self.rate_rps is None or self._inferred:
            # No stated limit, yet pushed back: start from what we achieved, minus a margin.
            achieved = self.achieved_rpm(10.0) / 60.0
            self.ceiling_rps = max(MIN_RPS, achieved or 1.0)
            self.rate_rps = self.ceiling_rps * DECREASE
            self._inferred = True
        else:
            self.rate_rps = max(MIN_RPS, self.rate_rps * DECREASE)
        self._next_slot = max(self._next_slot, self.gate_until)
