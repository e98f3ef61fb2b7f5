"""The one request path of both sources: every request, of any route, is paced, retried with
jittered backoff, and given up only after a bounded time.

Every attempt waits for an in-flight slot and the shared pacer first, so a retry can never jump
a 429's retry-after. tenacity drives the loop. A request is abandoned only after `give_up_after`
seconds of failures, and then the run ends with a clear error while everything already committed
stays committed. The first contact of a run is the exception: until the API has answered once,
a few tries that get no answer at all end the run in seconds (see `NoAnswerYet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

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

from stxbf import defaults
from stxbf.errors import ApiUnreachable, QuotaExhausted, RequestBudgetSpent
from stxbf.fetch.client import ApiClient, PageResponse, RateLimited, RawResponse, Transient
from stxbf.fetch.inflight import InFlight
from stxbf.fetch.pacer import Pacer
from stxbf.models import PAGE_LIMIT, MalformedPage, Page
from stxbf.snapshot import Counters

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", PageResponse, RawResponse)

_backoff = wait_exponential(multiplier=0.5, max=30.0) + wait_random(0.0, 1.0)


@dataclass
class FetchStats:
    """Counts what this process's requests did, for the progress snapshot and for status."""

    requests: int = 0
    pages: int = 0
    transactions: int = 0
    responses_429: int = 0
    errors: int = 0
    retries: int = 0
    consecutive_failures: int = 0
    failing_since: float | None = None  # wall clock of the first of the failures in a row
    last_error: str | None = None
    last_error_at: float | None = None
    last_page_at: float | None = None  # wall clock of the last page that arrived
    backoff_until: float | None = None  # wall clock, while an error backoff is running

    def counters(self, *, windows_verified: int, windows_refetched: int) -> Counters:
        """Return the progress snapshot's counters: this process's requests, with the run's
        windows."""
        return Counters(
            requests=self.requests,
            pages=self.pages,
            transactions_fetched=self.transactions,
            responses_429=self.responses_429,
            errors=self.errors,
            retries=self.retries,
            windows_verified=windows_verified,
            windows_refetched=windows_refetched,
        )


# Requests that fail alike within this many seconds are one log line with a count: a 503 from
# the API hits every request in flight (16 by default) at once.
RETRY_WAVE_SECONDS = 2.0


@dataclass
class _RetryWave:
    """Counts the failures of one kind within `RETRY_WAVE_SECONDS`, logged as one line."""

    count: int = 0
    max_attempt: int = 0
    persistent: bool = False
    timer: asyncio.TimerHandle | None = None


# The first contact of a run: until the API has answered once, requests get short timeouts, and
# tries that get no answer at all (a wrong scheme, host or port, or a proxy that swallows the
# request) end the run in seconds with a hint, not after --give-up-after of waiting out an outage.
FIRST_CONTACT_TIMEOUT = 10.0
FIRST_CONTACT_CONNECT_TIMEOUT = 5.0


class NoAnswerYet(stop_base):
    """A tenacity stop condition: stop once `attempts` tries in a row got no HTTP answer at all,
    unless one did answer (`attempts` None: never stop). A refused connection, a timeout, a TLS
    failure and a dropped connection all count as no answer."""

    def __init__(self, attempts: int | None) -> None:
        self.attempts = attempts
        self.answered = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.attempts is None or retry_state.outcome is None:
            return False
        exc = retry_state.outcome.exception()
        if not (isinstance(exc, Transient) and exc.no_answer):
            self.answered = True  # a status code or a body: the URL is right, wait it out
        return not self.answered and retry_state.attempt_number >= self.attempts


