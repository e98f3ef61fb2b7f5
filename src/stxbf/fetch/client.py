"""The HTTP client of one Stacks API: one method per route, one GET per call, and every outcome
classified.

Retrying is the caller's business (see `pages.py`). This module only says what happened: a page,
a `RateLimited`, a `Transient` (worth retrying), or a fatal `FetchError`.

Requests go straight to httpx transports, up to `max_connections` of them with one connection
each, handed out most-recently-used first. One pooled `httpx.AsyncClient` cost more CPU than the
request: httpcore checks every pooled connection on every request (a socket poll and a
getpeername each), and the client adds URL merging, cookie extraction, auth and redirect layers
that a GET of one JSON page needs none of. What the client did and we still need is done here:
the headers (gzip included), the timeouts, and the proxy from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import httpx

from stxbf import __version__
from stxbf.errors import ApiGone, ApiNotStacks, ApiRejected
from stxbf.models import PAGE_LIMIT, MalformedPage, Page, parse_page

log = logging.getLogger(__name__)

TX_LIST_PATH = "/extended/v1/tx"


class Transient(Exception):
    """A failure worth retrying: a 5xx, a timeout, a dropped connection, or a truncated or
    non-JSON body."""

    def __init__(self, reason: str, *, connect: bool = False, no_answer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connect = connect  # could not reach the API at all
        # No HTTP answer came back (refused, timed out, TLS failed, dropped): before the API has
        # answered once, that points at the URL (scheme, host, port) or a proxy, not an outage.
        self.no_answer = no_answer or connect


class RateLimited(Exception):
    """The API answered 429. `retry_after` is how long it asked us to wait, if it said."""

    def __init__(self, retry_after: float | None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"429 Too Many Requests (retry-after {retry_after})")
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers if headers is not None else {}


@dataclass(frozen=True, slots=True)
class PageResponse:
    """A 200 answer of `/extended/v1/tx`, with its body parsed into a page."""

    status: int
    headers: Mapping[str, str]
    page: Page | None = None


@dataclass(frozen=True, slots=True)
class RawResponse:
    """A 200 answer of any other JSON route, its body undecoded: the caller's parser says
    whether it is whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def environment_proxy(url: str) -> str | None:
    """Return the proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY and so on, with
    NO_PROXY winning), as `httpx.AsyncClient(trust_env=True)` would use it."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.netloc):
        return None
    return proxy


def describe_transport_error(exc: httpx.TransportError) -> str:
    """Return the first line of a transport error, short enough for a log line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class ApiClient:
    """Sends GETs to one Stacks API base URL. The key travels only in the `x-api-key` header.

    `transport` replaces every pooled transport with one: tests pass the simulator or a mock.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {
            "user-agent": f"stxbf/{__version__}",
            "accept": "application/json",
            "accept-encoding": "gzip, deflate",
            "connection": "keep-alive",
        }
        if api_key:
            headers["x-api-key"] = api_key
        self._headers = httpx.Headers(headers)
        self._extensions = {"timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)).as_dict()}
        self._whole_timeout = timeout * 2
        self._shared = transport
        self._proxy = None if transport is not None else environment_proxy(self.base_url)
        self._ssl: ssl.SSLContext | None = None  # one CA bundle load, not one per connection
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._owned: list[httpx.AsyncBaseTransport] = []
        self._warned_deprecation = False

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def proxy(self) -> str | None:
        """The proxy that requests go through (from the environment), if any."""
        return self._proxy

    async def aclose(self) -> None:
        owned, self._owned, self._idle = self._owned, [], []
        for transport in owned:
            await transport.aclose()
        if self._shared is not None:
            await self._shared.aclose()

    # -- the routes -------------------------------------------------------------------------------

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
    ) -> PageResponse:
        """GET one page of /extended/v1/tx. `start_time` and `end_time` are inclusive
        burn_block_time bounds.

        `timeout` and `connect_timeout` shorten this request's limits (the first contact does).
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
        """GET any route (the v3 source reads the v2 and v3 routes this way).

        A 200 comes back as it is. Every other outcome raises what `tx_page` raises
        (RateLimited, Transient, ApiGone, ...), and a 404 names the route that is missing.
        """
        response, body = await self._send(path, dict(params or {}), timeout, connect_timeout)
        if response.status_code == 200:
            return RawResponse(200, response.headers, body)
        if response.status_code == 404:
            raise ApiNotStacks(
                f"{self.base_url}{path}: 404 ({_error_text(body)})", missing_route=path
            )
        self._warn_if_deprecated(response)
        self._raise_for_status(response, body)

    # -- one GET on the wire ----------------------------------------------------------------------

    async def _send(
        self,
        path: str,
        params: dict[str, Any],
        timeout: float | None,
        connect_timeout: float | None,
    ) -> tuple[httpx.Response, bytes]:
        """Send one GET and turn every failure to get an answer into a `Transient`.

        `timeout` and `connect_timeout` shorten this request's limits (the first contact does).
        """
        headers_seen: list[bool] = []
        try:
            # The timeout bounds each read; this bounds the whole answer (a body that drips).
            extensions = self._extensions
            whole = self._whole_timeout
            if timeout is not None or connect_timeout is not None:
                read = min(timeout or whole, whole / 2)
                connect = min(connect_timeout or read, read)
                extensions = {"timeout": httpx.Timeout(read, connect=connect).as_dict()}
                whole = read * 2
            answer = self._round_trip(path, params, extensions, headers_seen)
            response = await asyncio.wait_for(answer, timeout=whole)
            return response, response.content
        except asyncio.TimeoutError:
            if headers_seen:  # a body that drips: an answer, however slow
                raise Transient("timed out (the whole response took too long)") from None
            # No header yet: on a loaded machine this deadline can beat httpx's own timeout.
            raise Transient("timed out (no answer)", no_answer=True) from None
        except httpx.TimeoutException as exc:
            raise Transient(f"timed out ({type(exc).__name__})", no_answer=True) from None
        except httpx.ConnectError as exc:
            raise Transient(self._describe_connect_error(exc), connect=True) from None
        except httpx.TransportError as exc:
            reason = f"connection failed: {describe_transport_error(exc)}"
            raise Transient(reason, no_answer=True) from None

    async def _round_trip(
        self,
        path: str,
        params: dict[str, Any],
        extensions: dict[str, Any],
        headers_seen: list[bool],
    ) -> httpx.Response:
        """Send one GET on an idle transport and return the response read and closed, so that
        its connection is free again. `headers_seen` gets True once the status line and the
        headers have arrived."""
        request = httpx.Request(
            "GET",
            f"{self.base_url}{path}?{urlencode(params)}",
            headers=self._headers,
            extensions=extensions,
        )
        async with self._slots:
            transport = self._idle.pop() if self._idle else self._new_transport()
            try:
                response = await transport.handle_async_request(request)
                headers_seen.append(True)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                return response
            finally:
                self._idle.append(transport)

    def _new_transport(self) -> httpx.AsyncBaseTransport:
        """Open one more transport of one connection (or hand out the shared one of a test)."""
        if self._shared is not None:
            return self._shared
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        transport = httpx.AsyncHTTPTransport(
            verify=self._ssl,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            proxy=self._proxy,
        )
        self._owned.append(transport)
        return transport

    def _describe_connect_error(self, exc: httpx.ConnectError) -> str:
        """Say why no connection was made: a host that does not resolve, a port where nothing
        listens, or the transport's own words."""
        import socket

        parts = urlsplit(self.base_url)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        causes: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and len(causes) < 5:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        if any(isinstance(c, socket.gaierror) for c in causes) or any(
            isinstance(a, socket.gaierror) for c in causes for a in getattr(c, "args", ())
        ):
            return f"cannot resolve host {host!r}"
        text = describe_transport_error(exc)
        if "All connection attempts failed" in text or "refused" in text.lower():
            return f"connection refused by {host}:{port} (nothing listening?)"
        return f"cannot connect to {host}:{port}: {text}"

    # -- what an answer means ---------------------------------------------------------------------

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

    def _classify(self, response: httpx.Response, body: bytes) -> PageResponse:
        """Return a v1 page's answer parsed, or raise what its status means."""
        self._warn_if_deprecated(response)
        if response.status_code != 200:
            self._raise_for_status(response, body)
        try:
            page = parse_page(body)
        except MalformedPage as exc:
            kind = response.headers.get("content-type", "").split(";")[0]
            raise Transient(f"bad page body ({kind or 'no content-type'}): {exc}") from None
        return PageResponse(response.status_code, response.headers, page)

    def _raise_for_status(self, response: httpx.Response, body: bytes) -> NoReturn:
        """Raise what an answer other than 200 means: retry it (RateLimited, Transient), or
        stop with an error that says what to fix."""
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
    """Return the useful part of an error body.

    The API's error bodies are Fastify's
    `{"statusCode":400,"code":"…","error":"Bad Request","message":"…"}` (src/api/init.ts):
    `error` is only the status phrase, and `message` says what was wrong.
    """
    try:
        import orjson

        data = orjson.loads(body)
        if isinstance(data, dict):
            text = data.get("message") or data.get("error") or data
            return " ".join(str(text).split())[:200]
    except ValueError:
        pass
    return " ".join(body[:200].decode("utf-8", "replace").split())
