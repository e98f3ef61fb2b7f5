"""Test doubles and the data they serve, shared by several test modules (test modules never
import each other).

- `FakeChain`: an in-memory chain of tenures answering `page()` like the client, with faults;
  `transport_for` serves it over an httpx MockTransport, `recent_chain` ends it now.
- `params`: the runner's RunParams over a tmp data directory.
- `make_db` / `day` / `END`: a database as a run leaves it, over a fixed 10-day range.
- `build_file` / `damage`: a large database file, and 1 MB of noise in its middle.
- `publish_running` / `running_report`: a live runner as status and the monitor see it.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from filelock import FileLock

from stxbf import snapshot
from stxbf.models import BURN_TIME_INDEX, TX_COLUMN_NAMES, Page, Row
from stxbf.paths import DataPaths
from stxbf.process import RunnerProcess
from stxbf.report.status import StatusReport
from stxbf.runner import RunParams
from stxbf.snapshot import DAY, ProgressSnapshot
from stxbf.store import Store, WindowRecord

# -- an in-memory chain --------------------------------------------------------------------------


def make_row(tx_id: str, burn_time: int, height: int, index: int) -> Row:
    row: list[object] = [None] * len(TX_COLUMN_NAMES)
    row[0] = tx_id
    row[BURN_TIME_INDEX] = burn_time
    row[TX_COLUMN_NAMES.index("block_height")] = height
    row[TX_COLUMN_NAMES.index("tx_index")] = index
    return tuple(row)


@dataclass
class FakeChain:
    """Tenures of ~`per_tenure` txs sharing one burn time, 600 s apart (post-Nakamoto)."""

    seed: int = 1
    tenures: int = 200
    per_tenure: int = 60
    start: int = 1_700_000_000
    rows: list[Row] = field(default_factory=list)
    requests: int = 0
    faults: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        height = 1
        for tenure in range(self.tenures):
            burn = self.start + tenure * 600
            for index in range(rng.randint(1, self.per_tenure * 2)):
                if index % 7 == 0:
                    height += 1
                self.rows.append(make_row(f"0x{len(self.rows):064x}", burn, height, index))
            height += 1
        self._rng = rng

    @property
    def end(self) -> int:
        return self.start + self.tenures * 600

    def grow(self, count: int) -> None:
        """Append txs to the newest tenure (same burn time), as the chain head does."""
        last = self.rows[-1]
        burn = last[BURN_TIME_INDEX]
        height = last[TX_COLUMN_NAMES.index("block_height")] + 1
        for index in range(count):
            self.rows.append(make_row(f"0x{len(self.rows):064x}", burn, height, index))

    def ids(self, start: int, end: int) -> set[str]:
        return {row[0] for row in self.rows if start <= row[BURN_TIME_INDEX] <= end}

    async def page(
        self, *, start_time: int | None, end_time: int | None, offset: int = 0, limit: int = 50
    ) -> Page:
        self.requests += 1
        await asyncio.sleep(0)
        times = [row[BURN_TIME_INDEX] for row in self.rows]
        low = bisect.bisect_left(times, start_time or 0)
        high = bisect.bisect_right(times, end_time if end_time is not None else 2**62)
        matching = self.rows[low:high]
        results = matching[offset : offset + limit]
        if self._rng.random() < self.faults.get("short", 0.0) and results:
            results = results[: len(results) // 2]
        if self._rng.random() < self.faults.get("drift", 0.0):
            self.grow(3)
        return Page(total=len(matching), offset=offset, limit=limit, rows=list(results))


def as_json(row: Row) -> dict[str, object]:
    """A fake chain's row as the API writes a v1 coinbase, in the API's own field names
    (src/api/schemas/v1/entities/transactions.ts; tests/fixtures/realapi/v1_tx_page.json is a
    real one), not the client's column names: a client that misread a field fails here."""
    height, burn_time = row[TX_COLUMN_NAMES.index("block_height")], row[BURN_TIME_INDEX]
    return {
        "tx_id": row[0],
        "tx_type": "coinbase",
        "tx_status": "success",
        "nonce": 0,
        "fee_rate": "0",
        "sender_address": "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
        "sponsored": False,
        "block_hash": f"0x{height:064x}",
        "block_height": height,
        "block_time": burn_time,
        "burn_block_time": burn_time,
        "burn_block_height": 900_000 + (burn_time - 1_700_000_000) // 600,
        "canonical": True,
        "microblock_canonical": True,
        "tx_index": row[TX_COLUMN_NAMES.index("tx_index")],
        "event_count": 0,
        "coinbase_payload": {"data": "0x00", "alt_recipient": None, "vrf_proof": None},
    }


def transport_for(chain: FakeChain) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 20))
        rows = chain.rows
        if "start_time" in q:
            rows = [r for r in rows if r[BURN_TIME_INDEX] >= int(q["start_time"])]
        if "end_time" in q:
            rows = [r for r in rows if r[BURN_TIME_INDEX] <= int(q["end_time"])]
        if q.get("sort_by") == "burn_block_time":
            rows = sorted(rows, key=lambda r: r[BURN_TIME_INDEX])
        body = {
            "limit": limit,
            "offset": offset,
            "total": len(rows),
            "results": [as_json(r) for r in rows[offset : offset + limit]],
        }
        return httpx.Response(200, content=orjson.dumps(body))

    return httpx.MockTransport(handler)


