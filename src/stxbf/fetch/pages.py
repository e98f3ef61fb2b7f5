"""One page, however long it takes: pacing, retries with jittered backoff, and a bounded give-up.

Every attempt waits for the shared pacer first, so a retry can never jump a 429's retry-after.
tenacity drives the loop; a request is abandoned only after `give_up_after` seconds of failures,
and then the run ends with a clear error while everything already committed stays committed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from stxbf.errors import ApiUnreachable, QuotaExhausted
from stxbf.fetch.client import PAGE_LIMIT, ApiClient, RateLimited, Response, Transient
from stxbf.fetch.pacer import Pacer
from stxbf.models import Page

log = logging.getLogger(__name__)

_backoff = wait_exponential(multiplier=0.5, max=30.0) + wait_random(0.0, 1.0)


@dataclass
class FetchStats:
    requests: int = 0
    pages: int = 0
    transactions: int = 0
    responses_429: int = 0
    errors: int = 0
    retries: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_page_at: float | None = None  # wall clock of the last page that arrived
    backoff_until: float | None = None  # wall clock, while an error backoff is running


class _ConnectFailures(stop_base):
    """Stop once `attempts` tries in a row found nothing listening (None: never)."""

    def __init__(self, attempts: int | None) -> None:
        self.attempts = attempts

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.attempts is None or retry_state.outcome is None:
            return False
        exc = retry_state.outcome.exception()
        return (
            isinstance(exc, Transient)
            and exc.connect
            and retry_state.attempt_number >= self.attempts
        )


class PageSource:
    """`await source.page(...)` returns a parsed page or raises a fatal FetchError."""

    def __init__(
        self,
        client: ApiClient,
        pacer: Pacer,
        *,
        give_up_after: float,
        stats: FetchStats | None = None,
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.give_up_after = give_up_after
        self.stats = stats if stats is not None else FetchStats()

    async def page(
        self,
        *,
        start_time: int | None,
        end_time: int | None,
        offset: int = 0,
        limit: int = PAGE_LIMIT,
        order: str = "asc",
        sort_by: str = "block_height",
        give_up_after: float | None = None,
        connect_attempts: int | None = None,
    ) -> Page:
        """Retry until a page arrives, or for `give_up_after` seconds.

        `connect_attempts` fails faster when nothing answers at all (the first request of a run:
        a wrong host or port is a configuration error, not an outage to wait out).
        """
        deadline = give_up_after or self.give_up_after
        started = time.monotonic()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((Transient, RateLimited)),
            stop=stop_any(stop_after_delay(deadline), _ConnectFailures(connect_attempts)),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._once(
                        offset=offset,
                        limit=limit,
                        start_time=start_time,
                        end_time=end_time,
                        order=order,
                        sort_by=sort_by,
                    )
                    assert response.page is not None
                    return response.page
        except (Transient, RateLimited) as exc:
            reason = exc.reason if isinstance(exc, Transient) else "still rate-limited (429)"
            attempts = retrying.statistics.get("attempt_number", 1)
            elapsed = time.monotonic() - started
            raise ApiUnreachable(
                f"cannot reach the API at {self.client.base_url}: {reason} "
                f"(gave up after {attempts} attempts in {elapsed:.0f} s)"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, **params: object) -> Response:
        await self.pacer.acquire()
        self.stats.requests += 1
        try:
            response = await self.client.tx_page(**params)  # type: ignore[arg-type]
        except RateLimited as exc:
            self.stats.responses_429 += 1
            self.pacer.observe(429, exc.headers)  # a used-up quota shows in a 429's headers
            self.pacer.on_429(exc.retry_after)
            self._note_failure(str(exc))
            if self.pacer.quota is not None or (
                exc.retry_after is not None and exc.retry_after > self.give_up_after
            ):
                raise self._quota_exhausted(exc.retry_after) from None
            raise
        except Transient as exc:
            self.stats.errors += 1
            self._note_failure(exc.reason)
            raise
        self.pacer.observe(response.status, response.headers)
        assert response.page is not None
        self.stats.pages += 1
        self.stats.transactions += len(response.page.rows)
        self.stats.last_page_at = time.time()
        self.stats.consecutive_failures = 0
        self.stats.backoff_until = None
        return response

    def _quota_exhausted(self, retry_after: float | None) -> QuotaExhausted:
        """A 429 from a used-up monthly quota, or one that asks for a longer wait than the run
        may fail for: a quota, not a burst. Its retry-after says when it resets."""
        resets_at = None if retry_after is None else time.time() + retry_after
        if self.pacer.quota is not None and self.pacer.quota_detail is not None:
            self.pacer.exhaust(self.pacer.quota_detail, quota="month", resets_at=resets_at)
        else:
            self.pacer.exhaust(
                f"the API's rate limit asks for a wait of {retry_after:.0f} s (retry-after), "
                f"longer than --give-up-after ({self.give_up_after:.0f} s)",
                quota="retry-after",
                resets_at=resets_at,
            )
        assert self.pacer.quota is not None
        return self.pacer.quota

    def _note_failure(self, reason: str) -> None:
        self.stats.consecutive_failures += 1
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and isinstance(outcome.exception(), RateLimited):
            return 0.0  # the pacer's gate already holds every worker until retry-after
        return float(_backoff(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        sleep = state.next_action.sleep if state.next_action else 0.0
        if sleep:
            self.stats.backoff_until = time.time() + sleep
        exc = state.outcome.exception() if state.outcome else None
        # One failed attempt is routine (the log file keeps it); a page that keeps failing is news.
        persistent = state.attempt_number >= 3 and not isinstance(exc, RateLimited)
        level = logging.WARNING if persistent else logging.INFO
        if state.attempt_number <= 3 or state.attempt_number % 10 == 0:
            log.log(level, "retrying a page (attempt %d): %s", state.attempt_number, exc)
