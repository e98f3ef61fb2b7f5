"""The run's one request path to the API, and the source (v1 or v3) whose route it asks.

The source is v1 (`/extended/v1/tx`, a burn-time filter and an exact `total` per window) while
that route answers, and v3 (`/extended/v3/transactions`, cursor walks proven by the burn blocks'
counts) when asked for, or under `auto` once v1 is switched off. Both engines take gaps and hand
back `CompletedWindow`s that are committed alike, so the planning, the checkpoints and the
commits never need to know which source filled a window.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx

from stxbf.errors import ApiGone, ApiNotStacks, StxbfError
from stxbf.fetch.client import TX_LIST_PATH, ApiClient
from stxbf.fetch.engine import Engine
from stxbf.fetch.pacer import HIRO_RPM_WITH_KEY, HIRO_RPM_WITHOUT_KEY, Pacer
from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.fetch.v3 import V3_TX_PATH, V3Engine, V3Source
from stxbf.fetch.windows import INITIAL_SPAN, CompletedWindow
from stxbf.runner.params import RunParams

log = logging.getLogger(__name__)

ROUTES = {"v1": TX_LIST_PATH, "v3": V3_TX_PATH}
# V3Source: cursor walks in flight per window (V3Engine prepares the next window meanwhile)
V3_WALKS_PER_WINDOW = 8

OnWindow = Callable[[CompletedWindow], Awaitable[None]]
AnyEngine = Engine | V3Engine


class RequestPath:
    """Sends every request of a run, and knows which source's route the transactions come from.

    Every request goes through one pacer (at the API's stated rate, or `--rpm`), one client and
    one retrying page source, whatever the source: so a switch from v1 to v3 keeps the learned
    rate limit, the request counters and the in-flight limit.
    """

    def __init__(
        self,
        params: RunParams,
        stats: FetchStats,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.params = params
        rpm = params.rpm or (HIRO_RPM_WITH_KEY if params.api_key else HIRO_RPM_WITHOUT_KEY)
        self.pacer = Pacer(rpm=rpm, fixed=params.rpm is not None)
        self.client = ApiClient(
            params.api_url,
            api_key=params.api_key,
            timeout=params.request_timeout,
            max_connections=params.concurrency,
            transport=transport,
        )
        self.pages = PageSource(
            self.client,
            self.pacer,
            give_up_after=params.give_up_after,
            stats=stats,
            concurrency=params.concurrency,
            max_requests=params.max_requests,
        )
        self.source = "v3" if params.source == "v3" else "v1"
        self._stats = stats
        self._v3: V3Source | None = None

    @property
    def route(self) -> str:
        """The API path of the source in use (logged, so that an operator sees which it is)."""
        return ROUTES[self.source]

    def v3(self) -> V3Source:
        """Return the v3 source, built once on the same pacer, retries, quota and counters."""
        if self._v3 is None:
            self._v3 = V3Source(
                self.client,
                self.pacer,
                give_up_after=self.params.give_up_after,
                concurrency=min(V3_WALKS_PER_WINDOW, self.params.concurrency),
                stats=self._stats,
                requests=self.pages,
            )
        return self._v3

    def engine(self, on_window: OnWindow, *, initial_span: int = INITIAL_SPAN) -> AnyEngine:
        """Build the engine of the source in use, handing each completed window to `on_window`.

        `initial_span` is the width of its first window; the engine learns the rest from the
        density it meets.
        """
        if self.source == "v3":
            return V3Engine(self.v3(), on_window=on_window, initial_span=initial_span)
        return Engine(
            self.pages,
            concurrency=self.params.concurrency,
            on_window=on_window,
            initial_span=initial_span,
            max_started=self.pages.inflight.started,
        )

    def may_switch(self, exc: BaseException) -> bool:
        """Tell whether `exc` lets `auto` leave v1 for v3, for the rest of the run.

        It does when v1's route is switched off (a 410 from the deprecation plugin,
        stacks-blockchain-api src/api/deprecation-plugin.ts) or missing (a 404 on /extended/v1/tx
        from an API without the v1 routes).
        """
        if self.params.source != "auto" or self.source != "v1":
            return False
        if isinstance(exc, ApiGone):
            return True
        return isinstance(exc, ApiNotStacks) and exc.missing_route == TX_LIST_PATH

    def switch_to_v3(self, exc: StxbfError) -> None:
        """Use v3 from now on, and say why in one warning."""
        why = (
            "answered 410 Gone (switched off)"
            if isinstance(exc, ApiGone)
            else "answered 404 (the route does not exist)"
        )
        log.warning(
            "%s %s: switching to %s for the rest of this run; committed windows stay, the gaps "
            "are planned again from the checkpoints",
            TX_LIST_PATH,
            why,
            V3_TX_PATH,
        )
        self.source = "v3"

    async def aclose(self) -> None:
        """Log the retries still being counted, then close the client's connections."""
        self.pages.flush_retry_log()
        await self.client.aclose()