def params(tmp_path: Path, **kwargs: object) -> RunParams:
    db = tmp_path / "data" / "stxbf.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    defaults: dict[str, object] = dict(
        api_url="http://127.0.0.1:1",
        api_key=None,
        paths=DataPaths.of(db.parent, db),
        target_days=3,
        rpm=600000,
        concurrency=4,
    )
    defaults.update(kwargs)
    return RunParams(**defaults)  # type: ignore[arg-type]


def recent_chain(days: float = 2.0, seed: int = 1) -> FakeChain:
    now = int(time.time())
    tenures = int(days * 86400 / 600)
    return FakeChain(seed=seed, tenures=tenures, per_tenure=5, start=now - tenures * 600)


# -- databases as a run leaves them ------------------------------------------------------------


NOW = 1_800_000_000
END = NOW - 100


def make_db(
    path: Path,
    windows: list[tuple[int, int, str]],
    *,
    target_days: int = 10,
    chain_start: int | None = None,
    txs_per_window: int = 2,
) -> None:
    """A database as a run leaves it: meta, window checkpoints and their transactions."""
    with Store.open(path) as store:
        store.set_meta("target_days", target_days)
        store.set_meta("range_end", END)
        store.set_meta("range_start", END - target_days * DAY + 1)
        store.set_meta("chain_start", chain_start)
        for n, (start, end, kind) in enumerate(windows):
            rows = [tx_row(f"{n}-{i}", start + i, f"SP{i % 3}") for i in range(txs_per_window)]
            total = len(rows) + (1 if kind == "incomplete" else 0)
            store.commit_window(WindowRecord(start, end, total, len(rows), "verified", 1), rows)


def tx_row(tx_id: str, when: int, sender: str) -> tuple[Any, ...]:
    return (
        tx_id, "token_transfer", "success", sender, None, 0, 180, 1, "0x", when, 1, when, 0, True,
        0, "SP9", 1, None, None, None, None, None, None,
    )  # fmt: skip


def paths(tmp_path: Path) -> DataPaths:
    """The files of a backfill whose data directory is `tmp_path` (database `stxbf.duckdb`)."""
    return DataPaths.of(tmp_path)


def day(n: int) -> tuple[int, int]:
    """Bounds of day n of the 10-day range (0 = oldest)."""
    first = END + 1 - 10 * DAY
    return first + n * DAY, first + (n + 1) * DAY - 1


def build_file(path: Path, windows: int = 100, per_window: int = 5000) -> None:
    """A file of `windows` verified windows, large enough that 1 MB of noise hits its rows."""
    with Store.open(path) as store:
        store._con.execute(
            f"""
            INSERT INTO transactions (tx_id, tx_type, sender_address, block_height,
                burn_block_time, tx_index, function_name)
            SELECT '0x' || md5(i::VARCHAR) || md5((i + 1)::VARCHAR), 'contract_call',
                'SP' || md5((i % 977)::VARCHAR), i // 20, 1000000 + i, i % 20,
                md5((i * 7)::VARCHAR)
            FROM range({windows * per_window}) AS t(i)
            """
        )
        store._con.executemany(
            "INSERT INTO windows (start_time, end_time, api_total, rows_stored, state, pages, "
            "fetched_at) VALUES (?, ?, ?, ?, 'verified', 40, 0)",
            [
                [1000000 + w * per_window, 1000000 + (w + 1) * per_window - 1, per_window] * 1
                + [per_window]
                for w in range(windows)
            ],
        )
        store.checkpoint()


def damage(path: Path) -> None:
    """1 MB of random bytes into the middle of the file (dd conv=notrunc)."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(1 << 20))


# -- a live runner -----------------------------------------------------------------------------


def publish_running(db: Path, *, age: float) -> FileLock:
    db.parent.mkdir(parents=True, exist_ok=True)
    files = DataPaths.of(db.parent, db)
    lock = FileLock(str(files.lock))
    lock.acquire(timeout=0)
    info = {"pid": os.getpid(), "started_at": time.time() - 60, "host": os.uname().nodename}
    files.runner_record.write_text(json.dumps(info))
    now = time.time()
    snapshot.publish(
        files.progress,
        ProgressSnapshot(
            pid=os.getpid(), started_at=now - 60, updated_at=now - age, phase="fetching",
            api_url="http://127.0.0.1:1", target_days=10, range_start=int(now) - 10 * DAY + 1,
            range_end=int(now), coverage=[1.0] * 4 + [0.0] * 6,
        ),
    )  # fmt: skip
    return lock


def running_report(days: int) -> StatusReport:
    return StatusReport(
        state="running",
        label="Running",
        exit_code=5,
        source="progress",
        checked_at=time.time(),
        db_path="/data/stxbf.duckdb",
        target_days=30,
        days_verified=days,
        percent=100.0 * days / 30,
        coverage="V" * days + "." * (30 - days),
        transactions=1234 * days,
        runner=RunnerProcess(alive=True, pid=42, phase="fetching", heartbeat_age=1.0),
        rate_rpm=480.0,
        limit_rpm=500.0,
        eta_seconds=600.0,
    )
