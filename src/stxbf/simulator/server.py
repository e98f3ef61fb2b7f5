"""The simulator on loopback HTTP/1.1: an asyncio Protocol, its listener, and two ways to run it.

`run_in_thread(config)` serves from a background thread for tests and benchmarks, and
`serve_forever` serves in the foreground for the CLI (`stxbf sim serve`).

Each connection is a bare asyncio Protocol that parses just enough HTTP/1.1 for httpx and curl:
a web framework, the standard library's http.server, or h11 would make the simulator the
bottleneck of the benchmarks it exists to run (h11 served 0.78 to 0.81 of this parser's pages per
CPU second: benchmarks/sim_ceiling.py, docs/performance.md). Latency is a `call_later`, so a
slow answer never holds up other connections, and the answers on one connection go out in the
order their requests came. The listener can stop accepting for a while: that is how a refusing
outage looks to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from functools import cache
from http import HTTPStatus
from typing import Any

from stxbf.simulator.api import SimApi
from stxbf.simulator.chain import Chain
from stxbf.simulator.config import SimConfig, check_loopback
from stxbf.simulator.responses import Action, Response

log = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_date_cache: tuple[int, bytes] = (0, b"")


@cache
def _status_line(status: int) -> bytes:
    """Return the status line of a code, with the standard reason phrase (http.HTTPStatus).

    The real API answers through Node's http server, whose phrases (`http.STATUS_CODES`) are the
    same for every code the simulator sends (no route here answers 413, where the two differ).
    """
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


# ---- the HTTP/1.1 front end -------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """Serve one client connection: parse its requests, and answer them one at a time.

    A request that arrives while another is being answered waits in the buffer, so
    answers go out in the order of the requests (pipelining included).
    """

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
    """Hold the listening sockets and the open connections.

    It can stop listening for a while: that is how a refusing outage looks to a client.
    """

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
        """Refuse connections for `seconds`, and drop the idle keep-alive connections.

        The connection that asked for the outage (`keep`) gets its answer first.
        """
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


# ---- running a simulator ----------------------------------------------------------------------


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimServer:
    """Run a simulator in a background thread, and control it from the test's thread.

    `run_in_thread` starts and stops one; its conveniences do what the `/_sim/` routes do.
    """

    def __init__(self, config: SimConfig, api: SimApi | None = None) -> None:
        check_loopback(config.host)
        self.config = config
        self.api = api or SimApi(config)
        self.chain: Chain = self.api.chain
        self.host = config.host
        self.port = config.port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Listener | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._run, name="stxbf-sim", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = Listener(self.api, self.host, self.port)
        await self._server.start()
        self.port = self._server.port
        self._ready.set()
        await self._stopped.wait()
        await self._server.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    # ---- conveniences for tests -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self.api.stats()

    def set_faults(self, rate: float, kinds: str | tuple[str, ...] | None = None) -> None:
        self.api.set_faults(rate, kinds)

    def set_limits(
        self, *, rpm: int | None = None, per_second: int | None = None, **more: Any
    ) -> None:
        """Change the limits, as POST /_sim/limits does.

        `more` takes SimApi.set_limits' other keywords.
        """
        self.api.set_limits(rpm=rpm, per_second=per_second, **more)

    def set_v1(self, state: str) -> None:
        """Switch the v1 route on, to deprecated or to gone from the next request on.

        This is what POST /_sim/v1?state=… does.
        """
        self.api.set_v1(state)

    def outage(self, seconds: float, mode: str = "refuse") -> None:
        """Start an outage as POST /_sim/outage does; refusing, stop listening for `seconds`."""
        self.api.outage(seconds, mode=mode)
        if mode == "refuse" and self._loop is not None and self._server is not None:
            server = self._server
            self._loop.call_soon_threadsafe(server.pause_listening, seconds)

    def advance(self, seconds: float) -> int:
        """Move the chain's clock forward by `seconds`; only a growing chain adds blocks."""
        return self.api.advance(seconds)

    def truth(self, start_time: int | None = None, end_time: int | None = None) -> dict[str, Any]:
        return self.api.truth(start_time, end_time)


@contextlib.contextmanager
def run_in_thread(config: SimConfig | None = None, **changes: Any) -> Iterator[SimServer]:
    """Serve a simulator from a background thread for the length of a `with` block.

    For example, `with run_in_thread(SimConfig(days=2)) as sim:
    httpx.get(sim.url + "/extended/v1/tx")`.
    """
    config = (config or SimConfig()).with_(**changes) if changes else (config or SimConfig())
    sim = SimServer(config).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimConfig, on_ready: Callable[[str, SimApi], None] | None = None) -> None:
    """Serve in this thread until SIGINT or SIGTERM (the CLI's `stxbf sim serve`)."""
    check_loopback(config.host)
    api = SimApi(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        server = Listener(api, config.host, config.port)
        await server.start()
        if on_ready is not None:
            on_ready(_url(config.host, server.port), api)
        await stop.wait()
        await server.close()

    asyncio.run(main())
