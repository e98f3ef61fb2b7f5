"""Choosing the sleep inhibitor per OS, and probing systemd-inhibit before trusting it."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from stxbf.errors import ConfigError, OpsError
from stxbf.session.inhibit import choose_inhibitor, systemd_usable


class Case(NamedTuple):
    mode: str
    platform: str
    tools: set[str]
    usable: bool
    name: str
    prefix_head: str | None
    noted: bool


CASES = {
    "macos-auto": Case("auto", "darwin", {"caffeinate"}, False, "caffeinate", "caffeinate", False),
    "linux-usable": Case("auto", "linux", {"systemd-inhibit"}, True, "systemd-inhibit",
                         "systemd-inhibit", False),
    "container": Case("auto", "linux", {"systemd-inhibit"}, False, "none", None, True),
    "linux-bare": Case("auto", "linux", set(), False, "none", None, True),
    "forced-none": Case("none", "darwin", {"caffeinate"}, True, "none", None, False),
    "forced-systemd": Case("systemd", "linux", {"systemd-inhibit"}, True, "systemd-inhibit",
                           "systemd-inhibit", False),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_choose(case: Case) -> None:
    inhibitor = choose_inhibitor(
        case.mode,
        platform=case.platform,
        which=lambda tool: f"/usr/bin/{tool}" if tool in case.tools else None,
        probe=lambda _path: case.usable,
    )
    assert inhibitor.name == case.name
    head = inhibitor.prefix[0].rsplit("/", 1)[-1] if inhibitor.prefix else None
    assert head == case.prefix_head
    assert (inhibitor.note is not None) == case.noted
    assert inhibitor.wrap(["stxbf", "run"])[-2:] == ["stxbf", "run"]


def test_systemd_prefix_inhibits_idle_and_sleep_for_the_runner_only() -> None:
    inhibitor = choose_inhibitor(
        "systemd", platform="linux", which=lambda t: f"/bin/{t}", probe=lambda _p: True
    )
    assert "--what=idle:sleep" in inhibitor.prefix and "--who=stxbf" in inhibitor.prefix
    caffeinate = choose_inhibitor("caffeinate", platform="darwin", which=lambda t: f"/bin/{t}")
    assert caffeinate.prefix == ("/bin/caffeinate", "-i")


@pytest.mark.parametrize(
    ("mode", "tools", "usable", "error"),
    [
        ("caffeinate", set(), True, OpsError),
        ("systemd", set(), True, OpsError),
        ("systemd", {"systemd-inhibit"}, False, OpsError),
        ("sometimes", set(), True, ConfigError),
    ],
    ids=["no-caffeinate", "no-systemd", "systemd-unusable", "unknown-mode"],
)
def test_explicit_choice_that_cannot_work_fails(
    mode: str, tools: set[str], usable: bool, error: type[Exception]
) -> None:
    with pytest.raises(error):
        choose_inhibitor(
            mode,
            platform="linux",
            which=lambda tool: tool if tool in tools else None,
            probe=lambda _path: usable,
        )


def test_probe_fails_cleanly_for_a_missing_binary() -> None:
    assert systemd_usable("/nonexistent/systemd-inhibit") is False
