"""The long versions: `nox -s torture` (or `pytest -m torture`). Minutes, not seconds.

- crash: a kill -9 at every named site of crashpoint.py, then at 15 random moments; after each the
  database opens with every verified window exact; no committed window is ever fetched again; the
  pages lost per crash stay within the engine's in-flight bound; the final run is exact.
- signals: SIGTERM / SIGINT at 10 random moments: exit 130 within 5 s, windows exact.
- faults: every kind alone at 15 % with the real backoff; all mixed at 25 % with growth; every
  kind made persistent: one clear line and exit 1 (3 for pages that stay short), windows kept.
- drift: growth, faults and kills together; the next run completes the head.
- outage: two minutes unreachable (refuse), then back; shorter ones as drop and 503; an outage
  longer than --give-up-after ends the run cleanly.
- concurrency: five runs at once on one database; `status`/`health`/`logs` hammered by six
  threads; cron firing `stxbf run` every second while a tmux run is active.
- disk: files capped at several sizes (RLIMIT_FSIZE); a real full tmpfs; the data directory
  turning read-only under a large run; a reader that never lets go.

Figures are printed under "torture figures" at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from stxbf.codes import ExitCode
from stxbf.simulator import SimConfig, SimServer, run_in_thread
from stxbf.snapshot import read
from stxbf.store import Store
from tests.checks import Recorder, assert_range_exact, assert_verified_exact, verified_spans
from tests.helpers import (
    assert_one_line_error,
    crash_run,
    cron_env,
    limit_file_size,
    read_only_dir,
    retry_until,
    spawn,
    stxbf,
    wait_for_snapshot,
)
from tests.torture.crashpoint import SITES

pytestmark = [pytest.mark.torture, pytest.mark.timeout(1800)]

BIG = SimConfig(days=32, tx_per_day=3000, seed=61, latency_ms=15)  # ~90k tx in 30 days
CONCURRENCY = 8
MAX_OPEN_WINDOWS = CONCURRENCY + 4  # the engine's bound (fetch/engine.py)
PAGES_PER_WINDOW = 5000 // 50 + 1  # max_window_rows / page size, plus a short-page retry
# At kill time at most MAX_OPEN_WINDOWS are being paged, two wait for their commit, one commits.
WASTE_BOUND = (MAX_OPEN_WINDOWS + 3) * PAGES_PER_WINDOW


def run_args(sim: SimServer, *extra: str, days: int = 30) -> list[str]:
    args = ["run", "--api-url", sim.url, "--target-days", str(days)]
    return [*args, "--concurrency", str(CONCURRENCY), *extra]


def db_of(home: Path) -> Path:
    return home / "stxbf.duckdb"


def all_spans(db: Path) -> set[tuple[int, int]]:
    if not db.exists():
        return set()
    with Store.open(db, read_only=True) as store:
        return {(w.start_time, w.end_time) for w in store.windows()}


class CrashLedger:
    """Per crash: pages fetched for windows that did not survive it; and no refetching."""

    def __init__(self, sim: SimServer, db: Path) -> None:
        self.recorder = Recorder(sim)
        self.db = db
        self.waste: list[int] = []
        self.committed: set[tuple[int, int]] = set()  # verified before some crash
        self.kills = 0

    def crashed(self, mark: int) -> None:
        kept = all_spans(self.db)
        pages = [r.window for r in self.recorder.since(mark) if r.window is not None]
        lost = [w for w in pages if w not in kept]
        self.waste.append(len(lost))
        self.kills += 1
        self.committed |= set(verified_spans(self.db)) if self.db.exists() else set()

    def refetched(self, mark: int) -> list[tuple[int, int]]:
        return [
            r.window
            for r in self.recorder.since(mark)
            if r.window is not None
            and any(s <= r.window[0] and r.window[1] <= e for s, e in self.committed)
        ]


# -- crash ---------------------------------------------------------------------------------------


def test_kill_9_at_every_site_and_15_random_moments(isolated_env: Path, figures: Any) -> None:
    rng = random.Random(7)
    db = db_of(isolated_env)
    with run_in_thread(BIG) as sim:
        ledger = CrashLedger(sim, db)
        site_faults = {"backoff": ("503", "drop", "stall"), "gate": ("429",)}
        env = cron_env(STXBF_REQUEST_TIMEOUT="1")
        for site in SITES:
            sim.set_faults(0.15 if site in site_faults else 0.0, site_faults.get(site))
            mark = ledger.recorder.mark()
            nth = {"preflight": 1, "publish": 3}.get(site, rng.randint(2, 6))
            done = crash_run(site, nth, *run_args(sim), env=env)
            assert done.returncode == -signal.SIGKILL, f"{site} never reached: {done.stderr}"
            assert ledger.refetched(mark) == []
            ledger.crashed(mark)
            if db.exists():
                assert_verified_exact(db, sim)
        sim.set_faults(0.1, ("500", "503", "drop", "truncate", "short"))
        for _ in range(15):
            mark = ledger.recorder.mark()
            proc = spawn(*run_args(sim), env=env)
            time.sleep(rng.uniform(0.3, 2.5))
            if proc.poll() is not None:
                break  # finished before the kill: nothing left to torture
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert ledger.refetched(mark) == []
            ledger.crashed(mark)
            assert_verified_exact(db, sim)
        sim.set_faults(0.0)
        mark = ledger.recorder.mark()
        final = stxbf(*run_args(sim), env=env, timeout=600)
        assert final.returncode == ExitCode.OK, final.stderr
        assert ledger.refetched(mark) == []
        stored = assert_range_exact(db, sim)
        assert_verified_exact(db, sim)
    figures("kills", ledger.kills)
    figures("transactions exact", len(stored))
    figures("pages lost per crash (mean / max)", f"{mean(ledger.waste):.0f} / {max(ledger.waste)}")
    figures("in-flight bound (pages)", WASTE_BOUND)
    assert ledger.kills >= 20
    assert max(ledger.waste) <= WASTE_BOUND


def catches_signals(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Wait until the interpreter in `proc` catches SIGINT (its `SigCgt` mask in /proc).

    Between exec and Python's own start a signal still has its default action and kills the
    process without a word. That is the kernel's, not stxbf's, so the random moments below are
    counted from when Python can see a signal; on a machine whose disk stalls a fresh process,
    that can be later than the shortest moment.
    """
    status = Path(f"/proc/{proc.pid}/status")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if (
                    line.startswith("SigCgt:")
                    and int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1
                ):
                    return
        time.sleep(0.005)


