"""The simulator's loopback HTTP/1.1: a bare asyncio Protocol with keep-alive, no framework.

A framework (or stdlib http.server) would make the simulator the bottleneck of the benchmarks it
exists to run; this parses just enough HTTP/1.1 for httpx and curl. Latency is a `call_later`,
so a slow answer never holds up other connections. Responses on one connection go out in order.
The listener can stop accepting for a while: that is how a refusing outage looks to a client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from functools import cache
from http import HTTPStatus

from stxbf.simulator.api import SimApi
from stxbf.simulator.responses import Action, Response

log = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_date_cache: tuple[int, bytes] = (0, b"")


@cache
def _status_line(status: int) -> bytes:
    """Return the status line of a code, with the standard reason phrase (http.HTTPStatus)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a code the standard library does not know keeps the line valid
        phrase = "Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode())


def _date_header() -> bytes:
    """Return the Date header's value, formatted once a second rather than once a request."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


class Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them one at a time, in order."""

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.api = server.api
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self.peer = "127.0.0.1"
        self.timer: asyncio.TimerHandle | None = None
        self.in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])
        self.server.connections.add(self)
        stats = self.api.transport_stats
        stats["connections_total"] += 1
        stats["connections_open"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.api.transport_stats["connections_open"] -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._done_in_flight()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # ---- parsing ----------------------------------------------------------------------------

    def _next_request(self) -> None:
        while not self.busy and not self.closed:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._respond(Response(431, [], b""), False, "GET")
                return
            head = bytes(self.buffer[:head_end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._respond(Response(400, [], b""), False, "GET")
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                self._respond(Response(400, [], b""), False, "GET")
                return
            if len(self.buffer) < head_end + 4 + length:
                return  # wait for the body (admin POSTs may carry one; it is ignored)
            del self.buffer[: head_end + 4 + length]
            connection = headers.get("connection", "").lower()
            keep_alive = (
                connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
            )
            self._dispatch(method, target, headers, keep_alive)

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        stats = self.api.transport_stats
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        self.in_flight = True
        try:
            response = self.api.handle(method, target, headers, client=self.peer)
        except Exception:  # a simulator bug must not kill the connection silently
            log.exception("simulator handler failed for %s %s", method, target)
            response = Response(500, [("content-type", "text/plain")], b"simulator bug")
        if response.pause_listening > 0:
            self.server.pause_listening(response.pause_listening, keep=self)
        keep_alive = keep_alive and not response.close
        if response.action in (Action.STALL, Action.DROP, Action.REFUSE):
            keep_alive = False
        delay = response.delay
        if response.action is Action.STALL:
            delay += response.stall_seconds
        self.busy = True
        if delay > 0:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(delay, self._respond, response, keep_alive, method)
        else:
            self._respond(response, keep_alive, method)

    # ---- writing ----------------------------------------------------------------------------

    def _done_in_flight(self) -> None:
        if self.in_flight:
            self.in_flight = False
            self.api.transport_stats["in_flight"] -= 1

    def _respond(self, response: Response, keep_alive: bool, method: str) -> None:
        self.timer = None
        self._done_in_flight()
        transport = self.transport
        if self.closed or transport is None:
            return
        if response.action in (Action.DROP, Action.STALL, Action.REFUSE):
            if response.action is Action.STALL:
                transport.close()  # a quiet FIN after the stall
            else:
                transport.abort()  # a reset, as a crashed proxy would
            self.closed = True
            return
        body = response.body
        head = [
            _status_line(response.status),
            b"date: " + _date_header() + b"\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: keep-alive\r\n" if keep_alive else b"connection: close\r\n",
        ]
        head += [f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers]
        head.append(b"\r\n")
        if method == "HEAD":
            body = b""
        if response.action is Action.TRUNCATE:
            transport.write(b"".join(head) + body[: max(1, len(body) // 3)])
            transport.close()
            self.closed = True
            return
        transport.write(b"".join(head) + body)
        if not keep_alive:
            transport.close()
            self.closed = True
            return
        self.busy = False
        if self.buffer:
            self._next_request()


class Listener:
    """The listening socket(s) and the open connections; can stop listening for an outage."""

    def __init__(self, api: SimApi, host: str, port: int) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.connections: set[Connection] = set()
        self.server: asyncio.Server | None = None
        self._resume: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: Connection(self), self.host, self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    def pause_listening(self, seconds: float, keep: Connection | None = None) -> None:
        """Outage: stop accepting (connection refused), drop idle keep-alive connections."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.connections):
            if conn is not keep and not conn.busy:
                conn.abort()
        loop = asyncio.get_running_loop()
        if self._resume is not None:
            self._resume.cancel()
        self._resume = loop.call_later(seconds, lambda: loop.create_task(self._relisten()))

    async def _relisten(self) -> None:
        self._resume = None
        for _ in range(50):
            try:
                await self.start()
                return
            except OSError:  # the port lingers for a moment after close
                await asyncio.sleep(0.1)
        log.error("simulator could not listen again on port %s", self.port)

    async def close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.abort()
        if self.server is not None:
            await self.server.wait_closed()
