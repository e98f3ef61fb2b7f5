"""The simulator on real loopback HTTP: `run_in_thread(config)` serves from a background thread
for tests, `serve_forever` in the foreground for the CLI (`stxbf sim serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from stxbf.simulator.api import SimApi
from stxbf.simulator.chain import Chain
from stxbf.simulator.config import SimConfig, check_loopback
from stxbf.simulator.listener import Listener


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimServer:
    """A running simulator in a background thread (see `run_in_thread`)."""

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
        """Like POST /_sim/limits; `more` takes SimApi.set_limits' other keywords."""
        self.api.set_limits(rpm=rpm, per_second=per_second, **more)

    def set_v1(self, state: str) -> None:
        """Like POST /_sim/v1?state=…: on, deprecated or gone, from the next request on."""
        self.api.set_v1(state)

    def outage(self, seconds: float, mode: str = "refuse") -> None:
        """Like POST /_sim/outage: in refuse mode, stop listening for `seconds`."""
        self.api.outage(seconds, mode=mode)
        if mode == "refuse" and self._loop is not None and self._server is not None:
            server = self._server
            self._loop.call_soon_threadsafe(server.pause_listening, seconds)

    def advance(self, seconds: float) -> int:
        """Jump the chain clock forward `seconds` (needs growth > 0 to add anything)."""
        return self.api.advance(seconds)

    def truth(self, start_time: int | None = None, end_time: int | None = None) -> dict[str, Any]:
        return self.api.truth(start_time, end_time)


@contextlib.contextmanager
def run_in_thread(config: SimConfig | None = None, **changes: Any) -> Iterator[SimServer]:
    """`with run_in_thread(SimConfig(days=2)) as sim: httpx.get(sim.url + "/extended/v1/tx")`."""
    config = (config or SimConfig()).with_(**changes) if changes else (config or SimConfig())
    sim = SimServer(config).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimConfig, on_ready: Callable[[str, SimApi], None] | None = None) -> None:
    """Serve in this thread until SIGINT/SIGTERM (the CLI's `stxbf sim serve`)."""
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
