"""The demo's closing hint is commands that work when pasted."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from stxbf.cli.main import main
from tests.helpers import run_cli


@pytest.mark.slow  # a whole demo run in process: over a second
def test_the_demos_closing_commands_work_when_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_home = tmp_path / "demo home"  # a space: the printed commands must quote it
    argv = ["stxbf", "demo", "--days", "1", "--tx-per-day", "40", "--rpm", "100000",
            "--latency-ms", "0", "--fault-rate", "0", "--home", str(demo_home)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert " | stxbf" not in out  # pasted, `a | b | c` is a pipeline
    lines = [line.strip() for line in out.splitlines()]
    export = next(line for line in lines if line.startswith("export STXBF_HOME="))
    assert shlex.split(export) == ["export", f"STXBF_HOME={demo_home}", "STXBF_TARGET_DAYS=1"]
    for command in ("stxbf status", "stxbf logs", "stxbf health"):
        assert command in lines
    # status judges the configured target: exported, the demo's; else it would be 365 days
    for assignment in shlex.split(export)[1:]:
        monkeypatch.setenv(*assignment.split("=", 1))
    code, out, _ = run_cli(["status"], capsys, monkeypatch)
    assert code == 0 and "1/1 days" in out