def test_sigterm_and_sigint_at_10_random_moments(isolated_env: Path, figures: Any) -> None:
    rng = random.Random(8)
    db = db_of(isolated_env)
    stops: list[float] = []
    with run_in_thread(BIG.with_(fault_rate=0.1, stall_seconds=30)) as sim:
        env = cron_env(STXBF_REQUEST_TIMEOUT="2")
        for i in range(10):
            proc = spawn(*run_args(sim), env=env)
            signum = signal.SIGTERM if i % 2 else signal.SIGINT
            catches_signals(proc)
            time.sleep(rng.uniform(0.2, 3.0))
            if proc.poll() is not None:
                break
            sent = time.monotonic()
            proc.send_signal(signum)
            _out, err = proc.communicate(timeout=30)
            stops.append(time.monotonic() - sent)
            assert proc.returncode == ExitCode.INTERRUPTED, err
            assert "Traceback" not in err
            if db.exists():
                assert_verified_exact(db, sim)
        sim.set_faults(0.0)
        final = stxbf(*run_args(sim), env=env, timeout=600)
        assert final.returncode == ExitCode.OK, final.stderr
        assert_range_exact(db, sim)
    figures("signals", len(stops))
    figures("seconds to stop (mean / max)", f"{mean(stops):.2f} / {max(stops):.2f}")
    assert len(stops) >= 8
    assert max(stops) < 5.0


# -- faults ----------------------------------------------------------------------------------------

