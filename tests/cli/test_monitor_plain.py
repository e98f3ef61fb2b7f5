"""`stxbf status --watch` without a terminal prints a plain line at every refresh, as
docs/cli.md promises; the live panel stays for terminals."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from stxbf.cli.status import run_monitor
from tests.fakes import running_report
from tests.helpers import run_cli, spawn

BOX = set("╭╮╰╯│─━┃")


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


def test_with_json_each_refresh_is_one_json_object() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    frames = iter([running_report(10), running_report(11)])
    run_monitor(
        lambda: next(frames),
        log_path=None,
        console=console,
        interval=0,
        iterations=2,
        as_json=True,
    )
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [record["days_verified"] for record in records] == [10, 11]


def test_status_watch_json_prints_ndjson_lines_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status --json --watch` used to drop `--json` and print the plain monitor lines; Ctrl+C
    (raised here in place of the second wait) ends the watch with exit 0."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    code, out, err = run_cli(
        ["status", "--watch", "--json", "--interval", "0.5"], capsys, monkeypatch
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and waits == [0.5, 0.5]
    for line in lines:
        assert json.loads(line)["state"] == "not_started"


@pytest.mark.slow  # `python -m stxbf` as a process: each line reaches the pipe at once
def test_status_watch_json_prints_ndjson_lines() -> None:
    """`status --json --watch` used to drop `--json` and print the plain monitor lines."""
    proc = spawn("status", "--watch", "--json", "--interval", "0.5")
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()  # each flushed at once
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    for line in (first, second):
        assert json.loads(line)["state"] == "not_started"
