"""One GET at a time over pooled httpx transports: the headers, the timeouts, the proxy from the
environment, and every failure to get an answer turned into a `Transient`.

Requests go straight to httpx transports, up to `max_connections` of them with one connection
each, handed out most-recently-used first. One pooled `httpx.AsyncClient` cost more CPU than the
request: httpcore checks every pooled connection on every request (a socket poll and a
getpeername each), and the client adds URL merging, cookie extraction, auth and redirect layers
that a GET of one JSON page needs none of. What the client did and we still need is done here:
the headers (gzip included), the timeouts, and the proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx


class Transient(Exception):
    """A failure worth retrying: 5xx, timeout, dropped connection, truncated or non-JSON body."""

    def __init__(self, reason: str, *, connect: bool = False, no_answer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connect = connect  # could not reach the API at all
        # No HTTP answer came back (refused, timed out, TLS failed, dropped): before the API has
        # answered once, that points at the URL (scheme, host, port) or a proxy, not an outage.
        self.no_answer = no_answer or connect


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY, ...; NO_PROXY wins),
    as httpx.AsyncClient(trust_env=True) would use it."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.netloc):
        return None
    return proxy


def describe_transport_error(exc: httpx.TransportError) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class Connections:
    """GETs to one base URL. `transport` replaces every pooled transport with one (tests pass
    the simulator or a mock)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = httpx.Headers(headers)
        self._extensions = {"timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)).as_dict()}
        self._whole_timeout = timeout * 2
        self._shared = transport
        self._proxy = None if transport is not None else environment_proxy(self.base_url)
        self._ssl: ssl.SSLContext | None = None  # one CA bundle load, not one per connection
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._owned: list[httpx.AsyncBaseTransport] = []

    def _new_transport(self) -> httpx.AsyncBaseTransport:
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

    async def _get(
        self,
        path: str,
        params: dict[str, Any],
        extensions: dict[str, Any] | None = None,
        headers_seen: list[bool] | None = None,
    ) -> httpx.Response:
        """One GET; the response comes back read and closed (its connection free again).
        `headers_seen` gets True once the status line and headers have arrived."""
        request = httpx.Request(
            "GET",
            f"{self.base_url}{path}?{urlencode(params)}",
            headers=self._headers,
            extensions=self._extensions if extensions is None else extensions,
        )
        async with self._slots:
            transport = self._idle.pop() if self._idle else self._new_transport()
            try:
                response = await transport.handle_async_request(request)
                if headers_seen is not None:
                    headers_seen.append(True)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                return response
            finally:
                self._idle.append(transport)

    @property
    def proxy(self) -> str | None:
        """The proxy requests go through (from the environment), if any."""
        return self._proxy

    async def aclose(self) -> None:
        owned, self._owned, self._idle = self._owned, [], []
        for transport in owned:
            await transport.aclose()
        if self._shared is not None:
            await self._shared.aclose()

    async def _send(
        self,
        path: str,
        params: dict[str, Any],
        timeout: float | None,
        connect_timeout: float | None,
    ) -> tuple[httpx.Response, bytes]:
        """One GET, its failures as Transient. `timeout` / `connect_timeout` shorten this
        request's limits (the first contact)."""
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
            answer = self._get(path, params, extensions, headers_seen)
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

    def _describe_connect_error(self, exc: httpx.ConnectError) -> str:
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
