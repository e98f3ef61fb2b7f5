"""Isolation for every test: no STXBF_* / HIRO_* variables leak in; HOME and data dir are tmp.
A real tmux or a torture run is always `slow` (the quick loop leaves them out).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("STXBF_", "HIRO_")):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("STXBF_HOME", str(tmp_path / "stxbf-home"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("TMUX", raising=False)
    return tmp_path / "stxbf-home"


ALWAYS_SLOW = ("tmux", "torture")  # a real tmux server, a long fault-injection run


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive a real tmux or torture stxbf are `slow` too, so `pytest -m "not slow"`
    (the quick loop, which replaces the default `-m "not torture"`) leaves them out."""
    for item in items:
        if any(item.get_closest_marker(name) for name in ALWAYS_SLOW):
            item.add_marker(pytest.mark.slow)
