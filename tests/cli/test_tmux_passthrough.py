"""Every option of `stxbf run` reaches the tmux runner: declared once, passed through generated.

No tmux here: the tests read the click commands and the argv the runner pane would run, and parse
that argv back with `stxbf run`'s own parser.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import typer.main

from stxbf.cli.main import app
from stxbf.cli.tmux.passthrough import run_command, run_flags, run_options, split_run_options
from stxbf.paths import DataPaths
from stxbf.session.backfill import runner_argv
from stxbf.session.inhibit import Inhibitor
from stxbf.settings import load_settings

# Values a string option must have to pass its own validation; other types are generated.
STRING_SAMPLES = {"api_url": "http://127.0.0.1:3999", "log_level": "debug", "source": "v3"}


def sample(option: Any, tmp_path: Path) -> Any:
    """A valid value for `option` that differs from its default."""
    name = str(option.name)
    if option.is_flag:
        return not option.default
    annotation = option.type_descriptor.annotation
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = kinds[0]
    if kind is bool:
        return True
    if kind is Path:
        return tmp_path / f"{name}-sample"
    if kind is int:
        return 7
    if kind is float:
        return 7.25
    return STRING_SAMPLES.get(name, f"{name}-sample")


def tmux_command(*path: str) -> Any:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def parse_run(argv: list[str]) -> dict[str, Any]:
    """What `stxbf run` would receive from this argv (its own parser, its own conversions)."""
    ctx = run_command().make_context("run", list(argv))
    return dict(ctx.params)


def test_the_list_is_run_itself() -> None:
    names = {option.name for option in run_options()}
    assert {"target_days", "give_up_after", "request_timeout", "log_level", "db"} <= names
    assert "install_completion" not in names and "help" not in names


@pytest.mark.parametrize("where", [("tmux", "start"), ("tmux",)], ids=["start", "bare-tmux"])
def test_tmux_accepts_every_run_option(where: tuple[str, ...]) -> None:
    accepted = {opt for param in tmux_command(*where).params for opt in param.opts}
    for option in run_options():
        assert set(option.opts) <= accepted, f"{' '.join(where)} lacks {option.opts}"


def test_every_run_option_reaches_the_runner(tmp_path: Path) -> None:
    """Each option, given to `tmux start`, comes out of the runner argv with the same value."""
    for option in run_options():
        value = sample(option, tmp_path)
        overrides, run_only = split_run_options({option.name: value})
        settings = load_settings(**overrides)
        flags = run_flags(settings, run_only)
        argv = runner_argv(settings.paths, flags, inhibitor=Inhibitor("none"))
        run_at = argv.index("run")
        assert argv[run_at - 2 : run_at] == ["-m", "stxbf"]
        received = parse_run(argv[run_at + 1 :])
        got = received[str(option.name)]
        want = value.absolute() if isinstance(value, Path) else value
        assert got == want, f"{option.opts[0]}: sent {value!r}, the runner got {got!r}"


def test_environment_settings_are_frozen_into_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tmux server keeps its old environment: settings from this one travel as flags.

    `request_timeout` and `log_level` used to be dropped here (the runner got the defaults).
    """
    monkeypatch.setenv("STXBF_REQUEST_TIMEOUT", "61")
    monkeypatch.setenv("STXBF_LOG_LEVEL", "debug")
    monkeypatch.setenv("STXBF_GIVE_UP_AFTER", "3600")
    received = parse_run(run_flags(load_settings(), {}))
    assert received["request_timeout"] == 61.0
    assert received["log_level"] == "debug"  # the choice as parsed; settings say DEBUG
    assert received["give_up_after"] == 3600.0


def test_the_key_is_never_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STXBF_API_KEY", "sk-never-on-argv")
    flags = run_flags(load_settings(), {})
    assert not any("sk-never-on-argv" in flag for flag in flags)


def test_runner_argv_is_launcher_then_inhibitor_then_supervisor_then_run(tmp_path: Path) -> None:
    paths = DataPaths.of(tmp_path)
    argv = runner_argv(
        paths, ["--target-days", "3"], inhibitor=Inhibitor("x", ("inhibit", "-i")),
        key_file=tmp_path / "k",
    )  # fmt: skip
    py = sys.executable
    assert argv[:5] == [py, "-m", "stxbf.session.launch", "--key-file", str(tmp_path / "k")]
    rest = argv[argv.index("--") + 1 :]
    assert rest[:5] == ["inhibit", "-i", py, "-m", "stxbf.session.supervise"]
    assert rest[-6:] == [py, "-m", "stxbf", "run", "--target-days", "3"]


# -- reaching the same session again -----------------------------------------------------------


def test_hints_carry_every_option_needed_to_reach_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`start --socket-name ncx` used to hint `stxbf tmux attach`, which found no session."""
    from stxbf.cli.tmux.common import stxbf_hint

    monkeypatch.delenv("STXBF_HOME")
    plain = load_settings()
    assert stxbf_hint(plain, "attach", "stx-backfill", None) == "stxbf tmux attach"
    custom = load_settings(home=tmp_path / "h", db=tmp_path / "x.duckdb")
    hint = stxbf_hint(custom, "attach", "my run", "ncx")
    assert hint == (
        f"stxbf tmux attach --socket-name ncx --session-name 'my run' "
        f"--home {tmp_path / 'h'} --db {tmp_path / 'x.duckdb'}"
    )


def test_the_session_record_is_found_unless_flags_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from stxbf.cli.common import session_target
    from stxbf.paths import SessionRecord, write_session_record

    settings = load_settings()
    assert session_target(settings) == ("stx-backfill", None)
    settings.home.mkdir(parents=True, exist_ok=True)
    write_session_record(
        settings.paths.session_record,
        SessionRecord(socket_name="ncx", session_name="nightly", started_at=time.time()),
    )
    assert session_target(load_settings()) == ("nightly", "ncx")
    assert session_target(load_settings(tmux_socket="other")) == ("nightly", "other")
    monkeypatch.setenv("STXBF_SESSION_NAME", "mine")
    assert session_target(load_settings()) == ("mine", "ncx")


def test_a_log_level_the_logger_cannot_take_is_a_usage_error() -> None:
    """`--log-level` is a run option now: a bad one must be one line and exit 2, not a crash."""
    from stxbf.errors import ConfigError

    assert load_settings(log_level="warning").log_level == "WARNING"
    with pytest.raises(ConfigError, match="--log-level"):
        load_settings(log_level="LOUD")


def test_a_session_record_can_be_written_before_the_data_directory_exists(tmp_path: Path) -> None:
    from stxbf import paths

    home = tmp_path / "not-yet"
    record_path = paths.DataPaths(home=home, db=home / "stxbf.duckdb").session_record
    record = paths.SessionRecord(socket_name=None, session_name="s", started_at=0.0)
    paths.write_session_record(record_path, record)
    assert record_path.exists() and (home.stat().st_mode & 0o777) == 0o700