def first_contact_hint(base_url: str, proxy: str | None) -> str:
    """Say what to check when nothing at `base_url` ever answered (a proxy's credentials are not
    shown)."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    other = "http" if parts.scheme == "https" else "https"
    hint = (
        f"Nothing at {base_url} answered. Check the scheme (http or https: "
        f"{other}://{parts.netloc} instead?), the host and the port"
    )
    if proxy:
        proxy_parts = urlsplit(proxy)
        proxy = f"{proxy_parts.scheme}://{proxy_parts.hostname}" + (
            f":{proxy_parts.port}" if proxy_parts.port else ""
        )
        hint += f", and the proxy {proxy} (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY; NO_PROXY skips it)"
    else:
        hint += ", and whether a proxy is needed (HTTPS_PROXY)"
    return hint + "."


def first_contact_limits(first_contact: bool) -> dict[str, float]:
    """Return the shorter timeouts of a request sent before the API has answered once."""
    if not first_contact:
        return {}
    return {"timeout": FIRST_CONTACT_TIMEOUT, "connect_timeout": FIRST_CONTACT_CONNECT_TIMEOUT}


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class PageSource:
    """Sends every request of a run through one path: in-flight slots, the pacer, retries, 429s
    and quotas. `await source.page(...)` returns a parsed page or raises a fatal FetchError."""

    def __init__(
        self,
        client: ApiClient,
        pacer: Pacer,
        *,
        give_up_after: float,
        stats: FetchStats | None = None,
        concurrency: int = defaults.CONCURRENCY,
        max_requests: int | None = None,
    ) -> None:
        self.client = client
        self.pacer = pacer
        # the in-flight limit every request of every route waits for, `concurrency` its cap
        self.inflight = InFlight(concurrency, lambda: pacer.rate_rps, clock=_loop_time)
        self.max_requests = max_requests  # this process sends no more than this, if set
        self.give_up_after = give_up_after
        self.stats = stats if stats is not None else FetchStats()
        self._waves: dict[str, _RetryWave] = {}
        self.in_flight = 0  # requests sent and not yet answered

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
        """Fetch one `/extended/v1/tx` page through `request` (retries, pacing, first
        contact)."""

        async def send(limits: Mapping[str, float]) -> PageResponse:
            return await self.client.tx_page(
                offset=offset,
                limit=limit,
                start_time=start_time,
                end_time=end_time,
                order=order,
                sort_by=sort_by,
                **limits,
            )

        def take_page(response: PageResponse) -> Page:
            assert response.page is not None
            self.stats.transactions += len(response.page.rows)
            return response.page

        return await self.request(
            send, take_page, give_up_after=give_up_after, connect_attempts=connect_attempts
        )

    async def fetch(
        self,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], T],
        check: Callable[[T], str | None] | None = None,
        *,
        give_up_after: float | None = None,
        connect_attempts: int | None = None,
    ) -> T:
        """Fetch any other route (the v3 source's v2 and v3 routes) through `request`.

        `parse` turns the body into a value (a MalformedPage is retried), and `check` names a
        defect worth asking again for (a short page).
        """

        async def send(limits: Mapping[str, float]) -> RawResponse:
            return await self.client.get(path, params, **limits)

        def take_body(response: RawResponse) -> T:
            try:
                parsed = parse(response.body)
            except MalformedPage as exc:
                kind = response.headers.get("content-type", "").split(";")[0]
                raise Transient(f"bad body ({kind or 'no content-type'}): {exc}") from None
            defect = check(parsed) if check is not None else None
            if defect is not None:
                raise Transient(defect)
            return parsed

        return await self.request(
            send, take_body, give_up_after=give_up_after, connect_attempts=connect_attempts
        )

    async def request(
        self,
        send: Callable[[Mapping[str, float]], Awaitable[R]],
        take: Callable[[R], T],
        *,
        give_up_after: float | None = None,
        connect_attempts: int | None = None,
    ) -> T:
        """Send until `take` accepts an answer, retrying for `give_up_after` seconds at most.

        `connect_attempts` marks the first contact of a run: until the API answers, requests get
        short timeouts and `connect_attempts` tries without any answer (refused, timed out, TLS
        failed, dropped) end the run with a hint: a wrong URL or proxy, not an outage to wait out.
        """
        deadline = give_up_after or self.give_up_after
        started = time.monotonic()
        no_answer = NoAnswerYet(connect_attempts)
        first_contact = connect_attempts is not None
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((Transient, RateLimited)),
            stop=stop_any(stop_after_delay(deadline), no_answer),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    limits = first_contact_limits(first_contact and not no_answer.answered)
                    return await self._once(send, take, limits)
        except (Transient, RateLimited) as exc:
            reason = exc.reason if isinstance(exc, Transient) else "still rate-limited (429)"
            attempts = retrying.statistics.get("attempt_number", 1)
            elapsed = time.monotonic() - started
            self.flush_retry_log()  # the retries' line comes before the give-up's
            hint = None
            if first_contact and not no_answer.answered:
                hint = first_contact_hint(self.client.base_url, self.client.proxy)
            raise ApiUnreachable(
                f"cannot reach the API at {self.client.base_url}: {reason} "
                f"(gave up after {attempts} attempts in {elapsed:.0f} s)",
                hint=hint,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        send: Callable[[Mapping[str, float]], Awaitable[R]],
        take: Callable[[R], T],
        limits: Mapping[str, float],
    ) -> T:
        await self.inflight.acquire()
        try:
            return await self._in_slot(send, take, limits)
        finally:
            self.inflight.release()

    async def _in_slot(
        self,
        send: Callable[[Mapping[str, float]], Awaitable[R]],
        take: Callable[[R], T],
        limits: Mapping[str, float],
    ) -> T:
        """Wait for the pacer, send, and take the answer, with an in-flight slot held."""
        clock = asyncio.get_running_loop().time  # latency in the loop's own time
        queued = clock()
        await self.pacer.acquire()
        sent = clock()
        self.inflight.on_send(sent - queued)
        if self.max_requests is not None and self.stats.requests >= self.max_requests:
            raise RequestBudgetSpent(
                f"request budget spent: {self.stats.requests:,} requests sent "
                f"(--max-requests {self.max_requests:,})"
            )
        self.stats.requests += 1
        self.in_flight += 1
        try:
            response = await send(limits)
        except RateLimited as exc:
            self.stats.responses_429 += 1
            self.pacer.observe(429, exc.headers)  # a used-up quota shows in a 429's headers
            self.pacer.on_429(exc.retry_after)
            self._note_failure(str(exc))
            if self.pacer.exhausted is not None or (
                exc.retry_after is not None and exc.retry_after > self.give_up_after
            ):
                raise self._quota_exhausted(exc.retry_after) from None
            raise
        except Transient as exc:
            self.stats.errors += 1
            self._note_failure(exc.reason)
            self.inflight.on_failure()  # a 5xx, a timeout, a drop: the API struggles
            raise
        finally:
            self.in_flight -= 1
        self.pacer.observe(response.status, response.headers)
        self.inflight.on_answer(clock() - sent)
        try:
            value = take(response)
        except Transient as exc:
            self.stats.errors += 1
            self._note_failure(exc.reason)
            raise
        self.stats.pages += 1
        self.stats.last_page_at = time.time()
        self._note_recovery()
        self.stats.consecutive_failures = 0
        self.stats.failing_since = None
        self.stats.backoff_until = None
        return value

    def _quota_exhausted(self, retry_after: float | None) -> QuotaExhausted:
        """Return the error for a 429 that is a quota, not a burst: a used-up monthly quota, or
        a wait longer than the run may fail for. Its retry-after says when it resets."""
        resets_at = None if retry_after is None else time.time() + retry_after
        if self.pacer.exhausted is not None and self.pacer.exhausted_detail is not None:
            self.pacer.exhaust(self.pacer.exhausted_detail, quota="month", resets_at=resets_at)
        else:
            self.pacer.exhaust(
                f"the API's rate limit asks for a wait of {retry_after:g} s (retry-after), "
                f"longer than --give-up-after ({self.give_up_after:g} s)",
                quota="retry-after",
                resets_at=resets_at,
            )
        assert self.pacer.exhausted is not None
        return self.pacer.exhausted

    def _note_failure(self, reason: str) -> None:
        if not self.stats.consecutive_failures:
            self.stats.failing_since = time.time()
        self.stats.consecutive_failures += 1
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()

    def _note_recovery(self) -> None:
        """Log the end of an outage (a streak that status calls degraded). The first answer
        after it resets the streak, so the requests answered after it log nothing."""
        failures, since = self.stats.consecutive_failures, self.stats.failing_since
        if not failures or since is None:
            return
        lasted = max(0.0, time.time() - since)
        if failures < defaults.DEGRADED_FAILURES and lasted < defaults.DEGRADED_SECONDS:
            return  # a blip that a retry mended: the retry lines tell it
        self.flush_retry_log()  # the failures' lines come before the recovery's
        log.warning(
            "API reachable again after %.0f s (%d failed request%s)",
            lasted,
            failures,
            "" if failures == 1 else "s",
        )

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
        reason = exc.reason if isinstance(exc, Transient) else "rate-limited (429)"
        # One failed attempt is routine (the log file keeps it); a page that keeps failing is news.
        persistent = state.attempt_number >= 3 and not isinstance(exc, RateLimited)
        self._note_retry(reason, state.attempt_number, persistent)

    def _note_retry(self, reason: str, attempt: int, persistent: bool) -> None:
        """Count the failure into the wave of its kind; the wave is logged once, when it ends."""
        reason = reason.rstrip(".")
        wave = self._waves.get(reason)
        if wave is None:
            wave = self._waves[reason] = _RetryWave()
            with contextlib.suppress(RuntimeError):  # no running loop: flushed by the caller
                loop = asyncio.get_running_loop()
                wave.timer = loop.call_later(RETRY_WAVE_SECONDS, self._flush_wave, reason)
        wave.count += 1
        wave.max_attempt = max(wave.max_attempt, attempt)
        wave.persistent = wave.persistent or persistent

    def flush_retry_log(self) -> None:
        """Log the waves still being counted (before the run's last line, or before a
        give-up)."""
        for reason in list(self._waves):
            self._flush_wave(reason)

    def _flush_wave(self, reason: str) -> None:
        wave = self._waves.pop(reason, None)
        if wave is None:
            return
        if wave.timer is not None:
            wave.timer.cancel()
        level = logging.WARNING if wave.persistent else logging.INFO
        if wave.count == 1:
            log.log(level, "a request failed: %s; retrying (attempt %d)", reason, wave.max_attempt)
        else:
            log.log(
                level,
                "%d requests failed: %s; retrying (attempts up to %d)",
                wave.count,
                reason,
                wave.max_attempt,
            )
