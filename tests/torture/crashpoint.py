"""Run `stxbf` with a kill -9 planted at one named point of a backfill.

    python tests/torture/crashpoint.py SITE N [stxbf arguments...]

The process SIGKILLs itself at the N-th time it reaches SITE, so nothing gets to clean up (no
`finally`, no atexit, no flush, no lock release), exactly as with `kill -9` or a power cut. If the
site is never reached, stxbf ends normally and the caller sees its ordinary exit code instead of
-9. Sites (each patched around the real code, which still runs):

    preflight      the run's first request (limit=1) is on the wire
    sizing         a window's sizing page (offset 0) is on the wire
    page           one of a window's other pages is on the wire
    page-received  a page has arrived, before the engine has looked at it
    commit         inside a window's commit: rows deleted and inserted, COMMIT not yet sent
    after-commit   a window's commit has returned, before the runner has noted it
    backoff        a failed request's retry backoff is starting
    gate           a 429 has just closed the pacer's gate
    publish        the progress snapshot is half written (its temporary file)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SITES = (
    "preflight",
    "sizing",
    "page",
    "page-received",
    "commit",
    "after-commit",
    "backoff",
    "gate",
    "publish",
)
IN_FLIGHT_SECONDS = 0.02  # long enough for the request to leave; the simulator adds latency


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Trigger:
    def __init__(self, site: str, nth: int) -> None:
        self.site = site
        self.nth = nth
        self.seen = 0

    def hit(self, site: str) -> bool:
        if site != self.site:
            return False
        self.seen += 1
        return self.seen == self.nth


def install(trigger: Trigger) -> None:
    from stxbf import snapshot
    from stxbf.fetch.client import ApiClient
    from stxbf.fetch.pacer import Pacer
    from stxbf.fetch.pages import PageSource
    from stxbf.runner import publisher
    from stxbf.store.db import Store

    tx_page = ApiClient.tx_page

    async def crashing_tx_page(self: ApiClient, **params: Any) -> Any:
        if params.get("limit") == 1:
            site = "preflight"
        elif params.get("offset", 0) == 0:
            site = "sizing"
        else:
            site = "page"
        if trigger.hit(site):
            request = asyncio.ensure_future(tx_page(self, **params))
            await asyncio.sleep(IN_FLIGHT_SECONDS)
            die()
            await request  # pragma: no cover
        response = await tx_page(self, **params)
        if site != "preflight" and trigger.hit("page-received"):
            die()
        return response

    ApiClient.tx_page = crashing_tx_page  # type: ignore[method-assign]

    transaction = Store.transaction
    committing = [False]

    @contextlib.contextmanager
    def crashing_transaction(self: Store) -> Iterator[None]:
        with transaction(self):
            yield
            if committing[0] and trigger.hit("commit"):
                die()

    Store.transaction = crashing_transaction  # type: ignore[method-assign,assignment]

    commit_window = Store.commit_window

    def crashing_commit_window(self: Store, *args: Any, **kwargs: Any) -> int:
        committing[0] = True
        try:
            stored = commit_window(self, *args, **kwargs)
        finally:
            committing[0] = False
        if trigger.hit("after-commit"):
            die()
        return stored

    Store.commit_window = crashing_commit_window  # type: ignore[method-assign]

    before_sleep = PageSource._before_sleep

    def crashing_before_sleep(self: PageSource, state: Any) -> None:
        before_sleep(self, state)
        if trigger.hit("backoff"):
            die()

    PageSource._before_sleep = crashing_before_sleep  # type: ignore[method-assign]

    on_429 = Pacer.on_429

    def crashing_on_429(self: Pacer, retry_after: float | None) -> None:
        on_429(self, retry_after)
        if trigger.hit("gate"):
            die()

    Pacer.on_429 = crashing_on_429  # type: ignore[method-assign]

    publish = snapshot.publish

    def crashing_publish(path: Path, snapshot: Any) -> None:
        if trigger.hit("publish"):
            fd, _tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            text = snapshot.to_json().encode()
            os.write(fd, text[: len(text) // 2])
            die()
        publish(path, snapshot)

    publisher.publish = crashing_publish  # type: ignore[attr-defined]


def main() -> None:
    site, nth, *args = sys.argv[1:]
    if site not in SITES:
        raise SystemExit(f"unknown crash site {site!r}; choose from {', '.join(SITES)}")
    install(Trigger(site, int(nth)))
    from stxbf.cli.main import main as stxbf_main

    sys.argv = ["stxbf", *args]
    stxbf_main()


if __name__ == "__main__":
    main()
