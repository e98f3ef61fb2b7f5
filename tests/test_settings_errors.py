"""A bad setting is named the way the user gave it: the flag, the variable or the config file's
key, never only the internal field name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from stxbf.cli.main import main


class Bad(NamedTuple):
    args: list[str]
    env: dict[str, str]
    config: str | None
    named: str  # what the message must say


CASES = {
    "flag": Bad(["--target-days", "0"], {}, None, "--target-days"),
    "flag-url": Bad(["--api-url", "ftp://example.com"], {}, None, "--api-url"),
    "env": Bad([], {"STXBF_TARGET_DAYS": "0"}, None, "STXBF_TARGET_DAYS"),
    "env-lowercase": Bad([], {"stxbf_concurrency": "0"}, None, "stxbf_concurrency"),
    "env-key": Bad([], {"HIRO_API_KEY": "abc\x01"}, None, "HIRO_API_KEY"),
    "config-file": Bad([], {}, "give_up_after = -1\n", "give_up_after in "),
    "flag-beats-env": Bad(["--max-pages", "0"], {"STXBF_MAX_PAGES": "0"}, None, "--max-pages"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_error_names_what_the_user_used(
    case: Bad,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    if case.config is not None:
        config = tmp_path / "config.toml"
        config.write_text(case.config, encoding="utf-8")
        monkeypatch.setenv("STXBF_CONFIG", str(config))
    monkeypatch.setattr(sys, "argv", ["stxbf", "run", *case.args])
    with pytest.raises(SystemExit) as ended:
        main()
    err = capsys.readouterr().err
    assert ended.value.code == 2, err
    assert case.named in err
    assert "invalid setting" not in err
    if case.config is not None:
        assert str(tmp_path / "config.toml") in err