ALL_KINDS = ["500", "502", "503", "504", "stall", "drop", "truncate", "malformed", "short", "429"]
MEDIUM = SimConfig(days=7, tx_per_day=1500, seed=62, stall_seconds=5.0)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_fault_kind_at_15_percent_with_the_real_backoff(
    kind: str, isolated_env: Path, figures: Any
) -> None:
    with run_in_thread(MEDIUM.with_(fault_rate=0.15, fault_kinds=(kind,))) as sim:
        env = cron_env(STXBF_REQUEST_TIMEOUT="2")
        started = time.monotonic()
        done = stxbf("run", "--api-url", sim.url, "--target-days", "6", env=env, timeout=900)
        took = time.monotonic() - started
        stats = sim.stats()
        assert done.returncode == ExitCode.OK, done.stderr
        assert_range_exact(db_of(isolated_env), sim)
        assert_verified_exact(db_of(isolated_env), sim)
    figures(f"{kind}: faults / requests / seconds", f"{stats['faults'][kind]} / "
            f"{stats['requests']} / {took:.0f}")  # fmt: skip
    assert stats["faults"][kind] >= 5
    assert stats["early_requests"] == 0


def test_every_fault_mixed_at_25_percent_with_growth(isolated_env: Path, figures: Any) -> None:
    """From the first window on (a failing first request is the next test's subject)."""
    config = MEDIUM.with_(growth=20.0, rpm=3000, per_second=150)  # a burst cap
    with run_in_thread(config) as sim:
        env = cron_env(STXBF_REQUEST_TIMEOUT="2")
        proc = spawn("run", "--api-url", sim.url, "--target-days", "6", env=env)
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda s: s.counters.windows_verified >= 1, proc=proc)
        sim.set_faults(0.25)
        _out, err = proc.communicate(timeout=1200)
        stats = sim.stats()
        assert proc.returncode == ExitCode.OK, err
        assert_verified_exact(db_of(isolated_env), sim)
    figures("faults / requests / 429s", f"{sum(stats['faults'].values())} / "
            f"{stats['requests']} / {stats['status_429']}")  # fmt: skip
    assert stats["early_requests"] == 0


def test_an_api_failing_when_the_run_starts_is_waited_out(isolated_env: Path) -> None:
    with run_in_thread(MEDIUM.with_(days=3)) as sim:
        sim.outage(20, mode="503")  # reachable, but failing, for 20 s
        done = stxbf("run", "--api-url", sim.url, "--target-days", "2", timeout=300)
        assert done.returncode == ExitCode.OK, done.stderr
        assert_range_exact(db_of(isolated_env), sim)


REASONS = {  # what the one error line names, per persistent fault
    "500": "HTTP 500",
    "502": "HTTP 502",
    "503": "HTTP 503",
    "504": "HTTP 504",
    "stall": "timed out",
    "drop": "connection failed",
    "truncate": "connection failed",
    "malformed": "bad page body",
    "429": "rate-limited (429)",
    "short": "",
}


@pytest.mark.parametrize("kind", list(REASONS))
def test_every_fault_kind_made_persistent_ends_cleanly(kind: str, isolated_env: Path) -> None:
    env = cron_env(STXBF_REQUEST_TIMEOUT="1")
    with run_in_thread(MEDIUM.with_(latency_ms=10)) as sim:
        proc = spawn("run", "--api-url", sim.url, "--target-days", "6", "--rpm", "3000",
                     "--give-up-after", "5", "--concurrency", "4", env=env)  # fmt: skip
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda s: s.counters.windows_verified >= 2, proc=proc)
        sim.set_faults(1.0, (kind,))
        try:
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert "Traceback" not in err
        if kind == "short":  # every page short: windows stay unverified, the run says so
            assert result.returncode == ExitCode.INCOMPLETE, err
            assert "no window could be verified" in out + err
        else:
            line = assert_one_line_error(result, ExitCode.ERROR)
            assert "cannot reach the API" in line and REASONS[kind] in line
        assert assert_verified_exact(db_of(isolated_env), sim) >= 2


# -- drift ---------------------------------------------------------------------------------------


