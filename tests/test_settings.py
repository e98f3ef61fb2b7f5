"""Settings: flag > environment > config file > default, the API key as a secret, one-line errors.

The autouse `isolated_env` fixture (conftest.py) has already removed every STXBF_*/HIRO_* variable
and pointed HOME, XDG_CONFIG_HOME and STXBF_HOME at tmp paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from stxbf.codes import ExitCode
from stxbf.errors import ConfigError
from stxbf.settings import DEFAULT_API_URL, check_key_transport, config_file_path, load_settings

SECRET = "hiro-test-key-5f1e2d"


def write_config(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("STXBF_CONFIG", str(path))
    return path


# --- precedence -----------------------------------------------------------------------------------


class Layers(NamedTuple):
    test_id: str
    field: str
    flag: Any  # passed to load_settings(field=...), as a CLI option would; None = not given
    env: str | None  # STXBF_<FIELD>
    file: str | None  # TOML literal in the config file
    expected: Any


LAYERS = [
    Layers("default-only", "target_days", None, None, None, 365),
    Layers("file-over-default", "target_days", None, None, "30", 30),
    Layers("env-over-default", "target_days", None, "60", None, 60),
    Layers("env-over-file", "target_days", None, "60", "30", 60),
    Layers("flag-over-file", "target_days", 7, None, "30", 7),
    Layers("flag-over-env", "target_days", 7, "60", None, 7),
    Layers("flag-over-env-and-file", "target_days", 7, "60", "30", 7),
    Layers("url-default", "api_url", None, None, None, DEFAULT_API_URL),
    Layers(
        "url-env-over-file",
        "api_url",
        None,
        "http://127.0.0.1:3999",
        '"http://127.0.0.1:4000"',
        "http://127.0.0.1:3999",
    ),
    Layers(
        "url-flag-over-env",
        "api_url",
        "http://127.0.0.1:5000/",
        "http://127.0.0.1:3999",
        None,
        "http://127.0.0.1:5000",
    ),
    Layers("session-file-over-default", "session_name", None, None, '"nightly"', "nightly"),
    Layers("rpm-env-over-file", "rpm", None, "120", "60", 120.0),
    Layers("concurrency-flag-over-all", "concurrency", 4, "8", "32", 4),
]


@pytest.mark.parametrize("case", LAYERS, ids=[case.test_id for case in LAYERS])
def test_precedence(case: Layers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.env is not None:
        monkeypatch.setenv(f"STXBF_{case.field.upper()}", case.env)
    if case.file is not None:
        write_config(tmp_path / "config.toml", f"{case.field} = {case.file}\n", monkeypatch)
    overrides = {} if case.flag is None else {case.field: case.flag}

    settings = load_settings(**overrides)

    assert getattr(settings, case.field) == case.expected


def test_none_flag_means_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer passes None for an option the user left out: it must not hide env or file."""
    write_config(tmp_path / "config.toml", "target_days = 30\n", monkeypatch)
    assert load_settings(target_days=None).target_days == 30


def test_platform_config_file_is_read(isolated_env: Path) -> None:
    path = config_file_path()
    assert path == Path.home() / ".config" / "stxbf" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("max_pages = 12\n", encoding="utf-8")
    assert load_settings().max_pages == 12


def test_explicit_config_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STXBF_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings()


# --- the API key ----------------------------------------------------------------------------------


def test_hiro_api_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIRO_API_KEY", SECRET)
    key = load_settings().api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_stxbf_api_key_wins_over_hiro_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIRO_API_KEY", "the-other-one")
    monkeypatch.setenv("STXBF_API_KEY", SECRET)
    key = load_settings().api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_env_key_wins_over_config_file_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path / "config.toml", 'api_key = "from-file"\n', monkeypatch)
    monkeypatch.setenv("HIRO_API_KEY", SECRET)
    key = load_settings().api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_config_file_key_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path / "config.toml", f'api_key = "{SECRET}"\n', monkeypatch)
    key = load_settings().api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_generic_api_key_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another tool's API_KEY must never be sent to the Hiro API."""
    monkeypatch.setenv("API_KEY", SECRET)
    assert load_settings().api_key is None


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
def test_blank_key_means_no_key(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STXBF_API_KEY", blank)
    assert load_settings().api_key is None


def test_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STXBF_API_KEY", SECRET)
    settings = load_settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.api_key)):
        assert SECRET not in shown


def test_bad_key_type_error_does_not_echo_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path / "config.toml", "api_key = 918273645\n", monkeypatch)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "918273645" not in caught.value.message


