"""This module decides how many requests may be in flight: enough to keep the pacer's rate fed,
and no more.

A rate of R requests a second whose answers take L seconds needs R * L requests on the wire
(Little's law), and one more waiting at the pacer when its slot comes. A fixed number reached
0.51 of a 3,000/min limit at 600 ms (issue 16). So the limit follows the pacer's rate and the
measured latency:

- **Sized.** `R * L + 2 * sqrt(R * L)` (L the mean of the recent answers' latency: Little's law
  takes the mean; the number on the wire spreads around `R * L` by at most its square root, and
  two of those cover a long tail), and just 1 when even a slow answer (the 90th percentile) is
  back before the next slot (25/min without a key: one request at a time).
- **Grown when starved.** Requests the pacer sent at once (two in a row), while every slot was
  taken, found it idle: the limit grows by one; when requests wait at the pacer again it shrinks
  back.
- **Cut when the API struggles (AIMD).** Once failures (a 5xx, a timeout, a dropped connection)
  are a tenth of the last 50 outcomes, each failure cuts the limit to 0.7 of what was in flight
  (once per round trip); each answer then adds back 1/limit, one request per round trip, until
  the sized limit is reached again. The odd 5xx of a healthy API cuts nothing: cut at every
  failure, 1 % of them held 3,000/min at 600 ms to 0.43 of its limit. 429s are the pacer's (its
  gate), not this: they say nothing of the API's health.
- **Capped.** `--concurrency` is a hard cap. An API that states no limit (a self-hosted node)
  gives no rate to size by: it gets `UNTHROTTLED` (16, the old fixed number; 256 slowed the
  unthrottled quick bulk run: 24k-28k tx/s against 27k-33k with 16, on a shared machine).

`acquire`/`release` hand out the slots (every request of both routes and `verify` goes through
`PageSource`, so one controller serves all three). Pure apart from asyncio futures: the clock and
the rate are passed in, so tests drive it without I/O.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

LATENCY_SAMPLES = 256  # recent answers the latency is read from
ASSUMED_LATENCY = 1.0  # seconds, until the first answer says otherwise
SPREAD = 2.0  # square roots of R * L above it
SLOW_PERCENTILE = 0.9  # "a slow answer", for the one-at-a-time rule
DECREASE = 0.7  # multiplicative decrease after a failure
OUTCOMES = 50  # recent answers and failures the failure share is read from
FAILING_SHARE = 0.1  # of them failures: the API struggles
STARVED_SHARE = 0.25  # of a spacing: a send that waited less than this found the pacer idle
STARVED_STREAK = 2  # sends in a row that found it idle before a slot is added
BOOST_DECAY = 0.5  # slots taken off the boost per send that waited a full spacing
UNTHROTTLED = 16  # in flight when the API states no limit (or the cap, if lower)


class InFlight:
    """Holds the in-flight limit and hands out its slots.

    `rate` returns the pacer's requests per second, or None when the API states no limit (then
    `UNTHROTTLED` applies). `cap` is `--concurrency`.
    """

    def __init__(
        self,
        cap: int,
        rate: Callable[[], float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap = max(1, cap)
        self._rate = rate
        self._clock = clock
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._mean: float | None = None
        self._slow: float | None = None
        self.boost = 0.0  # slots grown while the pacer was starved
        self._starved = 0  # sends in a row that found the pacer idle
        self.error_limit: float | None = None  # the AIMD limit after failures, None when healthy
        self._last_cut = -math.inf
        self._failed: deque[bool] = deque(maxlen=OUTCOMES)  # recent outcomes: True = failed
        self.active = 0  # slots taken: waiting at the pacer or on the wire
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    # -- the limit ----------------------------------------------------------------------------

    def latency(self) -> float:
        """Return the mean latency of the recent answers, in seconds."""
        if self._mean is None:
            self._read_latencies()
        assert self._mean is not None
        return self._mean

    def _read_latencies(self) -> None:
        if not self._latencies:
            self._mean = self._slow = ASSUMED_LATENCY
            return
        ordered = sorted(self._latencies)
        self._mean = sum(ordered) / len(ordered)
        self._slow = ordered[min(len(ordered) - 1, int(len(ordered) * SLOW_PERCENTILE))]

    def sized(self) -> int:
        """Return the limit that the rate and the latency alone call for (no boost, no
        failures)."""
        rate = self._rate()
        if rate is None:
            return UNTHROTTLED
        mean = self.latency()
        assert self._slow is not None
        if rate * self._slow < 1.0:
            return 1
        on_wire = rate * mean
        return max(1, math.ceil(on_wire + SPREAD * math.sqrt(on_wire)))

    def limit(self) -> int:
        """Return how many requests may be in flight now."""
        wanted = self.sized() + math.floor(self.boost)
        if self.error_limit is not None:
            wanted = min(wanted, math.floor(self.error_limit))
        return max(1, min(self.cap, wanted))

    def started(self) -> int:
        """Return how many requests an engine may have started (on the wire, or waiting for a
        slot or for a retry): the limit, and never fewer than `UNTHROTTLED` (or the cap).

        A request that failed waits out its backoff holding no slot; with the limit cut to 1 by
        failures, one such request would otherwise leave the wire idle for seconds (15 % faults
        took a run past 300 s). The slots still bound what is on the wire.
        """
        return max(self.limit(), min(self.cap, UNTHROTTLED))

    # -- what the requests tell it -------------------------------------------------------------

    def on_send(self, waited: float) -> None:
        """Note that a request left the pacer after `waited` seconds. If it found the pacer idle
        while every slot was taken, one more slot would have fed it, and the limit grows."""
        rate = self._rate()
        if rate is None:
            return
        spacing = 1.0 / rate
        if waited >= STARVED_SHARE * spacing:
            self._starved = 0
            if waited >= spacing:
                self.boost = max(0.0, self.boost - BOOST_DECAY)
            return
        # the first sends find the pacer idle by nature, and one slow answer is not a trend
        self._starved += 1
        at_limit = self.active >= self.limit() and self.error_limit is None
        if at_limit and self._latencies and self._starved >= STARVED_STREAK:
            self.boost = min(float(self.cap), self.boost + 1.0)

    def on_answer(self, latency: float) -> None:
        """Note that an answer came back in `latency` seconds (whatever its status)."""
        self._latencies.append(latency)
        self._failed.append(False)
        self._mean = None
        if self.error_limit is not None:
            self.error_limit += 1.0 / max(1.0, self.error_limit)
            if self.error_limit >= self.sized() + self.boost:
                self.error_limit = None
        self._wake()

    def on_failure(self) -> None:
        """Note a 5xx, a timeout or a dropped connection. While failures are a tenth of the
        recent outcomes, the limit is cut, at most once per round trip."""
        self._failed.append(True)
        if sum(self._failed) < FAILING_SHARE * OUTCOMES:
            return
        now = self._clock()
        if now - self._last_cut < self.latency():
            return
        self._last_cut = now
        current = min(self.limit(), max(1, self.active))
        self.error_limit = max(1.0, current * DECREASE)
        self.boost = 0.0

    # -- the slots ------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if not self._waiters and self.active < self.limit():
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _take(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def _wake(self) -> None:
        """Hand free slots to the waiters in order (the limit may have risen too)."""
        while self._waiters and self.active < self.limit():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)