def test_growth_faults_and_kills_together(isolated_env: Path, figures: Any) -> None:
    rng = random.Random(9)
    db = db_of(isolated_env)
    config = BIG.with_(days=12, growth=60.0, fault_rate=0.1, fault_kinds=("503", "drop", "short"))
    with run_in_thread(config) as sim:
        for _ in range(6):
            proc = spawn(*run_args(sim, days=10))
            time.sleep(rng.uniform(0.5, 2.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            if db.exists():
                assert_verified_exact(db, sim)
        first = stxbf(*run_args(sim, days=10), timeout=600)
        assert first.returncode == ExitCode.OK, first.stderr
        assert_verified_exact(db, sim)
        time.sleep(2.0)
        sim.set_faults(0.0)
        second = stxbf(*run_args(sim, days=10), timeout=600)
        assert second.returncode == ExitCode.OK, second.stderr
        assert_verified_exact(db, sim)
        with Store.open(db, read_only=True) as store:
            start = int(store.get_meta("range_start") or 0)
            end = int(store.get_meta("range_end") or 0)
            stored = store.tx_ids(start, end)
        truth = set(sim.chain.tx_ids(start, end))
    assert stored <= truth
    figures("arrived after the last run paged the head", len(truth - stored))
    assert len(truth - stored) <= 60 * 5


# -- outages -------------------------------------------------------------------------------------


OUTAGES = [("refuse", 120), ("drop", 45), ("503", 45)]


@pytest.mark.parametrize(("mode", "seconds"), OUTAGES, ids=[f"{m}-{s}s" for m, s in OUTAGES])
def test_outage_backs_off_reports_and_resumes(
    mode: str, seconds: float, isolated_env: Path, figures: Any
) -> None:
    with run_in_thread(BIG.with_(days=8)) as sim:
        proc = spawn(*run_args(sim, "--rpm", "3000", days=7))
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda s: s.counters.windows_verified >= 2, proc=proc)
        sim.outage(seconds, mode=mode)
        began = time.monotonic()
        wait_for_snapshot(progress, lambda s: s.phase == "backing_off", proc=proc)
        healthy_reports = 0
        while time.monotonic() - began < seconds - 5:
            report = json.loads(stxbf("health", "--json").stdout)
            errors = next(c for c in report["checks"] if c["name"] == "errors")
            assert report["runner_alive"] and errors["status"] == "warn", report
            healthy_reports += 1
            time.sleep(5)
        _out, err = proc.communicate(timeout=seconds + 120)
        resumed_after = time.monotonic() - began - seconds
        assert proc.returncode == ExitCode.OK, err
        assert_range_exact(db_of(isolated_env), sim)
    figures(f"{mode}: resumed seconds after the API returned", f"{resumed_after:.1f}")
    assert healthy_reports >= 3
    assert resumed_after < 45  # the backoff is capped at 30 s (+1 s jitter)


def test_outage_longer_than_give_up_after_ends_the_run(isolated_env: Path, figures: Any) -> None:
    with run_in_thread(BIG.with_(days=8)) as sim:
        proc = spawn(*run_args(sim, "--rpm", "3000", "--give-up-after", "60", days=7))
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda s: s.counters.windows_verified >= 2, proc=proc)
        sim.outage(900, mode="refuse")
        began = time.monotonic()
        out, err = proc.communicate(timeout=300)
        took = time.monotonic() - began
        line = assert_one_line_error(
            subprocess.CompletedProcess(proc.args, proc.returncode, out, err), ExitCode.ERROR
        )
        assert "cannot reach the API" in line
        assert assert_verified_exact(db_of(isolated_env), sim) >= 2
    figures("gave up after (seconds; limit 60)", f"{took:.0f}")
    assert took < 60 + 45


# -- concurrency ---------------------------------------------------------------------------------


def test_five_runs_at_once_one_writer(isolated_env: Path) -> None:
    with run_in_thread(BIG.with_(days=8)) as sim:
        procs = [spawn(*run_args(sim, "--rpm", "3000", days=7)) for _ in range(5)]
        results = [(p, *p.communicate(timeout=600)) for p in procs]
        codes = sorted(p.returncode for p, _out, _err in results)
        assert codes == [0, 4, 4, 4, 4], [err[-300:] for _p, _o, err in results]
        for proc, _out, err in results:
            if proc.returncode == 4:
                assert "another stxbf run" in err and "Traceback" not in err
        assert_range_exact(db_of(isolated_env), sim)


