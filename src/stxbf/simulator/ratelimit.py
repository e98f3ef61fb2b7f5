"""The simulator's rate limits: sliding windows in cost units, a monthly quota, and the headers.

Hiro documents one set of headers (hirosystems/docs `rate-limits.mdx`, `response-headers.mdx`):
`x-ratelimit-limit-stacks-second|minute|month` and their `-remaining-` twins,
`x-ratelimit-cost-stacks`, the generic `ratelimit-limit`, `ratelimit-remaining`,
`ratelimit-reset` (documented as a Unix time), and `retry-after` on a 429. Which of them an API
sends, and which window the generic triple describes, varies: an independent Stacks API was seen
limiting per second only, sending just the second window and the generic triple for it. Each
*style* below is one such combination; every configured limit is enforced whatever the style
announces.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

# what each style announces (all of them send `retry-after` on a 429)
RATE_HEADER_STYLES: tuple[str, ...] = (
    "full",  # explicit minute + second (those configured) + the generic triple (today's default)
    "second",  # explicit second + generic triple for the second window (nothing per minute)
    "minute",  # explicit minute + generic triple for the minute window
    "generic",  # the generic triple only; its window is unstated
    "generic-policy",  # the generic triple + `ratelimit-policy: N;w=W`
    "none",  # nothing but `retry-after` on a 429
)
GENERIC_WINDOWS: tuple[str, ...] = ("minute", "second")
RESET_FORMATS: tuple[str, ...] = ("delta", "unix")
WINDOW_SECONDS = {"minute": 60.0, "second": 1.0}
# the window each style's generic triple describes; None = the configured `generic_window`
_STYLE_GENERIC: dict[str, str | None] = {
    "full": None,
    "second": "second",
    "minute": "minute",
    "generic": None,
    "generic-policy": None,
    "none": None,
}


@dataclass
class Window:
    """Count cost units in a sliding window of `seconds`, as (sent_at, cost) entries."""

    seconds: float
    entries: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= now - self.seconds:
            self.used -= entries.popleft()[1]

    def add(self, now: float, cost: int) -> None:
        self.entries.append((now, cost))
        self.used += cost

    def wait_for(self, now: float, cost: int, limit: int) -> float:
        """Return the seconds until `cost` more units fit under `limit` (0 when they fit now)."""
        excess = self.used + cost - limit
        if excess <= 0:
            return 0.0
        for sent_at, spent in self.entries:
            excess -= spent
            if excess <= 0:
                return max(0.0, sent_at + self.seconds - now)
        return self.seconds  # unreachable while cost <= limit

    def reset_in(self, now: float) -> float:
        """Return the seconds until the oldest entry leaves (a full window when it is empty)."""
        return self.entries[0][0] + self.seconds - now if self.entries else self.seconds


def month_bounds(now: float, period_seconds: float) -> tuple[int, float]:
    """Return the period a moment falls in, and when that period ends.

    A period is `period_seconds` long when given, else the UTC calendar month.
    """
    if period_seconds > 0:
        period = math.floor(now / period_seconds)
        return period, (period + 1) * period_seconds
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.year * 12 + moment.month, datetime(
        year, month, 1, tzinfo=timezone.utc
    ).timestamp()


@dataclass
class ClientWindows:
    """Hold one client's windows and monthly usage (per API key, else per IP)."""

    minute: Window = field(default_factory=lambda: Window(60.0))
    second: Window = field(default_factory=lambda: Window(1.0))
    month_period: int | None = None
    month_used: int = 0


