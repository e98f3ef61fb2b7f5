"""An asyncio loop whose clock is virtual: a sleep of a minute takes no time, and the same run
gives the same result on a loaded machine as on an idle one.

When nothing is ready the loop jumps its clock to the next timer instead of waiting for it.
There is no real I/O under it: the simulator answers in-process (`SimTransport`), latency and
pacing are timers. A test reads rates in this clock, never in wall-clock time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)  # the loop's own wake-up pipe, never a wait
        if not ready and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.now += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1_000.0) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = start

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` in virtual time."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
