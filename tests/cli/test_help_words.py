"""Help, choices and usage errors a person and a script can rely on (issue 15, item 5).

- Every help fits 80 columns without a cut ("…") or a line past the edge; defaults are written
  one way (`[default: 600]`, never "(default 365)" beside "[default: 600.0]").
- Closed sets of values (`--source`, `--log-level`, `--inhibit`, `--rate-headers`, …) are listed
  in help and completed by the shell; the settings accept the same values.
- A usage error points at the help of the command it belongs to, and a bad value is worded the
  same way whether a flag, the environment or the config file gave it.
- Output into a pipe or a file is neither wrapped at 80 columns nor padded with spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import typer.main

from stxbf.cli import options, sim
from stxbf.cli.main import app
from stxbf.cli.tmux import common as tmux_common
from stxbf.defaults import LOOPBACK_HOSTS
from stxbf.session.inhibit import MODES
from stxbf.settings import LOG_LEVELS, SOURCES
from stxbf.simulator.config import LATENCY_SHAPES, V1_STATES
from stxbf.simulator.ratelimit import GENERIC_WINDOWS, RATE_HEADER_STYLES, RESET_FORMATS
from tests.helpers import run_cli


def commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    command = command or typer.main.get_command(app)
    yield " ".join(path), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


COMMANDS = dict(commands())


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=lambda name: name or "stxbf")
def test_help_fits_80_columns_and_writes_defaults_one_way(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli([*name.split(), "--help"], capsys, monkeypatch)
    assert code == 0
    assert "…" not in out
    assert not re.search(r"[a-z,]\.\.\.$", out, re.M), "a command's summary cut short"
    assert [line for line in out.splitlines() if len(line) > 80] == []
    assert "(default" not in out, "a default written as `(default X)`"
    assert not re.search(r"default: -?\d+\.0\b", out), "a default written as `600.0`"


CHOICES = {  # (command, flag): the values the help lists and the shell completes
    ("run", "--source"): ("auto", "v1", "v3"),
    ("verify", "--source"): ("auto", "v1", "v3"),
    ("run", "--log-level"): ("debug", "info", "warning", "error"),
    ("logs", "--level"): ("debug", "info", "warning", "error"),
    ("tmux start", "--inhibit"): ("auto", "caffeinate", "systemd", "none"),
    ("tmux start", "--source"): ("auto", "v1", "v3"),
    ("sim serve", "--rate-headers"): RATE_HEADER_STYLES,
    ("sim serve", "--generic-window"): GENERIC_WINDOWS,
    ("sim serve", "--rate-reset"): RESET_FORMATS,
    ("sim serve", "--v1"): V1_STATES,
    ("sim serve", "--latency-shape"): LATENCY_SHAPES,
    ("sim serve", "--host"): ("127.0.0.1", "localhost", "::1"),
}


def option(command: str, flag: str) -> Any:
    return next(param for param in COMMANDS[command].params if flag in param.opts)


@pytest.mark.parametrize("key", list(CHOICES), ids=lambda key: " ".join(key))
def test_choices_are_listed_in_help_and_completed(
    key: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, flag = key
    values = CHOICES[key]
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run_cli([*command.split(), "--help"], capsys, monkeypatch)
    assert "|".join(values) in out
    param = option(command, flag)
    ctx = COMMANDS[command].make_context(command, [], resilient_parsing=True)
    assert [item.value for item in param.shell_complete(ctx, "")] == list(values)


def test_the_cli_choices_are_the_values_the_library_accepts() -> None:
    assert get_args(options.SourceChoice) == SOURCES
    assert tuple(level.upper() for level in get_args(options.LogLevelChoice)) == LOG_LEVELS
    assert get_args(tmux_common.InhibitChoice) == MODES
    assert get_args(sim.RateHeadersChoice) == RATE_HEADER_STYLES
    assert get_args(sim.GenericWindowChoice) == GENERIC_WINDOWS
    assert get_args(sim.RateResetChoice) == RESET_FORMATS
    assert get_args(sim.V1Choice) == V1_STATES
    assert get_args(sim.LatencyShapeChoice) == LATENCY_SHAPES
    assert set(get_args(sim.HostChoice)) == LOOPBACK_HOSTS


def test_a_choice_is_case_insensitive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["logs", "--level", "WARNING", "-n", "1"], capsys, monkeypatch)
    assert code == 1 and "no log yet" in err  # accepted: it got as far as looking for the log


BAD_VALUES = {  # argv or environment: the one line it gets
    "flag choice": (
        ["run", "--source", "v2"],
        {},
        "invalid --source: must be one of auto, v1, v3 (got 'v2')",
    ),
    "env choice": (
        ["run"],
        {"STXBF_SOURCE": "v2"},
        "invalid STXBF_SOURCE: must be one of auto, v1, v3 (got 'v2')",
    ),
    "flag number": (
        ["run", "--target-days", "x"],
        {},
        "invalid --target-days: Input should be a valid integer",
    ),
    "env number": (
        ["run"],
        {"STXBF_TARGET_DAYS": "x"},
        "invalid STXBF_TARGET_DAYS: Input should be a valid integer",
    ),
    "flag not finite": (
        ["sim", "serve", "--latency-ms", "inf"],
        {},
        "invalid --latency-ms: must be a finite number (got inf)",
    ),
    "flag range": (
        ["status", "--target-days", "0"],
        {},
        "invalid --target-days: Input should be greater than or equal to 1 (got '0')",
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_a_bad_value_is_worded_one_way(
    case: tuple[list[str], dict[str, str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args, env, wording = case
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code in (2, 64)
    assert err.startswith(f"stxbf: error: {wording}"), err


@pytest.mark.parametrize(
    ("args", "command", "code"),
    [
        (["run", "--verify=true"], "stxbf run", 2),
        (["health", "--json=true"], "stxbf health", 64),
        (["tmux", "start", "--detach=1"], "stxbf tmux start", 2),
    ],
)
def test_a_usage_error_points_at_its_commands_help(
    args: list[str],
    command: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got, _, err = run_cli(args, capsys, monkeypatch)
    assert got == code
    assert f"Try '{command} --help'." in err


def test_output_into_a_pipe_is_neither_wrapped_nor_padded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cron mail and log files: a line is as long as it is, with no trailing spaces."""
    monkeypatch.setenv("COLUMNS", "80")
    bogus = "not-a-number-" * 8  # the detail line runs well past 80 columns
    monkeypatch.setenv("STXBF_TARGET_DAYS", bogus)
    code, out, _ = run_cli(["health"], capsys, monkeypatch)
    assert code == 4
    lines = out.splitlines()
    assert [line for line in lines if line != line.rstrip()] == []
    detail = [line for line in lines if "config" in line and bogus in line]
    assert len(detail) == 1, out  # the whole detail on its check's line


def test_the_coverage_strip_is_a_chart_of_80_columns_in_a_pipe() -> None:
    """Unwrapped output must not turn the year's strip into one 365-glyph line: its rows are
    cut by the strip itself, not by the console's wrapping."""
    from stxbf.cli.render import coverage_strip

    strip = coverage_strip("V" * 200 + "." * 165, width=80, max_rows=8)
    rows = strip.plain.splitlines()
    assert [len(row) for row in rows] == [80, 80, 80, 80, 45]