@dataclass
class RatePolicy:
    """Hold the limits in force (0 is off) and how they are announced; they change at run time."""

    rpm: int = 0
    per_second: int = 0
    month_quota: int = 0
    month_seconds: float = 0.0  # 0 = the UTC calendar month
    cost: int = 1
    style: str = "full"
    generic_window: str = "minute"
    reset_format: str = "delta"

    def validate(self) -> None:
        """Raise ValueError for a combination that cannot describe or enforce itself."""
        style, cost = self.style, self.cost
        rpm, per_second, month_quota = self.rpm, self.per_second, self.month_quota
        if style not in RATE_HEADER_STYLES:
            raise ValueError(f"rate_headers must be one of {', '.join(RATE_HEADER_STYLES)}")
        if self.generic_window not in GENERIC_WINDOWS:
            raise ValueError(f"generic window must be one of {', '.join(GENERIC_WINDOWS)}")
        if self.reset_format not in RESET_FORMATS:
            raise ValueError(f"ratelimit-reset format must be one of {', '.join(RESET_FORMATS)}")
        if cost < 1:
            raise ValueError("request cost must be >= 1")
        if min(rpm, per_second, month_quota) < 0 or self.month_seconds < 0:
            raise ValueError("limits and the quota period must be >= 0")
        for name, limit in (("rpm", rpm), ("per_second", per_second), ("month_quota", month_quota)):
            if limit and cost > limit:
                raise ValueError(f"request cost {cost} exceeds {name} {limit}: nothing could pass")
        if rpm or per_second:
            window = _STYLE_GENERIC[style] or self.generic_window
            needed = {"second": per_second, "minute": rpm}
            if style in ("second", "minute", "generic", "generic-policy") and not needed[window]:
                raise ValueError(
                    f"rate_headers={style} describes the {window} window: set its limit"
                )

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.per_second or self.month_quota)

    def admit(
        self, client: ClientWindows, now: float
    ) -> tuple[int | None, str | None, list[tuple[str, str]]]:
        """Admit or refuse one request at `now`: return (retry_after or None, reason, headers).

        The monthly quota is checked first (its retry-after runs to the period's end), then
        the minute, then the second window. An admitted request spends `cost` units in each.
        """
        if not self.active:
            return None, None, []
        cost = self.cost
        minute, second = client.minute, client.second
        minute.expire(now)
        second.expire(now)
        month_end = 0.0
        if self.month_quota:
            period, month_end = month_bounds(now, self.month_seconds)
            if client.month_period != period:
                client.month_period, client.month_used = period, 0
        wait, reason = 0.0, None
        if self.month_quota and client.month_used + cost > self.month_quota:
            wait, reason = month_end - now, "month"
        elif self.rpm and (w := minute.wait_for(now, cost, self.rpm)) > 0:
            wait, reason = w, "minute"
        elif self.per_second and (w := second.wait_for(now, cost, self.per_second)) > 0:
            wait, reason = w, "second"
        retry_after = max(1, math.ceil(wait)) if reason else None
        if retry_after is None:
            minute.add(now, cost)
            second.add(now, cost)
            client.month_used += cost
        return retry_after, reason, self._headers(client, now, retry_after, reason, month_end)

    def _headers(
        self,
        client: ClientWindows,
        now: float,
        retry_after: int | None,
        reason: str | None,
        month_end: float,
    ) -> list[tuple[str, str]]:
        style = self.style
        headers: list[tuple[str, str]] = []
        limits = {"minute": self.rpm, "second": self.per_second}
        windows = {"minute": client.minute, "second": client.second}
        if style != "none":
            explicit = {"full": ("minute", "second"), "second": ("second",), "minute": ("minute",)}
            for name in explicit.get(style, ()):
                if limits[name]:
                    remaining = max(0, limits[name] - windows[name].used)
                    headers += [
                        (f"x-ratelimit-limit-stacks-{name}", str(limits[name])),
                        (f"x-ratelimit-remaining-stacks-{name}", str(remaining)),
                    ]
            generic = _STYLE_GENERIC[style] or self.generic_window
            if limits[generic]:
                window = windows[generic]
                remaining = max(0, limits[generic] - window.used)
                if reason == generic and retry_after is not None:
                    delta = retry_after
                else:
                    delta = max(1, math.ceil(window.reset_in(now)))
                reset = delta if self.reset_format == "delta" else math.ceil(now) + delta
                headers += [
                    ("ratelimit-limit", str(limits[generic])),
                    ("ratelimit-remaining", str(remaining)),
                    ("ratelimit-reset", str(reset)),
                ]
                if style == "generic-policy":
                    seconds = int(WINDOW_SECONDS[generic])
                    headers.append(("ratelimit-policy", f"{limits[generic]};w={seconds}"))
            if self.month_quota:
                remaining = max(0, self.month_quota - client.month_used)
                headers += [
                    ("x-ratelimit-limit-stacks-month", str(self.month_quota)),
                    ("x-ratelimit-remaining-stacks-month", str(remaining)),
                ]
            if self.cost > 1:
                headers.append(("x-ratelimit-cost-stacks", str(self.cost)))
        if retry_after is not None:
            headers.append(("retry-after", str(retry_after)))
        return headers
