"""The simulator as an httpx transport: the same handler as the server, without sockets.

`httpx.AsyncClient(transport=SimTransport(api))` gives unit tests the real API semantics (paging,
limits, faults) in microseconds. Faults that need a socket become the exceptions httpx would raise
for them over the network: drop → RemoteProtocolError, stall → ReadTimeout, refused → ConnectError,
truncate → RemoteProtocolError while reading the body. Latency is awaited unless `sleep=False`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import httpx

from stxbf.simulator.api import SimApi
from stxbf.simulator.config import SimConfig
from stxbf.simulator.responses import Action, Response


class _TruncatedStream(httpx.AsyncByteStream, httpx.SyncByteStream):
    """Yield part of the body, then fail the way a peer that closes mid-body makes httpx fail."""

    def __init__(self, part: bytes) -> None:
        self.part = part

    def _fail(self) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.part
        raise self._fail()

    def __iter__(self) -> Iterator[bytes]:
        yield self.part
        raise self._fail()


class SimTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Answer httpx requests from a `SimApi` in-process, for sync and async clients alike.

    `clock` supplies wall time (inject a fake one to test rate limits and growth), and
    `client` is the address the rate limiter sees when no x-api-key header is sent.
    """

    def __init__(
        self,
        api: SimApi | None = None,
        *,
        config: SimConfig | None = None,
        clock: Callable[[], float] = time.time,
        client: str = "127.0.0.1",
        sleep: bool = True,
    ) -> None:
        self.api = api or SimApi(config or SimConfig())
        self.clock = clock
        self.client = client
        self.sleep = sleep

    def _call(self, request: httpx.Request) -> Response:
        target = request.url.raw_path.decode("ascii")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.headers.raw
        }
        return self.api.handle(
            request.method, target, headers, client=self.client, now=self.clock()
        )

    def _finish(self, request: httpx.Request, response: Response) -> httpx.Response:
        action = response.action
        if action is Action.DROP:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if action is Action.STALL:
            raise httpx.ReadTimeout("simulated stall: no response", request=request)
        if action is Action.REFUSE:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        headers = [*response.headers, ("content-length", str(len(response.body)))]
        if action is Action.TRUNCATE:
            part = response.body[: max(1, len(response.body) // 3)]
            return httpx.Response(
                response.status, headers=headers, stream=_TruncatedStream(part), request=request
            )
        return httpx.Response(
            response.status, headers=headers, content=response.body, request=request
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = self._call(request)
        if self.sleep and response.delay > 0:
            await anyio.sleep(response.delay)
        return self._finish(request, response)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._call(request)
        if self.sleep and response.delay > 0:
            time.sleep(response.delay)
        return self._finish(request, response)
