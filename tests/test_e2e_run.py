"""`stxbf run` end to end over real loopback HTTP against the simulator: the stored set of tx_ids
equals the simulator's ground truth — plainly, under faults, under chain growth, after kill -9,
with two runs racing for the lock, and after SIGTERM/SIGINT.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stxbf.cli.run import execute
from stxbf.codes import ExitCode
from stxbf.settings import load_settings
from stxbf.simulator import SimServer, run_in_thread
from stxbf.simulator.config import FAULT_KINDS, OFFSET_FAULTS
from stxbf.snapshot import read
from stxbf.store import Store
from tests.checks import (
    SMALL,
    Recorder,
    arrived_since,
    committed_refetched,
    stored_and_truth,
    verified_spans,
)
from tests.helpers import cron_env, kill_9_runs, retry_until, spawn, stxbf, wait_for_snapshot

pytestmark = pytest.mark.slow  # `stxbf run` end to end, seconds each


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with run_in_thread(SMALL) as server:
        yield server


def run_inline(home: Path, sim: SimServer, **overrides: object) -> ExitCode:
    settings = load_settings(api_url=sim.url, home=home, **overrides)
    return execute(settings, interactive=False).exit_code


def test_exactly_the_simulators_transactions_for_30_days(
    isolated_env: Path, sim: SimServer
) -> None:
    assert run_inline(isolated_env, sim, target_days=30) == ExitCode.OK
    stored, truth = stored_and_truth(isolated_env, sim)
    assert stored == truth
    with Store.open(isolated_env / "stxbf.duckdb", read_only=True) as store:
        windows = store.windows()
    spans = sorted((w.start_time, w.end_time) for w in windows)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
    assert {w.state for w in windows} <= {"verified", "open"}
    assert sum(w.api_total for w in windows) == len(truth)


def test_exact_under_every_fault_kind_and_never_early_after_429(isolated_env: Path) -> None:
    """Every transport fault at 15 %. The offset faults (`duplicate`, `shift`) have their own
    tests (tests/fetch/test_window_edges.py): at 15 % of pages nearly every 100-page window of this
    run would fail its count, and an iteration that verifies no window ends the run incomplete."""
    kinds = tuple(kind for kind in FAULT_KINDS if kind not in OFFSET_FAULTS)
    config = SMALL.with_(fault_rate=0.15, fault_kinds=kinds, stall_seconds=3.0, rpm=6000, seed=12)
    with run_in_thread(config) as sim:
        settings = load_settings(api_url=sim.url, home=isolated_env, target_days=20)
        settings = settings.model_copy(update={"request_timeout": 1.0})
        assert execute(settings, interactive=False).exit_code == ExitCode.OK
        stored, truth = stored_and_truth(isolated_env, sim)
        stats = sim.stats()
    assert stored == truth
    assert stats["faults_total"] > 20
    assert stats["early_requests"] == 0


def test_rate_limit_is_followed_without_early_requests(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(rpm=1200, latency_ms=20, days=6, seed=13)) as sim:
        assert run_inline(isolated_env, sim, target_days=5) == ExitCode.OK
        stats = sim.stats()
        stored, truth = stored_and_truth(isolated_env, sim)
    assert stored == truth
    assert stats["early_requests"] == 0
    assert stats["status_429"] <= max(1, stats["requests"] // 100)


def test_growth_while_running_then_the_next_run_completes_the_head(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(growth=40.0, days=8, seed=14)) as sim:
        assert run_inline(isolated_env, sim, target_days=7) == ExitCode.OK
        with Store.open(isolated_env / "stxbf.duckdb", read_only=True) as store:
            verified = store.windows(state="verified")
            for window in verified:  # every verified window is exact, whatever arrived meanwhile
                got = store.tx_ids(window.start_time, window.end_time)
                assert got == set(sim.chain.tx_ids(window.start_time, window.end_time))
        time.sleep(1.0)  # more blocks land in the current tenure (same burn_block_time)
        second_run = time.time()
        assert run_inline(isolated_env, sim, target_days=7) == ExitCode.OK
        sim.set_faults(0.0)
        stored, truth = stored_and_truth(isolated_env, sim)
        # only what arrived after the second run started can be missing
        assert truth - stored <= arrived_since(sim, second_run)


def test_chain_start_inside_the_target_is_reported_and_reached(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(days=5, seed=15)) as sim:
        report = execute(
            load_settings(api_url=sim.url, home=isolated_env, target_days=30), interactive=False
        )
        stored, truth = stored_and_truth(isolated_env, sim)
    assert report.exit_code == ExitCode.OK
    assert "chain's start" in report.message
    assert stored == truth
    snapshot = read(isolated_env / "stxbf.duckdb.progress.json")
    assert snapshot is not None and snapshot.days_verified == 30


def test_resume_after_kill_9_at_random_moments(isolated_env: Path) -> None:
    """Each run is killed once it has committed 1-3 windows; the next never fetches a committed
    window again, and the last leaves exactly the chain's transactions, each once."""
    rng = random.Random(5)
    config = SMALL.with_(days=25, tx_per_day=1500, latency_ms=15, rpm=2400, seed=16)
    db, progress = isolated_env / "stxbf.duckdb", isolated_env / "stxbf.duckdb.progress.json"
    with run_in_thread(config) as sim:
        recorder = Recorder(sim)
        env = cron_env(STXBF_API_URL=sim.url, STXBF_TARGET_DAYS="20")
        committed: list[tuple[int, int]] = []
        mark = recorder.mark()
        for _ in kill_9_runs(env, rng, times=4, progress=progress, commits=(1, 2)):
            assert committed_refetched(recorder, mark, committed) == []
            now = verified_spans(db)
            assert len(now) > len(committed)  # the killed run had committed something
            committed, mark = now, recorder.mark()
        final = stxbf("run", env=env)
        assert final.returncode == 0, final.stderr
        refetched = committed_refetched(recorder, mark, committed)
        stored, truth = stored_and_truth(isolated_env, sim)
    assert refetched == []
    assert stored == truth
    with Store.open(db, read_only=True) as store:
        count = store._con.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
    assert count is not None and count[0] == count[1]


