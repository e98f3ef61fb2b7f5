"""Torture tests report what they measured (kills, waste, stop times) at the end of the run."""

from __future__ import annotations

from typing import Any

import pytest

_FIGURES: list[tuple[str, str]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    """`figures("kills", 21)`: printed under "torture figures" when the session ends."""

    def record(name: str, value: object) -> None:
        _FIGURES.append((f"{request.node.name}: {name}", str(value)))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("torture figures")
        for name, value in _FIGURES:
            terminalreporter.write_line(f"{name} = {value}")