@pytest.mark.parametrize(
    ("url", "key", "allowed"),
    [
        ("https://api.example.org", SECRET, True),
        ("http://api.example.org", SECRET, False),
        ("http://127.0.0.1:3999", SECRET, True),
        ("http://[::1]:3999", SECRET, True),
        ("http://api.example.org", None, True),
    ],
    ids=["https-remote", "http-remote", "http-loopback-v4", "http-loopback-v6", "http-no-key"],
)
def test_key_only_over_https_or_loopback(
    url: str, key: str | None, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if key is not None:
        monkeypatch.setenv("STXBF_API_KEY", key)
    settings = load_settings(api_url=url)
    if allowed:
        check_key_transport(settings)
    else:
        with pytest.raises(ConfigError, match="plain http") as caught:
            check_key_transport(settings)
        assert SECRET not in caught.value.message


# --- bad values -----------------------------------------------------------------------------------


class Bad(NamedTuple):
    test_id: str
    env: dict[str, str]
    flags: dict[str, Any]
    config: str | None
    mentions: str  # the message names the culprit


BAD = [
    Bad("target-days-zero-flag", {}, {"target_days": 0}, None, "--target-days"),
    Bad("target-days-negative-flag", {}, {"target_days": -5}, None, "--target-days"),
    Bad("target-days-100000-flag", {}, {"target_days": 100_000}, None, "--target-days"),
    Bad("target-days-zero-env", {"STXBF_TARGET_DAYS": "0"}, {}, None, "STXBF_TARGET_DAYS"),
    Bad("target-days-word-env", {"STXBF_TARGET_DAYS": "a year"}, {}, None, "STXBF_TARGET_DAYS"),
    Bad("target-days-empty-env", {"STXBF_TARGET_DAYS": ""}, {}, None, "STXBF_TARGET_DAYS"),
    Bad("concurrency-zero-flag", {}, {"concurrency": 0}, None, "--concurrency"),
    Bad("concurrency-zero-env", {"STXBF_CONCURRENCY": "0"}, {}, None, "STXBF_CONCURRENCY"),
    Bad("concurrency-zero-file", {}, {}, "concurrency = 0\n", "concurrency in "),
    Bad("rpm-negative-env", {"STXBF_RPM": "-1"}, {}, None, "STXBF_RPM"),
    Bad("api-url-ftp-flag", {}, {"api_url": "ftp://x"}, None, "--api-url"),
    Bad("api-url-ftp-env", {"STXBF_API_URL": "ftp://x"}, {}, None, "STXBF_API_URL"),
    Bad("api-url-no-host", {"STXBF_API_URL": "https://"}, {}, None, "STXBF_API_URL"),
    Bad("toml-malformed", {}, {}, "target_days = \n", "config file"),
    Bad("toml-unclosed-table", {}, {}, "[stxbf\n", "config file"),
    Bad("toml-wrong-type", {}, {}, 'target_days = "a year"\n', "target_days in "),
]


@pytest.mark.parametrize("case", BAD, ids=[case.test_id for case in BAD])
def test_bad_values_raise_one_line_config_error(
    case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    if case.config is not None:
        write_config(tmp_path / "config.toml", case.config, monkeypatch)

    with pytest.raises(ConfigError) as caught:
        load_settings(**case.flags)

    message = caught.value.message
    assert case.mentions in message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.__suppress_context__  # no pydantic traceback chained under it


def test_api_url_trailing_slash_is_trimmed() -> None:
    assert load_settings(api_url="https://api.example.org/").api_url == "https://api.example.org"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:3999", True),
        ("http://localhost:3999", True),
        ("http://[::1]:3999", True),
        (DEFAULT_API_URL, False),
    ],
    ids=["ipv4", "localhost", "ipv6", "hiro"],
)
def test_api_is_loopback(url: str, loopback: bool) -> None:
    assert load_settings(api_url=url).api_is_loopback is loopback


# --- paths ----------------------------------------------------------------------------------------


def test_paths_default_under_stxbf_home(isolated_env: Path) -> None:
    settings = load_settings()
    assert settings.home == isolated_env
    assert settings.db_path == isolated_env / "stxbf.duckdb"
    assert settings.paths.lock == isolated_env / "stxbf.duckdb.lock"
    assert settings.paths.progress == isolated_env / "stxbf.duckdb.progress.json"
    assert settings.log_path == isolated_env / "logs" / "stxbf.log"


def test_home_defaults_to_platform_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STXBF_HOME")
    assert load_settings().home == Path.home() / ".local" / "share" / "stxbf"


def test_stxbf_db_overrides_the_database_path(
    tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STXBF_DB", str(tmp_path / "elsewhere" / "chain.duckdb"))
    settings = load_settings()
    assert settings.db_path == tmp_path / "elsewhere" / "chain.duckdb"
    assert settings.paths.lock == tmp_path / "elsewhere" / "chain.duckdb.lock"
    assert settings.paths.progress == tmp_path / "elsewhere" / "chain.duckdb.progress.json"
    assert settings.log_path == isolated_env / "logs" / "stxbf.log"  # the log stays in STXBF_HOME


def test_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STXBF_HOME", "~/backfill")
    monkeypatch.setenv("STXBF_DB", "~/dbs/stx.duckdb")
    settings = load_settings()
    assert settings.home == Path.home() / "backfill"
    assert settings.db_path == Path.home() / "dbs" / "stx.duckdb"
