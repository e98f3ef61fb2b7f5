"""`stxbf run` on the v3 source end to end, in subprocesses over loopback HTTP (slow)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stxbf.simulator import run_in_thread
from stxbf.store import Store
from tests.checks import SMALL, Recorder, committed_refetched, stored_and_truth, verified_spans
from tests.helpers import LOG_LINE, cron_env, kill_9_runs, stxbf

pytestmark = pytest.mark.slow


def test_resume_after_kill_9_during_v3_walks(isolated_env: Path) -> None:
    """As on v1: each run is killed once it has committed 1-2 windows, and the next never walks
    a committed window's blocks again (its v3 pages' cursors say where they are)."""
    rng = random.Random(7)
    config = SMALL.with_(days=25, tx_per_day=1500, latency_ms=15, rpm=2400, seed=17, v1="gone")
    db, progress = isolated_env / "stxbf.duckdb", isolated_env / "stxbf.duckdb.progress.json"
    with run_in_thread(config) as sim:
        recorder = Recorder(sim)
        env = cron_env(STXBF_API_URL=sim.url, STXBF_TARGET_DAYS="20")
        committed: list[tuple[int, int]] = []
        mark = recorder.mark()
        for _ in kill_9_runs(env, rng, times=4, progress=progress, commits=(1, 2)):
            assert committed_refetched(recorder, mark, committed, sim.chain) == []
            now = verified_spans(db)
            assert len(now) > len(committed)  # the killed run had committed something
            committed, mark = now, recorder.mark()
        final = stxbf("run", env=env, timeout=180)
        assert final.returncode == 0, final.stderr
        refetched = committed_refetched(recorder, mark, committed, sim.chain)
        stored, truth = stored_and_truth(isolated_env, sim)
        gone = sim.stats()["by_status"].get("410", 0)
    assert refetched == []
    assert stored == truth
    with Store.open(db, read_only=True) as store:
        count = store._con.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
        sources = store.window_sources()
    assert count is not None and count[0] == count[1]
    assert set(sources) == {"v3"}
    assert 0 < gone <= 5  # each run (auto) asked v1 once, in its preflight, then went on with v3


def test_status_json_names_the_sources(isolated_env: Path) -> None:
    import json

    with run_in_thread(SMALL.with_(days=4, seed=18, v1="gone")) as sim:
        env = {"STXBF_API_URL": sim.url, "STXBF_TARGET_DAYS": "3"}
        run = stxbf("run", env=cron_env(**env))
        assert run.returncode == 0, run.stderr
    status = stxbf("status", "--json", env=cron_env(**env))
    data = json.loads(status.stdout)
    assert set(data["sources"]) == {"v3"} and data["sources"]["v3"] > 0
    assert data["run_source"] == "v3"
    shown = stxbf("status", env=cron_env(**env)).stdout
    assert "Windows by source: v3" in shown and "(the run's source: v3)" in shown


def test_v1_switched_off_mid_run_by_sim_serve_ends_on_v3_exactly(isolated_env: Path) -> None:
    """The second path to the mid-run switch, end to end: `stxbf sim serve --v1-gone-after`
    turns v1 off under a running `stxbf run` (processes both, over loopback HTTP)."""
    argv = [sys.executable, "-m", "stxbf", "sim", "serve", "--days", "4", "--tx-per-day", "1500"]
    argv += ["--seed", "35", "--v1-gone-after", "40"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[3]
        run = stxbf("run", env=cron_env(STXBF_API_URL=url, STXBF_TARGET_DAYS="3"), timeout=180)
        assert run.returncode == 0, run.stderr
        warnings = [line for line in run.stderr.splitlines() if LOG_LINE.match(line)]
        warnings = [line for line in warnings if " WARNING " in line]
        assert len(warnings) == 1 and "410" in warnings[0] and "switching" in warnings[0]
        with Store.open(isolated_env / "stxbf.duckdb", read_only=True) as store:
            start = int(store.get_meta("range_start") or 0)
            end = int(store.get_meta("range_end") or 0)
            stored = store.tx_ids(start, end)
            sources = store.window_sources()
        params = {"start_time": start, "end_time": end, "ids": 1}
        truth = httpx.get(f"{url}/_sim/truth", params=params).json()
        assert httpx.get(f"{url}/_sim/v1").json() == {"v1": "gone"}
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=10)
    assert stored == set(truth["tx_ids"])
    assert set(sources) == {"v1", "v3"}  # the windows v1 filled stayed committed
