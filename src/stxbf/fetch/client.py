"""The HTTP client: one method per endpoint, one request per call, every outcome classified.

Retrying is the caller's business (see `pages.py`); this module only says what happened:
a `Page`, a `RateLimited`, a `Transient` (worth retrying), or a fatal `FetchError`. How a GET
travels (pooled transports, timeouts, the proxy) is `connections.py`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from stxbf import __version__
from stxbf.errors import ApiGone, ApiNotStacks, ApiRejected
from stxbf.fetch.connections import Connections, Transient
from stxbf.models import PAGE_LIMIT, MalformedPage, Page, parse_page

log = logging.getLogger(__name__)

TX_LIST_PATH = "/extended/v1/tx"


class RateLimited(Exception):
    def __init__(self, retry_after: float | None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"429 Too Many Requests (retry-after {retry_after})")
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers if headers is not None else {}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    page: Page | None = None


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A 200 answer of any JSON route, body undecoded (the caller's parser says if it is whole)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class ApiClient(Connections):
    """Talks to one Stacks API base URL. The key travels only in the `x-api-key` header."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {
            "user-agent": f"stxbf/{__version__}",
            "accept": "application/json",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
        }
        if api_key:
            headers["x-api-key"] = api_key
        super().__init__(
            base_url,
            headers=headers,
            timeout=timeout,
            max_connections=max_connections,
            transport=transport,
        )
        self._warned_deprecation = False

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def tx_page(
        self,
        *,
        offset: int = 0,
        limit: int = PAGE_LIMIT,
        start_time: int | None = None,
        end_time: int | None = None,
        order: str = "asc",
        sort_by: str = "block_height",
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> Response:
        """GET /extended/v1/tx for one page. start/end are inclusive burn_block_time bounds.

        `timeout` / `connect_timeout` shorten this request's limits (the first contact).
        """
        params: dict[str, Any] = {
            "limit": limit,
            "offset": offset,
            "order": order,
            "sort_by": sort_by,
            # stxbf stores no function arguments; leaving them out makes contract-call pages
            # smaller (a querystring flag of the route: src/api/routes/v1/tx.ts).
            "exclude_function_args": "true",
        }
        if start_time is not None:
            params["start_time"] = max(1, start_time)  # 0 means "no bound" to the API
        if end_time is not None:
            params["end_time"] = end_time
        response, body = await self._send(TX_LIST_PATH, params, timeout, connect_timeout)
        return self._classify(response, body)

    async def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> RawResponse:
        """GET any route (the v2/v3 routes of the v3 source): a 200 comes back as it is; every
        other outcome raises what `tx_page` raises (RateLimited, Transient, ApiGone, ...), and a
        404 names the route that is missing."""
        response, body = await self._send(path, dict(params or {}), timeout, connect_timeout)
        if response.status_code == 200:
            return RawResponse(200, response.headers, body)
        if response.status_code == 404:
            raise ApiNotStacks(
                f"{self.base_url}{path}: 404 ({_error_text(body)})", missing_route=path
            )
        self._warn_if_deprecated(response)
        self._raise_for_status(response, body)

    def _warn_if_deprecated(self, response: httpx.Response) -> None:
        """Say once that the API announces the v1 route's end (a `299` warning header)."""
        # a 410 is the switch-off itself: the error (or the runner's switch to v3) says so
        headers = response.headers
        if (
            response.status_code != 410
            and not self._warned_deprecation
            and headers.get("warning", "").startswith("299")
        ):
            self._warned_deprecation = True
            log.warning(
                "the API says %s is deprecated (%s); stxbf will need /extended/v3/transactions "
                "once the v1 route is switched off",
                TX_LIST_PATH,
                headers["warning"],
            )

    def _classify(self, response: httpx.Response, body: bytes) -> Response:
        """A v1 page's answer: the parsed page, or what its status means, raised."""
        self._warn_if_deprecated(response)
        if response.status_code != 200:
            self._raise_for_status(response, body)
        try:
            page = parse_page(body)
        except MalformedPage as exc:
            kind = response.headers.get("content-type", "").split(";")[0]
            raise Transient(f"bad page body ({kind or 'no content-type'}): {exc}") from None
        return Response(response.status_code, response.headers, page)

    def _raise_for_status(self, response: httpx.Response, body: bytes) -> NoReturn:
        """What an answer other than 200 means: retry it (RateLimited, Transient) or stop."""
        status = response.status_code
        headers = response.headers
        if status == 429:
            from stxbf.fetch.ratelimit import parse_retry_after

            raise RateLimited(parse_retry_after(headers.get("retry-after")), headers)
        if status >= 500 or status == 408:
            raise Transient(f"HTTP {status} from the API")
        if status == 410:
            raise ApiGone(
                f"the API answered 410 Gone: {TX_LIST_PATH} is switched off on {self.base_url}",
                status=status,
                hint="API v9 deprecated this route and its operator has switched deprecated "
                "routes off (ENABLE_DEPRECATED_ENDPOINTS=false); use an API that still serves "
                "it, or a stxbf that reads /extended/v3/transactions.",
            )
        if status in (401, 403):
            raise ApiRejected(
                f"the API refused the request ({status}): the API key is missing or wrong",
                status=status,
                hint="Set STXBF_API_KEY (or HIRO_API_KEY) in the environment.",
            )
        if status == 404:
            raise ApiNotStacks(
                f"{self.base_url}{TX_LIST_PATH} does not exist (404): is "
                f"{urlsplit(self.base_url).netloc} a Stacks API?",
                missing_route=TX_LIST_PATH,
            )
        if status == 400:
            raise ApiRejected(
                f"the API rejected the request (400): {_error_text(body)}", status=status
            )
        if 300 <= status < 400:
            raise ApiNotStacks(
                f"the API redirected ({status}) to {headers.get('location', '?')}; "
                "set STXBF_API_URL to the final address"
            )
        raise ApiRejected(f"unexpected HTTP {status} from the API", status=status)


def _error_text(body: bytes) -> str:
    """The useful part of an error body. The API's are Fastify's
    `{"statusCode":400,"code":"…","error":"Bad Request","message":"…"}` (src/api/init.ts):
    `error` is only the status phrase, `message` says what was wrong."""
    try:
        import orjson

        data = orjson.loads(body)
        if isinstance(data, dict):
            text = data.get("message") or data.get("error") or data
            return " ".join(str(text).split())[:200]
    except ValueError:
        pass
    return " ".join(body[:200].decode("utf-8", "replace").split())
