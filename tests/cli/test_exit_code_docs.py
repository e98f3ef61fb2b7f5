"""docs/cli.md's exit-code tables say what the commands really do (issue 15, item 5).

tests/test_meta.py holds the tables to the registry (`stxbf.codes`); here each situation a table
describes that a test can set up cheaply (a bad flag, a bad setting, no database, an empty
database file, no log, no tmux session) is run, and the code the command returns must be in its
table, on a row whose meaning names the situation. The docs once said `verify` exits 1 on a
damaged database; it exits 65.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers import cron_env, run_cli, stxbf

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_meanings() -> dict[str, dict[int, str]]:
    """{command: {code: meaning}} from each exit-code table; the shared table is "shared"."""
    tables: dict[str, dict[int, str]] = {}
    section, in_table = "", False
    for line in CLI_DOC.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"#{2,3} (.+)", line):
            names = re.findall(r"`(stxbf[a-z -]*)`", heading.group(1))
            shared = "shared by every command" in heading.group(1)
            section, in_table = ("shared" if shared else (names or [""])[0]), False
        elif re.match(r"\| (exit )?code \| meaning \|", line):
            in_table = True
            tables.setdefault(section, {})
        elif in_table and line.startswith("|"):
            cells = line.split("|")
            for code in re.findall(r"`(\d+)`", cells[1]):
                tables[section][int(code)] = cells[2].strip()
        else:
            in_table = in_table and line.startswith("|")
    return tables


def empty_database(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "stxbf.duckdb").write_bytes(b"")


def nothing(home: Path) -> None:
    """No data directory yet: no database, no log, no progress file."""


class Situation(NamedTuple):
    command: str  # the section of docs/cli.md whose table applies
    args: tuple[str, ...]
    words: str  # what the documented row for the returned code must say
    setup: Callable[[Path], None] = nothing
    env: tuple[tuple[str, str], ...] = ()
    subprocess: bool = False  # `run` configures logging and signals: in its own process


MONITORS = ("stxbf status", "stxbf health")
BAD_SETTING = (("STXBF_TARGET_DAYS", "bogus"),)

SITUATIONS: dict[str, Situation] = {
    "run: unknown flag": Situation("stxbf run", ("run", "--bogus"), "usage"),
    "run: flag given a value": Situation("stxbf run", ("run", "--verify=true"), "usage"),
    "run: bad setting": Situation("stxbf run", ("run",), "bad flag or setting", env=BAD_SETTING),
    "run: unusable data directory": Situation(
        "stxbf run",
        ("run", "--home", "/dev/null/stxbf"),
        "unusable data directory",
        subprocess=True,
    ),
    "run: empty database": Situation(
        "stxbf run",
        ("run", "--api-url", "http://127.0.0.1:9"),
        "empty (0 bytes)",
        setup=empty_database,
        subprocess=True,
    ),
    "verify: unknown flag": Situation("stxbf verify", ("verify", "--bogus"), "usage"),
    "verify: bad setting": Situation(
        "stxbf verify", ("verify",), "bad flag or setting", env=BAD_SETTING
    ),
    "verify: no database": Situation("stxbf verify", ("verify",), "no database yet"),
    "verify: empty database": Situation(
        "stxbf verify", ("verify",), "empty (0 bytes)", setup=empty_database
    ),
    "status: unknown flag": Situation("stxbf status", ("status", "--bogus"), "usage"),
    "status: bad value": Situation("stxbf status", ("status", "--target-days", "0"), "bad value"),
    "status: bad setting": Situation("stxbf status", ("status",), "bad value", env=BAD_SETTING),
    "status: no database": Situation("stxbf status", ("status",), "not started"),
    "status: empty database": Situation(
        "stxbf status", ("status",), "empty (0 bytes)", setup=empty_database
    ),
    "health: unknown flag": Situation("stxbf health", ("health", "--bogus"), "usage"),
    "health: bad setting": Situation(
        "stxbf health", ("health",), "configuration error", env=BAD_SETTING
    ),
    "health: no database": Situation("stxbf health", ("health",), "no run has happened yet"),
    "health: empty database": Situation("stxbf health", ("health",), "empty", setup=empty_database),
    "logs: unknown flag": Situation("stxbf logs", ("logs", "--bogus"), "usage"),
    "logs: no log": Situation("stxbf logs", ("logs",), "error"),
    "tmux status: unknown flag": Situation(
        "stxbf tmux status", ("tmux", "status", "--bogus"), "usage"
    ),
    "tmux status: no session": Situation(
        "stxbf tmux status",
        ("tmux", "status", "--socket-name", "stxbf-test-exit-codes-none"),
        "does not exist",
    ),
    "demo: unknown flag": Situation("stxbf demo", ("demo", "--bogus"), "usage"),
    "sim serve: unknown flag": Situation("stxbf sim serve", ("sim", "serve", "--bogus"), "usage"),
}


@pytest.mark.parametrize(
    "situation",
    # A situation run in its own process takes half a second: the quick loop leaves it out.
    [
        pytest.param(situation, id=name, marks=[pytest.mark.slow] if situation.subprocess else [])
        for name, situation in SITUATIONS.items()
    ],
)
def test_the_documented_code_is_the_code_returned(
    situation: Situation,
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    situation.setup(isolated_env)
    for name, value in situation.env:
        monkeypatch.setenv(name, value)
    if situation.subprocess:
        code = stxbf(*situation.args, env=cron_env()).returncode
    else:
        code = run_cli(list(situation.args), capsys, monkeypatch)[0]
    tables = documented_meanings()
    # The shared codes hold for every command but the monitors, whose tables replace 2 by 64.
    shared = {} if situation.command in MONITORS else tables["shared"]
    meaning = tables.get(situation.command, {}).get(code) or shared.get(code)
    assert meaning is not None, f"{situation.command} exits {code}: not in docs/cli.md's tables"
    assert situation.words.lower() in meaning.lower(), (code, meaning)


def test_the_table_reader_sees_every_table() -> None:
    tables = documented_meanings()
    for command in ("shared", "stxbf run", "stxbf verify", "stxbf status", "stxbf health"):
        assert len(tables[command]) >= 4, command
    assert "usage" in tables["shared"][2]
