"""Checks a run only passes through on a live chain's edges, reached end to end (in process):
transactions on a window's last second, and offset pages that overlap or leave gaps.

The run's clock and the simulator's are one fixed instant, so the windows the runner cuts are
known: the one just older than the head ends at `head_start - 1` (runner/plan.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from stxbf.codes import ExitCode
from stxbf.runner import Runner
from stxbf.runner.plan import HEAD_SETTLE_SECONDS
from stxbf.simulator import SimApi, SimConfig
from stxbf.simulator.transport import SimTransport
from stxbf.store import Store
from tests.fakes import params

END = 1_750_000_000  # the run's "now" and the chain's end
TARGET_DAYS = 2
HEAD_EDGE = END - HEAD_SETTLE_SECONDS  # the last second of the window before the head


def run_at_end(api: SimApi, home: Path) -> Path:
    """One run, its clock and the simulator's frozen at END; the database's path."""
    p = params(home, target_days=TARGET_DAYS, settle_hours=0)
    transport = SimTransport(api, clock=lambda: float(END), sleep=False)
    report = asyncio.run(Runner(p, transport=transport, clock=lambda: float(END)).run())
    assert report.exit_code == ExitCode.OK, report.message
    return p.db_path


def assert_exact(api: SimApi, db: Path) -> None:
    with Store.open(db, read_only=True) as store:
        start = min(window.start_time for window in store.windows())
        assert store.tx_ids() == set(api.chain.tx_ids(start, END))


def test_transactions_on_a_windows_last_second_are_fetched(tmp_path: Path) -> None:
    """A Bitcoin block exactly at the end of the window before the head: a client asking for
    `end_time - 1` (or treating end_time as exclusive) would leave its transactions out."""
    config = SimConfig(days=TARGET_DAYS + 1, tx_per_day=2000, end_time=END, tenures_at=(HEAD_EDGE,))
    api = SimApi(config, epoch=END)
    on_the_edge = set(api.chain.tx_ids(HEAD_EDGE, HEAD_EDGE))
    assert len(on_the_edge) >= 2  # its tenure change and coinbase, at least
    db = run_at_end(api, tmp_path)
    with Store.open(db, read_only=True) as store:
        ends = {window.end_time for window in store.windows()}
        assert HEAD_EDGE in ends  # the block sits on a window's last second
        assert on_the_edge <= store.tx_ids(HEAD_EDGE, HEAD_EDGE)
    assert_exact(api, db)


def test_a_run_under_overlapping_and_gapped_offset_pages_stays_exact(tmp_path: Path) -> None:
    """Pages that start a few rows early (rows of the page before, again) or late (rows
    skipped), each looking whole, as offset paging does on a live list: only the count of
    distinct transactions against the total tells, and the window is fetched again."""
    config = SimConfig(
        days=TARGET_DAYS + 1,
        tx_per_day=2000,
        end_time=END,
        seed=4,
        fault_rate=0.08,
        fault_kinds=("duplicate", "shift"),
    )
    api = SimApi(config, epoch=END)
    db = run_at_end(api, tmp_path)
    assert api.faults["duplicate"] > 0 and api.faults["shift"] > 0
    assert_exact(api, db)


def test_offset_faults_move_a_page_but_keep_the_offset_asked() -> None:
    clean = SimApi(SimConfig(days=1, tx_per_day=3000, end_time=END), epoch=END)
    target = "/extended/v1/tx?limit=50&offset=100&order=asc&sort_by=block_height"
    ids = [
        tx["tx_id"]
        for offset in (0, 50, 100, 150)
        for tx in orjson.loads(
            clean.handle("GET", target.replace("offset=100", f"offset={offset}"), {}, now=END).body
        )["results"]
    ]
    for kind, direction in (("duplicate", -1), ("shift", 1)):
        api = SimApi(
            SimConfig(days=1, tx_per_day=3000, end_time=END, fault_rate=1.0, fault_kinds=(kind,)),
            epoch=END,
        )
        page = orjson.loads(api.handle("GET", target, {}, now=END).body)
        moved = ids.index(page["results"][0]["tx_id"]) - 100
        assert page["offset"] == 100 and len(page["results"]) == 50
        assert moved * direction in (1, 2, 3), kind
        assert [tx["tx_id"] for tx in page["results"]] == ids[100 + moved : 150 + moved]
        assert api.faults[kind] == 1
