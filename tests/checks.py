"""What a run sent and what it left behind: the evidence tests check after running stxbf.

- `Recorder`: every request the simulator answers (path, parameters, headers), to check what left
  stxbf: no key outside the header, no committed window fetched again (`committed_refetched`, v1
  and v3), no request too early.
- `assert_verified_exact` / `assert_range_exact`: the database holds exactly the chain's tx_ids.
- `fingerprint` / `file_digest` / `tree_modes`: a database, a file or a directory tree, to prove a
  command changed nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from stxbf.simulator import Chain, SimConfig, SimServer
from stxbf.simulator.chain import GENESIS_BLOCK_HEIGHT
from stxbf.store import Store

PAGE_LIMIT = 50


# -- the simulator's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    at: float
    method: str
    target: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def window(self) -> tuple[int, int] | None:
        """(start_time, end_time) of a window page (not the preflight's one-row requests)."""
        if self.params.get("limit") != str(PAGE_LIMIT):
            return None
        if "start_time" not in self.params or "end_time" not in self.params:
            return None
        return int(self.params["start_time"]), int(self.params["end_time"])

    def v3_burn_time(self, chain: Chain) -> int | None:
        """The burn time of the Stacks block a v3 tx page starts at (its cursor's height): a walk
        asks only for pages inside its window's blocks (fetch/v3/source.py)."""
        cursor = self.params.get("cursor")
        if self.path != "/extended/v3/transactions" or not cursor:
            return None
        block = int(cursor.split(":")[0]) - GENESIS_BLOCK_HEIGHT
        return chain.tenure_burn_time[chain.block_tenure[block]]


class Recorder:
    """Wraps `sim.api.handle`: every request the simulator sees, in arrival order."""

    def __init__(self, sim: SimServer) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = sim.api
        original = api.handle

        def handle(
            method: str,
            target: str,
            headers: Any,
            client: str = "127.0.0.1",
            now: float | None = None,
        ) -> Any:
            split = urlsplit(target)
            if not split.path.startswith("/_sim/"):
                request = Request(
                    time.time(),
                    method,
                    target,
                    split.path,
                    dict(parse_qsl(split.query, keep_blank_values=True)),
                    {str(k).lower(): str(v) for k, v in dict(headers).items()},
                )
                with self._lock:
                    self.requests.append(request)
            return original(method, target, headers, client=client, now=now)

        api.handle = handle  # type: ignore[method-assign]

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.requests[mark:])


def committed_refetched(
    recorder: Recorder, mark: int, committed: list[tuple[int, int]], chain: Chain | None = None
) -> list[tuple[int, int]]:
    """Pages requested after `mark` that reach into a window already committed: v1 window pages
    by their times, and (given the simulator's `chain`) v3 tx pages by their cursor's block. A
    later run's windows are cut from the gaps between committed ones, so none may overlap one
    (a window re-cut wider than a committed one is a refetch too)."""

    def inside(span: tuple[int, int]) -> bool:
        return any(start <= span[1] and span[0] <= end for start, end in committed)

    found: list[tuple[int, int]] = []
    for request in recorder.since(mark):
        burn_time = request.v3_burn_time(chain) if chain is not None else None
        span = request.window or (None if burn_time is None else (burn_time, burn_time))
        if span is not None and inside(span):
            found.append(span)
    return found


# -- the database's side -------------------------------------------------------------------------


def assert_verified_exact(db: Path, sim: SimServer) -> int:
    """Every verified window holds exactly the simulator's tx_ids; returns how many there are."""
    with Store.open(db, read_only=True) as store:
        verified = store.windows(state="verified")
        for window in verified:
            stored = store.tx_ids(window.start_time, window.end_time)
            truth = set(sim.chain.tx_ids(window.start_time, window.end_time))
            assert stored == truth, (
                f"window {window.start_time}..{window.end_time}: "
                f"{len(truth - stored)} missing, {len(stored - truth)} extra"
            )
            assert window.rows_stored == window.api_total == len(truth)
        total, distinct = store._con.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
        assert total == distinct, "duplicate tx_ids"
        spans = sorted((w.start_time, w.end_time) for w in store.windows())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start > end, "overlapping windows"
    return len(verified)


def assert_range_exact(db: Path, sim: SimServer) -> set[str]:
    """The whole target range (as the last run planned it) equals the simulator's ground truth."""
    with Store.open(db, read_only=True) as store:
        start = int(store.get_meta("range_start") or 0)
        end = int(store.get_meta("range_end") or 0)
        stored = store.tx_ids(start, end)
    truth = set(sim.chain.tx_ids(start, end))
    missing, extra = truth - stored, stored - truth
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    return stored


def verified_spans(db: Path) -> list[tuple[int, int]]:
    with Store.open(db, read_only=True) as store:
        return [(w.start_time, w.end_time) for w in store.windows(state="verified")]


def fingerprint(db: Path) -> str | None:
    """A digest of what a backfill stored: tx_ids, windows and meta (None: no database)."""
    if not db.exists():
        return None
    with Store.open(db, read_only=True) as store:
        con = store._con
        parts = [
            con.execute(
                "SELECT string_agg(tx_id, ',' ORDER BY tx_id) FROM transactions"
            ).fetchone(),
            con.execute("SELECT * FROM windows ORDER BY start_time").fetchall(),
            con.execute("SELECT * FROM meta ORDER BY key").fetchall(),
        ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def file_digest(path: Path) -> str | None:
    """The bytes of a file (None when it does not exist)."""
    with contextlib.suppress(FileNotFoundError):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return None


def tree_modes(root: Path) -> dict[str, int]:
    """Permission bits of `root` and everything below it."""
    modes = {str(root): root.stat().st_mode & 0o777}
    for path in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            modes[str(path)] = path.lstat().st_mode & 0o777
    return modes


SMALL = SimConfig(days=40, tx_per_day=600, seed=11)  # a small chain the e2e tests share


def arrived_since(sim: SimServer, wall_time: float) -> set[str]:
    """tx_ids of the blocks the growing chain stamped at or after `wall_time` (in the chain's
    clock): what a run that started then may not have seen yet. Derived from the simulator's
    clock, not from a guess at how long a run takes."""
    chain = sim.chain
    since = int(sim.api.chain_now(wall_time))
    first = next((b for b, at in enumerate(chain.block_time) if at >= since), len(chain.block_time))
    start = chain.block_first_tx[first] if first < len(chain.block_time) else len(chain)
    return {chain.tx_id(i) for i in range(start, len(chain))}


def stored_and_truth(home: Path, sim: SimServer) -> tuple[set[str], set[str]]:
    with Store.open(home / "stxbf.duckdb", read_only=True) as store:
        start = int(store.get_meta("range_start") or 0)
        end = int(store.get_meta("range_end") or 0)
        verified = store.windows(state="verified")
        stored = store.tx_ids(start, end)
    assert verified, "no verified window"
    return stored, set(sim.chain.tx_ids(start, end))
