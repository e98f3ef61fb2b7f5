"""A reader that closes the pipe early changes nothing (issue 15, item 3).

`stxbf health | head -1` under `set -o pipefail` must exit with the code `stxbf health` gives
without the pipe, and print nothing on stderr: no traceback, no "Exception ignored". The real
console script runs in a subprocess whose standard output is a pipe: either its read end is
closed before the command writes (`| true`), or one byte is read from a long output before
closing it (`| head -c1`). Both are deterministic: every write after the close fails with EPIPE.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import cron_env

pytestmark = pytest.mark.slow  # every case starts the console script as a process

STXBF = Path(sys.executable).with_name("stxbf")  # the installed console script, as a shell runs it


class Case(NamedTuple):
    args: tuple[str, ...]
    env: dict[str, str]
    code: int  # what the command exits with when nobody closes its output early


CONFIG_ERROR = {"STXBF_TARGET_DAYS": "bogus"}  # health's verdict: configuration error (4)

CASES = {
    "status": Case(("status",), {}, 7),
    "status --json": Case(("status", "--json"), {}, 7),
    "status --target-days": Case(("status", "--target-days", "10"), {}, 7),
    "health": Case(("health",), CONFIG_ERROR, 4),
    "health --json": Case(("health", "--json"), CONFIG_ERROR, 4),
    "status --watch --json": Case(("status", "--watch", "--json", "--interval", "0.5"), {}, 0),
    "status --watch": Case(("status", "--watch", "--interval", "0.5"), {}, 0),
}


def command(args: tuple[str, ...]) -> list[str]:
    return [str(STXBF), *args] if STXBF.exists() else [sys.executable, "-m", "stxbf", *args]


def run_into_closed_pipe(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str]:
    """`stxbf ARGS | true`, the reader gone before the first write: (exit code, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            command(args),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


def run_into_head(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str]:
    """`stxbf ARGS | head -c1`: one byte read, then the reader leaves: (exit code, stderr)."""
    proc = subprocess.Popen(
        command(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_reader_that_left_before_the_output_changes_no_exit_code(case: Case) -> None:
    env = cron_env(**case.env)
    if "--watch" not in case.args:  # the code the command gives with nobody leaving early
        plain = subprocess.run(command(case.args), env=env, capture_output=True, timeout=60)
        assert plain.returncode == case.code, plain.stderr
    code, err = run_into_closed_pipe(case.args, env)
    assert (code, err) == (case.code, "")


def write_log(home: Path, lines: int) -> None:
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"2026-12-07T14:18:{n % 60:02d}+0000 INFO stxbf.runner: window {n} committed\n"
        for n in range(lines)
    )
    (logs / "stxbf.log").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "args",
    [("logs", "-n", "5000"), ("logs", "-n", "5000", "--follow")],
    ids=["logs", "logs --follow"],
)
def test_logs_into_head_exits_0_quietly(args: tuple[str, ...], isolated_env: Path) -> None:
    write_log(isolated_env, 5000)  # ~300 KB: more than a pipe holds, so a write must fail
    assert run_into_head(args, cron_env()) == (0, "")


@pytest.mark.parametrize("args", [("status",), ("health", "--json")], ids=" ".join)
def test_a_closed_standard_output_changes_no_exit_code(args: tuple[str, ...]) -> None:
    """`stxbf health --json >&-` (a job started with no standard output) is no internal error."""
    env = cron_env()
    plain = subprocess.run(command(args), env=env, capture_output=True, timeout=60)
    closed = subprocess.run(
        ["bash", "-c", '"$@" >&-', "bash", *command(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (closed.returncode, closed.stderr) == (plain.returncode, "")