def test_status_health_logs_hammered_by_six_threads(isolated_env: Path, figures: Any) -> None:
    with run_in_thread(BIG.with_(days=8)) as sim:
        proc = spawn(*run_args(sim, "--rpm", "2000", days=7))
        failures: list[str] = []
        polls = [0]

        def hammer(command: tuple[str, ...], codes: set[int]) -> None:
            while proc.poll() is None:
                result = stxbf(*command, timeout=60)
                polls[0] += 1
                text = (result.stdout + result.stderr).lower()
                if (
                    result.returncode not in codes
                    or "traceback" in text
                    or "could not set lock" in text
                ):
                    failures.append(f"{command}: {result.returncode} {result.stderr[-200:]}")

        commands = [
            (("status", "--json"), {0, 3, 5, 7}),
            (("status",), {0, 3, 5, 7}),
            (("health", "--json"), {0, 1}),
            (("health",), {0, 1}),
            (("logs", "-n", "50"), {0, 1}),
            (("logs", "--level", "WARNING"), {0, 1}),
        ]
        threads = [threading.Thread(target=hammer, args=c) for c in commands]
        for thread in threads:
            thread.start()
        _out, err = proc.communicate(timeout=900)
        for thread in threads:
            thread.join(120)
        assert proc.returncode == ExitCode.OK, err
        assert failures == []
        assert_range_exact(db_of(isolated_env), sim)
    figures("reader commands during the run", polls[0])


@pytest.mark.tmux
def test_cron_firing_every_second_while_a_tmux_run_is_active(
    server: Any, isolated_env: Path, figures: Any
) -> None:
    from stxbf.session import tmux as session_tmux

    env = cron_env(STXBF_TMUX_SOCKET=str(server.socket_name))
    with run_in_thread(BIG.with_(days=8)) as sim:
        _run, *flags = run_args(sim, "--rpm", "2000", days=7)
        started = stxbf("tmux", "start", "--detach", "--inhibit", "none", *flags, env=env)
        assert started.returncode == 0, started.stderr
        runner_json = isolated_env / "stxbf.duckdb.runner.json"
        retry_until(runner_json.exists, timeout=30)
        pid = json.loads(runner_json.read_text())["pid"]
        fired = 0

        def runner_dead() -> bool:
            info = session_tmux.describe_session(server, "stx-backfill")
            pane = info.pane("runner") if info else None
            return pane is None or pane.dead

        while not runner_dead() and fired < 60:
            cron = stxbf(*run_args(sim, days=7), env=env)
            if cron.returncode == ExitCode.OK:  # the tmux run ended just before: it had to be so
                retry_until(runner_dead, timeout=15)
                break
            line = assert_one_line_error(cron, ExitCode.LOCKED)
            assert f"pid {pid}" in line
            fired += 1
            time.sleep(1.0)
        retry_until(runner_dead, timeout=600, interval=1.0)
        info = session_tmux.describe_session(server, "stx-backfill")
        assert info is not None and info.pane("runner").dead_status == 0  # type: ignore[union-attr]
        assert_range_exact(db_of(isolated_env), sim)
    figures("cron runs refused", fired)
    assert fired >= 3


