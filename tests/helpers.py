"""How tests run `stxbf` and wait for things; shared by the default suite and tests/torture.

- `stxbf` / `spawn` / `crash_run`: `python -m stxbf` as a real subprocess, as cron would start it
  (no terminal, stdin closed, plain output); `run_cli`: the same entry point in this process.
- `retry_until` / `wait_for_snapshot`: the one polling loop (modelled on libtmux's `retry_until`).
  Its deadline only catches a hang, so it is generous: a loaded 2-core machine must not fail a
  test that would have passed.
- `assert_one_line_error`: the documented shape of a failure (one line, exit code, no traceback).
- `limit_file_size` / `read_only_dir` / `processes_mentioning`: a hostile or inspected host.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stxbf.snapshot import ProgressSnapshot, read

T = TypeVar("T")

CRASHPOINT = Path(__file__).parent / "torture" / "crashpoint.py"  # a script, run, never imported
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
HANG = 60.0  # seconds: long enough that only a hang (not a slow machine) reaches it


# -- running stxbf -------------------------------------------------------------------------------


def cron_env(**extra: str) -> dict[str, str]:
    """The environment of the test (already isolated by conftest), as cron would pass it."""
    env = {k: v for k, v in os.environ.items() if k not in ("TERM", "TMUX")}
    env.update(extra)
    return env


def spawn(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """`python -m stxbf ARGS` with no terminal (stdin closed, output captured), not waited for."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} | popen
    return subprocess.Popen(
        [sys.executable, "-m", "stxbf", *args],
        env=env if env is not None else cron_env(),
        stdin=subprocess.DEVNULL,
        text=True,
        **options,
    )


def stxbf(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m stxbf ARGS` to its end; a run still going after `timeout` s is a hang (failed)."""
    proc = spawn(*args, env=env, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"stxbf {' '.join(args)} did not end in {timeout} s:\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def crash_run(
    site: str, nth: int, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`stxbf ARGS` that kill -9s itself the nth time it reaches `site` (see crashpoint.py)."""
    return subprocess.run(
        [sys.executable, str(CRASHPOINT), site, str(nth), *args],
        env=env if env is not None else cron_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_9_runs(
    env: dict[str, str],
    rng: Any,
    *,
    times: int,
    progress: Path,
    commits: tuple[int, int] = (1, 3),
) -> Iterator[int]:
    """Start `stxbf run` `times` times and kill -9 each once its progress snapshot shows it has
    committed a random number (in `commits`) of verified windows: never before (no sleep guesses
    when), and a run that ends first fails the test. Yields, after each kill, that number; the
    caller checks the database and the requests between kills."""
    for _ in range(times):
        proc = spawn("run", env=env)
        wanted = rng.randint(*commits)
        try:
            wait_for_snapshot(
                progress,
                lambda snap, pid=proc.pid, wanted=wanted: (
                    snap.pid == pid and snap.counters.windows_verified >= wanted
                ),
                proc=proc,
            )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        yield wanted


def run_cli(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """`stxbf ARGS` through the real entry point, in this process: (exit code, stdout, stderr)."""
    from stxbf.cli.main import main

    monkeypatch.setattr(sys, "argv", ["stxbf", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(stderr: str) -> list[str]:
    """stderr without the runner's timestamped log lines: the error and its hint, if any."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`; one `stxbf: error:` line, at most one indented hint, never a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = error_lines(result.stderr)
    errors = [line for line in lines if line.startswith("stxbf: error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in lines if not line.startswith("stxbf: error:")]
    assert all(line.startswith("  ") for line in others), result.stderr
    assert len(others) <= 1, result.stderr
    return errors[0]


# -- waiting -------------------------------------------------------------------------------------


def retry_until(
    condition: Callable[[], T | None],
    timeout: float = HANG,
    *,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Call `condition` until it returns something truthy, and return that.

    Polls every `interval` s; past `timeout` s the wait fails as a hang. `condition` may raise
    AssertionError itself to stop early (a process that ended before the state came).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def wait_for_snapshot(
    progress: Path,
    predicate: Callable[[ProgressSnapshot], bool],
    *,
    proc: subprocess.Popen[str] | None = None,
    timeout: float = HANG,
) -> ProgressSnapshot:
    """The first progress snapshot that satisfies `predicate`; fails if `proc` ends first."""
    last: list[ProgressSnapshot | None] = [None]

    def ready() -> ProgressSnapshot | None:
        snap = last[0] = read(progress)
        if snap is not None and predicate(snap):
            return snap
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before the condition")
        return None

    try:
        return retry_until(ready, timeout)
    except AssertionError as failed:
        if "timed out" in str(failed):
            raise AssertionError(f"timed out after {timeout} s; last snapshot: {last[0]}") from None
        raise


# -- the host ------------------------------------------------------------------------------------


def processes_mentioning(needle: str) -> list[str]:
    """`/proc/PID/cmdline` of every process whose argv contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle in argv:
                found.append(f"{entry.name}: {argv}")
    return found


def limit_file_size(limit: int) -> Callable[[], None]:
    """A `preexec_fn`: the child may not grow any file past `limit` bytes (writes fail, EFBIG)."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[None]:
    """Make `path` refuse new entries, even for root: chattr +i as root, chmod a-w otherwise."""
    if os.geteuid() == 0:
        try:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        except FileNotFoundError:
            done = subprocess.CompletedProcess([], 1, "", "chattr is not installed")
        if done.returncode != 0:
            pytest.skip(f"cannot make {path} read-only as root: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        mode = path.stat().st_mode & 0o777
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
