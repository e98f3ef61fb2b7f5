"""Every way `stxbf run` can end leaves ONE last log line naming the exit code and the reason.

An operator who left a run in tmux, or a cron job, reads `stxbf logs` afterwards: the screen is
gone, so the log must say how the run ended (issue 11, section 1).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from filelock import FileLock

from stxbf.cli.main import main
from stxbf.errors import ConfigError
from stxbf.simulator import SimConfig, run_in_thread

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
        code = run_cli(monkeypatch, "--target-days", "1", "--api-url", sim.url)
    assert code == 1
    assert_ends_with(isolated_env, 1, "410 Gone")


def test_a_store_error_is_the_logs_last_line(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "stxbf.duckdb").write_bytes(b"this is not a database\n" * 400)
    code = run_cli(monkeypatch, "--target-days", "1", "--api-url", "http://127.0.0.1:1")
    assert code == 1
    assert_ends_with(isolated_env, 1, "stxbf.duckdb")


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
    from stxbf.cli import run as run_cli_module
    from stxbf.ops.logs import configure_logging

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    class FakeRunner:
        def request_stop(self, reason: str) -> None:
            pass

    configure_logging(isolated_env / "logs" / "stxbf.log")
    monkeypatch.setattr(run_cli_module, "_signals_seen", 0)
    monkeypatch.setattr(os, "_exit", fake_exit)
    run_cli_module._on_signal(FakeRunner(), "SIGTERM")
    with pytest.raises(Exited):
        run_cli_module._on_signal(FakeRunner(), "SIGTERM")
    assert_ends_with(isolated_env, 130, "second SIGTERM")
