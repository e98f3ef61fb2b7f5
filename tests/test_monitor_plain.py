"""`stxbf status --watch` without a terminal prints a plain line at every refresh, as
docs/cli.md promises (issue 11, section 7); the live panel stays for terminals."""

from __future__ import annotations

import io
import time

from rich.console import Console

from stxbf.ops.monitor import run_monitor
from stxbf.ops.status import RunnerState, StatusReport

BOX = set("╭╮╰╯│─━┃")


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
        runner=RunnerState(alive=True, pid=42, phase="fetching", heartbeat_age=1.0),
        rate_rpm=480.0,
        limit_rpm=500.0,
        eta_seconds=600.0,
    )


def test_without_a_terminal_each_refresh_is_one_plain_line() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    frames = iter([running_report(10), running_report(11), running_report(12)])
    run_monitor(lambda: next(frames), log_path=None, console=console, interval=0, iterations=3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    for days, line in zip((10, 11, 12), lines, strict=True):
        assert f"{days}/30 days" in line
        assert "Running" in line
        assert not BOX & set(line)
        assert "\x1b" not in line


def test_on_a_terminal_the_panel_is_drawn() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, height=40)
    run_monitor(
        lambda: running_report(10), log_path=None, console=console, interval=0, iterations=1
    )
    assert BOX & set(out.getvalue())