# -- disk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("megabytes", [1.5, 3, 6, 12])
def test_files_capped_mid_run_at(megabytes: float, isolated_env: Path) -> None:
    """RLIMIT_FSIZE: the WAL, the database or the log hits the cap at a different moment."""
    db = db_of(isolated_env)
    with run_in_thread(BIG.with_(days=12)) as sim:
        cap = int(megabytes * (1 << 20))
        proc = spawn(*run_args(sim, days=10), preexec_fn=limit_file_size(cap))
        out, err = proc.communicate(timeout=600)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert "Traceback" not in err
        if result.returncode != ExitCode.OK:
            line = assert_one_line_error(result, ExitCode.ERROR)
            assert "cannot write" in line or "File too large" in line, line
        if db.exists():
            assert_verified_exact(db, sim)
        rerun = stxbf(*run_args(sim, days=10), timeout=600)
        assert rerun.returncode == ExitCode.OK, rerun.stderr
        assert_range_exact(db, sim)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    """A real 2 MB filesystem (needs root and mount rights; skipped otherwise)."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    ) if os.geteuid() == 0 else None  # fmt: skip
    if done is None or done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_really_full_disk_is_a_clear_error_and_keeps_verified_windows(
    small_tmpfs: Path,
) -> None:
    with run_in_thread(BIG.with_(days=8)) as sim:
        home = small_tmpfs / "home"
        result = stxbf(*run_args(sim, "--home", str(home), days=7), timeout=60)
        line = assert_one_line_error(result, ExitCode.ERROR)
        assert "No space left on device" in line
        assert assert_verified_exact(db_of(home), sim) >= 1
        health = stxbf("health", "--json", "--home", str(home))
        assert health.returncode == 3  # database problem: the disk is full
        assert json.loads(health.stdout)["verdict"] == "database_problem"


def test_data_directory_read_only_under_a_large_run(isolated_env: Path, figures: Any) -> None:
    """A large run loses its directory: it may finish (its files stay open) or stop with one line
    (a checkpoint must drop the WAL); the database stays exact either way."""
    with run_in_thread(SimConfig(days=32, tx_per_day=6000, seed=63)) as sim:
        proc = spawn(*run_args(sim, days=30))
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda s: s.counters.windows_verified >= 2, proc=proc)
        with read_only_dir(isolated_env):
            out, err = proc.communicate(timeout=900)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert "Traceback" not in err
        if result.returncode != ExitCode.OK:
            line = assert_one_line_error(result, ExitCode.ERROR)
            assert "cannot write to database" in line
        db = db_of(isolated_env)
        figures("exit code / verified windows", f"{result.returncode} / "
                f"{assert_verified_exact(db, sim)}")  # fmt: skip
        rerun = stxbf(*run_args(sim, days=30), timeout=900)
        assert rerun.returncode == ExitCode.OK, rerun.stderr
        assert_range_exact(db, sim)


def test_a_reader_that_never_lets_go_is_a_clear_error(isolated_env: Path) -> None:
    import duckdb

    with run_in_thread(BIG.with_(days=4)) as sim:
        assert stxbf(*run_args(sim, days=2)).returncode == 0
        db = db_of(isolated_env)
        reader = duckdb.connect(str(db), read_only=True)
        try:
            result = stxbf(*run_args(sim, days=3))
        finally:
            reader.close()
        line = assert_one_line_error(result, ExitCode.ERROR)
        assert "held by another process" in line
        assert_verified_exact(db, sim)


def test_publish_crashes_leave_no_unbounded_litter(isolated_env: Path) -> None:
    """Each kill during a progress write leaves its temporary file; status still reads fine."""
    with run_in_thread(BIG.with_(days=4)) as sim:
        for _ in range(3):
            done = crash_run("publish", 2, *run_args(sim, "--rpm", "600", days=3))
            assert done.returncode == -signal.SIGKILL, done.stderr
        snap = read(isolated_env / "stxbf.duckdb.progress.json")
        status = stxbf("status", "--json")
        assert status.returncode in (3, 7) and json.loads(status.stdout)["runner"]["alive"] is False
        assert snap is None or snap.schema == 1
        leftovers = list(isolated_env.glob("stxbf.duckdb.progress.json.*.tmp"))
        assert len(leftovers) <= 3


# -- an API that answers, but slower than any timeout notices ------------------------------------


def test_a_dripping_response_still_ends_within_give_up_after(isolated_env: Path) -> None:
    import socket

    body = b'{"limit":1,"offset":0,"total":0,"results":[]}' + b" " * 200
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(head % len(body))
                for byte in body:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.3)
            except OSError:
                pass

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = cron_env(STXBF_REQUEST_TIMEOUT="1")
    try:
        proc = spawn("run", "--api-url", url, "--give-up-after", "3", env=env)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        stop.set()
        listener.close()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_one_line_error(result, ExitCode.ERROR)
    assert "timed out" in line