def test_a_second_run_exits_at_once_with_the_lock_code(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(latency_ms=50, rpm=600)) as sim:
        env = {"STXBF_API_URL": sim.url, "STXBF_TARGET_DAYS": "30"}
        first = spawn("run", env=cron_env(**env))
        try:
            runner_json = isolated_env / "stxbf.duckdb.runner.json"
            retry_until(runner_json.exists, what="the first run to take the lock")
            second = stxbf("run", env=cron_env(**env))
            assert second.returncode == ExitCode.LOCKED
            assert f"pid {first.pid}" in second.stderr
            assert "Traceback" not in second.stderr
            # "at once": the second run ended while the first still holds the lock, so it did
            # not wait for it (and the first run is untouched)
            assert first.poll() is None
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=20)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_checkpoint_and_exit(isolated_env: Path, signum: int) -> None:
    with run_in_thread(SMALL.with_(latency_ms=30, rpm=3000)) as sim:
        env = {"STXBF_API_URL": sim.url, "STXBF_TARGET_DAYS": "30"}
        proc = spawn("run", env=cron_env(**env))
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda snap: snap.counters.windows_verified >= 2, proc=proc)
        proc.send_signal(signum)
        # The bound only catches a hang; the stop itself shows in the exit code and the phase.
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert "Traceback" not in err
        with Store.open(isolated_env / "stxbf.duckdb", read_only=True) as store:
            verified = store.windows(state="verified")
            assert verified
            for window in verified:
                assert store.tx_ids(window.start_time, window.end_time) == set(
                    sim.chain.tx_ids(window.start_time, window.end_time)
                )
        snap = read(progress)
        assert snap is not None and snap.phase == "interrupted" and snap.exit_code == 130


def test_v1_switched_off_is_a_clear_error(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(v1_gone=True)) as sim:
        done = stxbf("run", "--source", "v1", env=cron_env(STXBF_API_URL=sim.url))
    assert done.returncode == ExitCode.ERROR
    assert "410" in done.stderr and "switched off" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_key_when_required_is_a_clear_error(isolated_env: Path) -> None:
    with run_in_thread(SMALL.with_(require_key=True)) as sim:
        refused = stxbf("run", env=cron_env(STXBF_API_URL=sim.url))
        assert refused.returncode == ExitCode.ERROR
        assert "API key" in refused.stderr
        ok = stxbf(
            "run", "--target-days", "2", env=cron_env(STXBF_API_URL=sim.url, HIRO_API_KEY="sim-key")
        )
        assert ok.returncode == ExitCode.OK, ok.stderr
