"""Every way `stxbf run` or `stxbf verify` can end leaves ONE last log line naming the exit code
and the reason (cli/driver.py drives both).

An operator who left a run in tmux, or a cron job, reads `stxbf logs` afterwards: the screen is
gone, so the log must say how the run ended.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from filelock import FileLock

from stxbf.cli.main import main
from stxbf.codes import ExitCode
from stxbf.errors import ConfigError
from stxbf.simulator import SimConfig, run_in_thread
from stxbf.snapshot import read
from tests.helpers import retry_until, wait_for_snapshot

END_LINE = re.compile(r"stxbf run \(pid (\d+)\) ended: exit (\d+) \(\w+\): (.+)$")


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["stxbf", "run", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0)


def log_records(home: Path) -> list[str]:
    """The log's record lines (a traceback's continuation lines left out)."""
    lines = (home / "logs" / "stxbf.log").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if re.match(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)", line)]


def assert_ends_with(home: Path, code: int, reason: str) -> list[str]:
    records = log_records(home)
    ends = [line for line in records if END_LINE.search(line)]
    assert len(ends) == 1, records
    assert records[-1] == ends[0], records
    match = END_LINE.search(ends[0])
    assert match is not None
    assert int(match.group(1)) == os.getpid()
    assert int(match.group(2)) == code
    assert reason in match.group(3)
    return records


class Ending(NamedTuple):
    code: int
    reason: str
    raises: Callable[[], BaseException]


def _boom() -> BaseException:
    return RuntimeError("boom in the runner")


RAISED_IN_THE_RUNNER = {
    "internal-error": Ending(1, "internal error: RuntimeError: boom in the runner", _boom),
    "usage-error": Ending(2, "found late", lambda: ConfigError("bad setting found late")),
    "ctrl-c-before-the-loop": Ending(130, "interrupted", KeyboardInterrupt),
}


@pytest.mark.parametrize("case", RAISED_IN_THE_RUNNER.values(), ids=RAISED_IN_THE_RUNNER.keys())
def test_an_exception_out_of_the_runner_is_the_logs_last_line(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, case: Ending
) -> None:
    async def failing_run(self: Any) -> Any:
        raise case.raises()

    monkeypatch.setattr("stxbf.runner.Runner.run", failing_run)
    code = run_cli(monkeypatch, "--target-days", "1", "--api-url", "http://127.0.0.1:1")
    assert code == case.code
    records = assert_ends_with(isolated_env, case.code, case.reason)
    if case.code == 1:  # the traceback is in the log once, before the end line
        text = (isolated_env / "logs" / "stxbf.log").read_text(encoding="utf-8")
        assert text.count("Traceback") == 1
        assert any("unexpected error" in line for line in records[:-1])


@pytest.mark.slow  # `python -m stxbf run` or real connect timeouts: seconds
def test_nothing_listening_gives_up_and_says_so_last(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = run_cli(monkeypatch, "--target-days", "1", "--api-url", "http://127.0.0.1:1")
    assert code == 1
    assert_ends_with(isolated_env, 1, "connection refused")


def test_a_fatal_api_answer_is_the_logs_last_line(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_in_thread(SimConfig(days=3, tx_per_day=50, v1_gone=True)) as sim:
        code = run_cli(
            monkeypatch, "--target-days", "1", "--api-url", sim.url, "--source", "v1"
        )  # `auto` would go on with /extended/v3/transactions
    assert code == 1
    assert_ends_with(isolated_env, 1, "410 Gone")


def test_a_store_error_is_the_logs_last_line(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "stxbf.duckdb").write_bytes(b"this is not a database\n" * 400)
    code = run_cli(monkeypatch, "--target-days", "1", "--api-url", "http://127.0.0.1:1")
    assert code == ExitCode.DATABASE
    assert_ends_with(isolated_env, int(ExitCode.DATABASE), "stxbf.duckdb")


def test_a_normal_end_is_one_line_too(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with run_in_thread(SimConfig(days=3, tx_per_day=50)) as sim:
        code = run_cli(monkeypatch, "--target-days", "1", "--api-url", sim.url)
    assert code == 0
    assert_ends_with(isolated_env, 0, "target reached")


def test_a_run_refused_by_the_lock_says_so_right_after_its_start_line(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True)
    lock = FileLock(str(isolated_env / "stxbf.duckdb.lock"))
    with lock.acquire(timeout=0):
        code = run_cli(monkeypatch, "--target-days", "1", "--api-url", "http://127.0.0.1:1")
    assert code == 4
    records = assert_ends_with(isolated_env, 4, "refused: another stxbf run")
    mine = [line for line in records if f"(pid {os.getpid()})" in line]
    assert len(mine) == 2 and "started" in mine[0]  # the start line, then at once the refusal


def test_a_second_signal_logs_the_end_before_it_exits(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stxbf.cli.driver import Driver
    from stxbf.logs import configure_logging

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    class FakeRunner:
        def request_stop(self, reason: str) -> None:
            pass

    configure_logging(isolated_env / "logs" / "stxbf.log")
    monkeypatch.setattr(os, "_exit", fake_exit)
    driver = Driver("run")
    driver.on_signal(FakeRunner(), "SIGTERM")
    with pytest.raises(Exited):
        driver.on_signal(FakeRunner(), "SIGTERM")
    assert_ends_with(isolated_env, 130, "second SIGTERM")


HANG_UPS = {
    "SIGTERM": (signal.SIGTERM, False),
    "SIGHUP": (signal.SIGHUP, False),
    "SIGHUP-terminal-gone": (signal.SIGHUP, True),  # tmux kill-session: the pty is closed
}


@pytest.mark.slow  # `python -m stxbf run` or real connect timeouts: seconds
@pytest.mark.parametrize("case", HANG_UPS.values(), ids=HANG_UPS.keys())
def test_a_signal_stops_the_run_and_the_log_says_so_last(
    isolated_env: Path, case: tuple[int, bool]
) -> None:
    """SIGHUP is what `tmux kill-session` and a closed SSH terminal send."""
    signum, on_a_pty = case
    config = SimConfig(days=40, tx_per_day=600, seed=11, latency_ms=30, rpm=3000)
    with run_in_thread(config) as sim:
        env = {**os.environ, "STXBF_API_URL": sim.url, "STXBF_TARGET_DAYS": "30"}
        master = replica = None
        if on_a_pty:
            master, replica = pty.openpty()
            out: Any = replica
        else:
            out = subprocess.PIPE
        proc = subprocess.Popen(
            [sys.executable, "-m", "stxbf", "run"],
            env=env,
            stdout=out,
            stderr=out,
            text=True,
            # a hang-up's default action, even when the tests themselves run under nohup
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )
        progress = isolated_env / "stxbf.duckdb.progress.json"

        def a_window_verified_or_ended() -> bool:
            if master is not None:  # keep the terminal's buffer from filling up
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
            snap = read(progress)
            return (snap is not None and snap.counters.windows_verified >= 1) or (
                proc.poll() is not None
            )

        try:
            retry_until(a_window_verified_or_ended, interval=0.1)
        finally:
            if master is not None and replica is not None:
                os.close(master)  # the terminal is gone: writing to it now fails (EIO)
                os.close(replica)
        proc.send_signal(signum)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    name = signal.Signals(signum).name
    records = assert_ends_with_pid(isolated_env, proc.pid, 130)
    assert any(f"stopping ({name}" in line for line in records)


def assert_ends_with_pid(home: Path, pid: int, code: int) -> list[str]:
    records = log_records(home)
    match = END_LINE.search(records[-1])
    assert match is not None, records
    assert (int(match.group(1)), int(match.group(2))) == (pid, code)
    return records


@pytest.mark.slow  # `python -m stxbf run` or real connect timeouts: seconds
def test_under_nohup_a_hang_up_does_not_stop_the_run(isolated_env: Path) -> None:
    config = SimConfig(days=40, tx_per_day=600, seed=11, latency_ms=30, rpm=3000)
    with run_in_thread(config) as sim:
        env = {**os.environ, "STXBF_API_URL": sim.url, "STXBF_TARGET_DAYS": "30"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "stxbf", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # what nohup does
        )
        progress = isolated_env / "stxbf.duckdb.progress.json"
        wait_for_snapshot(progress, lambda snap: snap.counters.windows_verified >= 1, proc=proc)
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    records = assert_ends_with_pid(isolated_env, proc.pid, 130)
    assert not any("SIGHUP" in line for line in records)
    assert any("stopping (SIGTERM" in line for line in records)


# -- `stxbf verify` ends as `stxbf run` does (one driver) ------------------------------------------

VERIFY_END_LINE = re.compile(r"stxbf verify \(pid (\d+)\) ended: exit (\d+) \(\w+\): (.+)$")


def verify_while_the_api_fails(
    home: Path, signals: Callable[[subprocess.Popen[str]], None]
) -> list[str]:
    """Back up a day, then start `stxbf verify` while the API answers 503 (its re-counts retry),
    send it `signals` once it re-counts, and return the log's records after it ended."""
    from stxbf.cli.run import execute
    from stxbf.settings import load_settings
    from tests.helpers import spawn

    with run_in_thread(SimConfig(days=3, tx_per_day=200, seed=5)) as sim:
        settings = load_settings(api_url=sim.url, target_days=1)
        assert execute(settings, interactive=False).exit_code == ExitCode.OK
        sim.outage(120, mode="503")  # reachable but failing: verify keeps retrying
        proc = spawn(
            "verify",
            "--api-url",
            sim.url,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
        )

        def recounting() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"verify ended (exit {proc.returncode}) before re-counting")
            return any("verify: re-counting" in line for line in log_records(home))

        retry_until(recounting, interval=0.1)
        signals(proc)
        proc.communicate(timeout=60)
    assert proc.returncode == 130, log_records(home)
    records = log_records(home)
    match = VERIFY_END_LINE.search(records[-1])
    assert match is not None, records
    assert (int(match.group(1)), int(match.group(2))) == (proc.pid, 130)
    return records


@pytest.mark.slow  # `python -m stxbf verify`: seconds
def test_a_hang_up_stops_verify_and_the_log_says_so_last(isolated_env: Path) -> None:
    """`tmux kill-session` or a closed SSH terminal stops a verify cleanly, as it stops a run."""
    records = verify_while_the_api_fails(isolated_env, lambda proc: proc.send_signal(signal.SIGHUP))
    assert any("stopping (SIGHUP" in line for line in records)


@pytest.mark.slow  # `python -m stxbf verify`: seconds
def test_a_second_signal_ends_verify_at_once_and_the_log_says_so_last(isolated_env: Path) -> None:
    def two_signals(proc: subprocess.Popen[str]) -> None:
        # held stopped, so both are pending together and neither can end it before the other
        proc.send_signal(signal.SIGSTOP)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)

    records = verify_while_the_api_fails(isolated_env, two_signals)
    assert "second SIG" in records[-1] and "stopped at once" in records[-1]
