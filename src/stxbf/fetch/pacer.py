"""The pacer spaces every request evenly at the API's rate, and holds all of them behind a gate
while the API has asked for a pause.

Requests leave one slot apart (no bursts, so per-second caps hold too); a late one is made up by
the next ones, never faster than a second's worth of slots allows. The rate comes from the
API's own headers (read window by window in `ratelimit.py`: the tightest known window, in cost
units), or from `--rpm`; a 429 closes the gate until its `retry-after` has passed and lowers the
rate, which then climbs back slowly; a used-up window closes it until that window resets; a
used-up monthly quota stops every request (`QuotaExhausted`). Nothing is sent while the gate is
closed.

We do not use aiolimiter: its leaky bucket cannot change rate while waiters are queued, and it
has no "not before" gate, which is the one promise we must keep after a 429. This is ~100 lines
of pure logic with an injectable clock, tested without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from stxbf.errors import QuotaExhausted
from stxbf.fetch.ratelimit import (
    RESET_CAP,
    SECOND,
    GenericWindow,
    LearnedLimits,
    RateHeaders,
    WindowLimit,
    known_windows,
    quota_error,
    read_rate_headers,
)

log = logging.getLogger(__name__)

HIRO_RPM_WITHOUT_KEY = 50.0
HIRO_RPM_WITH_KEY = 500.0
SAFETY = 0.985  # stay just under the ceiling so clock jitter does not cost a 429
DECREASE = 0.85  # multiplicative decrease after a 429 (the gate does the real waiting)
RECOVERY_REQUESTS = 150  # successes needed to climb back from a decrease to the ceiling
MIN_RPS = 0.05
REPLAN_SECONDS = 0.25  # a waiter looks again this often for a faster rate learned meanwhile
PROBE_WAIT = 60.0  # seconds the others wait for the quota probe's answer
SPACING_TOLERANCE = 0.0005  # seconds a send may come early on the last one (loop jitter)
SHORTEST_WINDOW = 1.0  # seconds: the shortest window an API states, which must never hold a burst
CATCH_UP_GAP = 0.5  # of a spacing: the closest a send making up for a late one may follow it
SENT_MEMORY = 60.0  # seconds of send times kept (the achieved rate's window)
INFERRED_CEILING_TTL = 60.0  # an API that states no limit gets unthrottled again after this


class Pacer:
    """Hands out send slots to every request. With `rpm=None` and `fixed` false, it learns the
    rate from the API's headers."""

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
        self.gate_reason: str | None = None  # why the gate is closed: "retry-after", ...
        self._plan = 0  # bumped when the rate rises: booked slots are booked again
        self._generic = GenericWindow()
        self.learned: LearnedLimits | None = None
        self._logged_limits: str | None = None
        self.cost = 1.0  # what the API said the last request cost
        self.month_limit: float | None = None
        self.month_remaining: float | None = None
        self.exhausted: QuotaExhausted | None = None  # set once a quota is used up: nothing more
        self.exhausted_detail: str | None = None
        # One more request may learn a used-up quota's reset from its 429: "ready" to go,
        # "sent" (the others wait for its answer, PROBE_WAIT at most), or "none".
        self._quota_probe = "none"
        self._probe_sent_at = 0.0

    @property
    def limit_rpm(self) -> float | None:
        return None if self.ceiling_rps is None else self.ceiling_rps * 60.0

    @property
    def current_rpm(self) -> float | None:
        return None if self.rate_rps is None else self.rate_rps * 60.0

    def achieved_rpm(self, window: float = 60.0) -> float:
        """Return the requests sent over the last `window` seconds, as a per-minute rate."""
        now = self._clock()
        while self.sent and self.sent[0] < now - window:
            self.sent.popleft()
        if not self.sent:
            return 0.0
        span = min(window, max(5.0, now - self.sent[0]))
        return len(self.sent) * 60.0 / span

    def _sending_rps(self, now: float, window: float = 10.0) -> float:
        """Return the requests per second of the last `window` seconds, taken over the time
        they were actually sent in (at least a second), not over the displayed rate's five."""
        recent = [t for t in self.sent if t >= now - window]
        if not recent:
            return 0.0
        return len(recent) / max(1.0, now - recent[0])

    def gate_remaining(self) -> float:
        return max(0.0, self.gate_until - self._clock())

    async def acquire(self) -> None:
        """Wait for this caller's slot. It never returns while the gate is closed.

        It raises QuotaExhausted once a quota is used up: no request could succeed before it
        resets.
        """
        while True:
            if self.exhausted is not None:
                if self._quota_probe == "ready":
                    self._quota_probe, self._probe_sent_at = "sent", self._clock()
                elif (
                    self._quota_probe == "sent" and self._clock() - self._probe_sent_at < PROBE_WAIT
                ):
                    await self._sleep(0.05)
                    continue
                else:
                    raise self.exhausted
            now = self._clock()
            if now < self.gate_until:
                await self._sleep(self.gate_until - now)
                continue
            if self.rate_rps is None:
                break
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate_rps
            plan = self._plan
            # Sleep in short steps: a slot booked at a slow, assumed rate is given up as soon
            # as a faster one is learned (16 workers booked 2 s apart would idle for 30 s).
            while (now := self._clock()) < slot and self._plan == plan:
                await self._sleep(min(slot - now, REPLAN_SECONDS))
            if self._plan != plan:
                continue
            while (wait := self._not_before(1.0 / self.rate_rps) - self._clock()) > (
                SPACING_TOLERANCE
            ):
                await self._sleep(wait)
            if self._clock() >= self.gate_until:
                break
        sent_at = self._clock()
        self.sent.append(sent_at)
        while self.sent[0] < sent_at - SENT_MEMORY:
            self.sent.popleft()

    def _not_before(self, spacing: float) -> float:
        """Return the earliest time a booked slot may leave, given what was sent before it.

        A send that left late (a sleep overshot, the loop was busy) is made up by the next ones.
        Held to one spacing after the last send, every late send would push all later ones
        back: at 8/s, a loop up to 20 ms late per sleep lost 7 % of the rate. Two rules keep
        the making up from becoming a burst, after a stall too (when several booked slots lie
        in the past):
        - no send closer than `CATCH_UP_GAP` of a spacing to the one before it;
        - the `n` sends the pace allows in `SHORTEST_WINDOW` seconds span at least `n`
          spacings, as evenly spaced ones would, so a per-second window never sees more than
          the pace. The room that a request delayed on its way needs is in the pace itself
          (`ratelimit.JITTER_SECONDS`).
        """
        if not self.sent:
            return float("-inf")
        earliest = self.sent[-1] + spacing * CATCH_UP_GAP
        n = max(1, math.ceil(SHORTEST_WINDOW / spacing - 1e-9))
        if len(self.sent) >= n:
            earliest = max(earliest, self.sent[-n] + n * spacing)
        return earliest

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: the ceilings it states, and any window or quota it shows used
        up."""
        now = self._clock()
        rate = read_rate_headers(headers)
        self._generic.observe(rate.reset_seconds, now)
        self.cost = rate.cost
        self._note_quota(rate)
        windows = known_windows(rate, self._generic.window())
        if not self.fixed:
            if windows:
                self._learn(LearnedLimits(windows, rate.cost), now)
            elif (
                status < 400
                and not rate.paces
                and (not self._learned or self._inferred_expired(now))
            ):
                # A self-hosted API states no limit: run unthrottled until it pushes back.
                self.ceiling_rps = self.rate_rps = None
                self._learned = True
                self._inferred = False
                self._plan += 1
        if status < 400 and self.rate_rps is not None and self.ceiling_rps is not None:
            step = self.ceiling_rps / RECOVERY_REQUESTS
            self.rate_rps = min(self.ceiling_rps, self.rate_rps + step)
        if status != 429:
            self._gate_on_used_up_window(rate, windows, now)

    def _learn(self, learned: LearnedLimits, now: float) -> None:
        per_second = learned.pace(SAFETY)
        assert per_second is not None
        described = learned.describe()
        if described != self._logged_limits:
            self._logged_limits = described
            log.info(
                "rate limit learned from the API's headers: %s; pacing at %.4g requests/s",
                described,
                per_second,
            )
        self.learned = learned
        ceiling = max(MIN_RPS, per_second)
        if self.ceiling_rps is None or abs(ceiling - self.ceiling_rps) > 1e-9:
            self.ceiling_rps = ceiling
            # A newly stated (or inferred) higher limit applies at once; only a recent 429
            # keeps the rate climbing back slowly.
            recovering = self.last_429_at is not None and now - self.last_429_at < 60.0
            if (
                self.rate_rps is None
                or self.rate_rps > ceiling
                or not self._learned
                or not recovering
            ):
                self.rate_rps = ceiling
                # A slot reserved at the assumed (slower) rate need not be waited for.
                self._next_slot = min(self._next_slot, now + 1.0 / ceiling)
                self._plan += 1
        self._learned = True
        self._inferred = False

    def _gate_on_used_up_window(
        self, rate: RateHeaders, windows: tuple[WindowLimit, ...], now: float
    ) -> None:
        """Hold the next sends back when a window has nothing left (another client shares the
        key, or jitter filled it).

        A window the generic triple describes, longer than a second, reopens at its reset: the
        gate stays closed until then. Any other frees a slot within one request's spacing: the
        next send is booked no sooner than that (what is already booked keeps its place, so the
        pace does not drift), and if the window is still full the 429 says how long to wait.
        """
        waits: list[tuple[float, str]] = []
        generic_known = False
        for window in windows:
            describes = window.source.startswith("ratelimit-limit") or (
                rate.generic_limit == window.limit
            )
            generic_known = generic_known or describes
            if window.remaining is None or window.remaining >= rate.cost:
                continue
            if window.window > SECOND and describes and rate.reset_seconds is not None:
                waits.append((rate.reset_seconds, f"{window.window:g} s limit"))
            else:
                slot = window.window / window.limit * rate.cost
                self._next_slot = max(self._next_slot, now + slot)
        if (
            not generic_known
            and rate.generic_remaining is not None
            and rate.generic_remaining < rate.cost
        ):
            waits.append((rate.reset_seconds if rate.reset_seconds is not None else 1.0, "limit"))
        if not waits:
            return
        wait, reason = max(waits)
        until = now + min(RESET_CAP, max(0.0, wait))
        if until > self.gate_until:
            self.gate_until = until
            self.gate_reason = f"{reason} used up"

    def _note_quota(self, rate: RateHeaders) -> None:
        if rate.month_limit is not None:
            self.month_limit = rate.month_limit
        if rate.month_remaining is None:
            return
        self.month_remaining = rate.month_remaining
        if rate.month_remaining >= rate.cost:
            if self.exhausted is not None and self.exhausted.quota == "month":
                self.exhausted = None  # it has reset (a probe found room again)
            self._quota_probe = "none"
            return
        if self.exhausted is not None:
            self._quota_probe = "none"  # the probe (or another request) was answered
        else:
            limit = f" of {rate.month_limit:g}" if rate.month_limit is not None else ""
            self.exhaust(
                "the API's monthly request quota is used up "
                f"(x-ratelimit-remaining-stacks-month: {rate.month_remaining:g}{limit})",
                quota="month",
            )
            # A 200 that used the last unit says nothing of the reset; the 429 to one more
            # request does (its retry-after), and costs no quota.
            self._quota_probe = "ready"

    def exhaust(self, what: str, *, quota: str, resets_at: float | None = None) -> None:
        """Make every later `acquire` raise, because `what` ran out (until `resets_at`, if
        known)."""
        self.exhausted_detail = what
        self.exhausted = quota_error(what, quota=quota, resets_at=resets_at)

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
        if now + wait + 0.05 > self.gate_until:
            self.gate_until = now + wait + 0.05
            self.gate_reason = "retry-after"
        self.last_429_at = now
        if self.rate_rps is None:
            # No stated limit, yet pushed back: the ceiling is the rate we were sending at.
            # Inferred once: measured again after a gate and a cut it would only read lower,
            # and every later 429 would ratchet it down (the cut below does the slowing).
            self.ceiling_rps = max(MIN_RPS, self._sending_rps(now) or 1.0)
            self.rate_rps = self.ceiling_rps * DECREASE
            self._inferred = True
        else:
            self.rate_rps = max(MIN_RPS, self.rate_rps * DECREASE)
        self._next_slot = max(self._next_slot, self.gate_until)
