"""This module reads what an API's rate-limit headers say, window by window. It is pure: it does
no I/O and has no clock of its own.

Hiro documents two families (hirosystems/docs `rate-limits.mdx`, `response-headers.mdx`):

- explicit ones whose names carry their window: `x-ratelimit-{limit,remaining}-stacks-second`,
  `-minute` and `-month`, and `x-ratelimit-cost-stacks` (what this request cost, default 1);
- the generic IETF-draft triple `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`,
  whose window Hiro does not document. `ratelimit-policy: N;w=W` names it when sent; otherwise
  it is inferred: from an explicit header with the same limit, or from how far `ratelimit-reset`
  ever counts (a per-minute window shows resets above one second within a second or two; a
  per-second one never does). Until it is known the generic limit never overrides an explicit
  header, and reading it as a per-minute figure when it was per-second is what once paced an API
  60 times too slowly.

`ratelimit-reset` is delta seconds or a Unix time (Hiro documents a Unix time); both are read,
a Unix time against the response's own `Date` when there is one, so clock skew does not count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from stxbf.errors import QuotaExhausted
from stxbf.words import utc_iso

SECOND = 1.0
MINUTE = 60.0
# Windows a bare generic limit can be inferred to have, shortest first.
STANDARD_WINDOWS: tuple[float, ...] = (SECOND, MINUTE, 3600.0, 86_400.0)
EPOCH_THRESHOLD = 1_000_000_000  # a reset this large is a Unix time, not a delta
RESET_CAP = 3600.0  # a window gate never waits longer than this on the strength of a reset
HEADROOM = 1.5  # requests of room left in every window: jitter must not fill a short one
HEADROOM_CAP = 0.97  # ...but never less than this share of a window's limit
# A window's limit is spread over its length plus this: a request the loop or the network delays
# this much must not share a window with the next ones on time (5 % of a second, 0.08 % of a minute)
JITTER_SECONDS = 0.05
SECOND_WINDOW_EVIDENCE = (3, 1.0)  # samples, seconds spanned: resets stayed short this long
RESET_ROUNDING = 1.05  # a reset is sent in whole seconds and may read up to this much long
SHORT_RESET = SECOND + RESET_ROUNDING  # what a per-second window's reset can read


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """One ceiling the API states: `limit` cost units per `window` seconds."""

    window: float
    limit: float
    remaining: float | None
    source: str  # the header(s) it was read from, for the log

    @property
    def per_second(self) -> float:
        return self.limit / self.window

    def describe(self) -> str:
        unit = {SECOND: "s", MINUTE: "min", 3600.0: "h", 86_400.0: "day"}.get(self.window)
        per = f"/{unit}" if unit else f" per {self.window:g} s"
        return f"{self.limit:g}{per} ({self.source})"


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """Everything one response said about limits. A field is None when the response did not
    state it."""

    second: WindowLimit | None = None
    minute: WindowLimit | None = None
    generic_limit: float | None = None
    generic_remaining: float | None = None
    generic_window: float | None = None  # from `ratelimit-policy`, when sent
    reset_seconds: float | None = None  # `ratelimit-reset` as a delta, either form
    month_limit: float | None = None
    month_remaining: float | None = None
    cost: float = 1.0

    @property
    def paces(self) -> bool:
        """Tell whether a limit to pace by is stated (a quota alone is not one)."""
        return any(value is not None for value in (self.second, self.minute, self.generic_limit))


def header_number(value: str | None) -> float | None:
    """Return the first number of a header (`"40"`, `"40, 40;w=1"`, `"500;w=60"`), or None if
    there is none."""
    if not value:
        return None
    head = value.split(",")[0].split(";")[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


def _policy_window(policy: str | None) -> float | None:
    """Return the window of the first policy in `ratelimit-policy` (`500;w=60` gives 60.0)."""
    if not policy:
        return None
    for part in policy.split(",")[0].split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip() == "w":
            number = header_number(value)
            if number and number > 0:
                return number
    return None


def _server_now(headers: Mapping[str, str]) -> float | None:
    date = headers.get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


def reset_delta(
    value: str | None, headers: Mapping[str, str], now: float | None = None
) -> float | None:
    """Return the seconds until `ratelimit-reset`, whichever form it was sent in. The result is
    never negative."""
    number = header_number(value)
    if number is None:
        return None
    if number > EPOCH_THRESHOLD:
        # The server's Date has 1 s resolution; half a second keeps the estimate unbiased.
        server_now = _server_now(headers)
        base = server_now + 0.5 if server_now is not None else (time.time() if now is None else now)
        number -= base
    return max(0.0, number)


def read_rate_headers(headers: Mapping[str, str]) -> RateHeaders:
    """Read every limit one response states, the explicit and the generic ones alike."""

    def explicit(window: float, name: str) -> WindowLimit | None:
        limit = header_number(headers.get(f"x-ratelimit-limit-stacks-{name}"))
        if limit is None or limit <= 0:
            return None
        remaining = header_number(headers.get(f"x-ratelimit-remaining-stacks-{name}"))
        return WindowLimit(window, limit, remaining, f"x-ratelimit-limit-stacks-{name}")

    generic = header_number(headers.get("ratelimit-limit"))
    cost = header_number(headers.get("x-ratelimit-cost-stacks"))
    return RateHeaders(
        second=explicit(SECOND, "second"),
        minute=explicit(MINUTE, "minute"),
        generic_limit=generic if generic is not None and generic > 0 else None,
        generic_remaining=header_number(headers.get("ratelimit-remaining")),
        generic_window=_policy_window(headers.get("ratelimit-policy")),
        reset_seconds=reset_delta(headers.get("ratelimit-reset"), headers),
        month_limit=header_number(headers.get("x-ratelimit-limit-stacks-month")),
        month_remaining=header_number(headers.get("x-ratelimit-remaining-stacks-month")),
        cost=cost if cost is not None and cost > 0 else 1.0,
    )


class GenericWindow:
    """Works out the window of a bare `ratelimit-limit` over successive responses.

    The reset of a window counts down from at most the window's length, so the longest reset
    seen is a lower bound: anything above a second rules the per-second window out at once. The
    per-second window is concluded only after resets stayed within a second over a few responses
    spread across a second, which no per-minute window (fixed or sliding) does.
    """

    def __init__(self) -> None:
        self.longest_reset = 0.0
        self._short_since: float | None = None
        self._short_samples = 0
        self._latest = 0.0

    def observe(self, reset: float | None, now: float) -> None:
        if reset is None:
            return
        self._latest = now
        self.longest_reset = max(self.longest_reset, reset)
        if reset <= SHORT_RESET:
            if self._short_since is None:
                self._short_since = now
            self._short_samples += 1

    def window(self) -> float | None:
        """Return the inferred window, or None while the evidence is not in."""
        if self.longest_reset > SHORT_RESET:
            # Resets are whole seconds, rounded up (a Unix time even from the next second).
            return next(
                (w for w in STANDARD_WINDOWS if w >= self.longest_reset - RESET_ROUNDING),
                STANDARD_WINDOWS[-1],
            )
        samples, spanned = SECOND_WINDOW_EVIDENCE
        if (
            self._short_since is not None
            and self._short_samples >= samples
            and self._latest - self._short_since >= spanned
        ):
            return SECOND
        return None


@dataclass(frozen=True, slots=True)
class LearnedLimits:
    """Holds the limits a client should pace by: every window whose meaning is known."""

    windows: tuple[WindowLimit, ...]
    cost: float

    def pace(self, safety: float) -> float | None:
        """Return the requests per second (of the last seen cost) that keep every known window
        from filling up.

        Each window keeps `1 - safety` of its limit free, and `HEADROOM` requests where that is
        more (up to 3 %): 1.5 % of a minute's 500 is room enough, of a second's 40 it is not.
        And each spreads its limit over its length plus `JITTER_SECONDS`: the pacer makes up
        for late sends, so a request delayed on its way (the event loop, the network) and the
        next ones on time must still not land in the same second.
        """
        if not self.windows:
            return None
        room = HEADROOM * self.cost
        return (
            min(
                min(
                    max(min(w.limit * safety, w.limit - room), w.limit * HEADROOM_CAP) / w.window,
                    w.limit / (w.window + JITTER_SECONDS),
                )
                for w in self.windows
            )
            / self.cost
        )

    def describe(self) -> str:
        parts = [w.describe() for w in self.windows]
        if self.cost != 1.0:
            parts.append(f"each request costs {self.cost:g} (x-ratelimit-cost-stacks)")
        return ", ".join(parts) or "none stated"


def known_windows(
    rate: RateHeaders, inferred_generic_window: float | None
) -> tuple[WindowLimit, ...]:
    """Return the explicit windows, and the generic limit too when its window is known.

    The generic limit's window: `ratelimit-policy` if sent; else an explicit header with the same
    limit; else what `GenericWindow` inferred. While that inference waits for evidence the
    generic limit is left out (the pacer keeps its assumed rate for the second or two it takes);
    with no `ratelimit-reset` to infer from and no explicit header to prefer, it is taken as a
    minute (the documented Hiro unit), which errs on the slow side.
    """
    windows = [w for w in (rate.second, rate.minute) if w is not None]
    if rate.generic_limit is None:
        return tuple(windows)
    window = rate.generic_window
    source = "ratelimit-limit, window from ratelimit-policy"
    if window is None:
        matches = [w for w in windows if w.limit == rate.generic_limit]
        if len(matches) == 1:
            return tuple(windows)  # the same limit as an explicit header: nothing new
        if inferred_generic_window is not None:
            window = inferred_generic_window
            source = "ratelimit-limit, window inferred from ratelimit-reset"
        elif not windows and rate.reset_seconds is None:
            window = MINUTE
            source = "ratelimit-limit, window assumed a minute"
        else:
            return tuple(windows)  # unknown (yet): it never overrides an explicit header
    generic = WindowLimit(window, rate.generic_limit, rate.generic_remaining, source)
    if any(w.window == window and w.limit <= generic.limit for w in windows):
        return tuple(windows)
    return (*[w for w in windows if w.window != window], generic)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds to wait that a `retry-after` header names, as delta-seconds or as an
    HTTP date."""
    if not value:
        return None
    number = header_number(value)
    if number is not None:
        return max(0.0, number)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def quota_error(what: str, *, quota: str, resets_at: float | None) -> QuotaExhausted:
    """Build the error for a used-up quota. Its message says which quota, and when it resets if
    the API said."""
    if resets_at is None:
        when = "the API did not say when it resets"
    else:
        when = f"it resets at {utc_iso(resets_at)}"
    return QuotaExhausted(
        f"{what}; {when}",
        quota=quota,
        resets_at=resets_at,
        hint="Completed windows are committed; run `stxbf run` again after the reset "
        "(or raise --give-up-after to wait out a long retry-after).",
    )
