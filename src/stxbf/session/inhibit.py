"""Keep the machine awake while the runner works: caffeinate on macOS, systemd-inhibit on Linux.

The inhibitor is a command *prefix*: `caffeinate -i stxbf run …` and `systemd-inhibit … stxbf run …`
both run the runner as their child and exit with it, so the inhibition can never outlive the run.
systemd-inhibit is installed in many containers where it cannot work (no logind, no D-Bus), so
`auto` probes it with a no-op before trusting it, and falls back to no inhibitor with a note.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stxbf.errors import ConfigError, OpsError

logger = logging.getLogger(__name__)

MODES = ("auto", "caffeinate", "systemd", "none")
WHY = "Backfilling Stacks transactions (stxbf run)"

Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Inhibitor:
    """Describe a sleep inhibitor: its name, its argv prefix for the runner, a note for the user."""

    name: str  # caffeinate | systemd-inhibit | none
    prefix: tuple[str, ...] = ()
    note: str | None = None  # said once when `auto` found nothing usable

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """Return `argv` run under this inhibitor, which then lasts as long as the command."""
        return [*self.prefix, *argv]


def _caffeinate(path: str) -> Inhibitor:
    return Inhibitor("caffeinate", (path, "-i"))


def _systemd(path: str) -> Inhibitor:
    return Inhibitor(
        "systemd-inhibit",
        (path, "--what=idle:sleep", "--who=stxbf", f"--why={WHY}", "--mode=block"),
    )


def systemd_usable(path: str, *, timeout: float = 5.0) -> bool:
    """Tell whether systemd-inhibit can lock: it needs logind on D-Bus, which containers lack."""
    try:
        result = subprocess.run(
            [*_systemd(path).prefix, "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("systemd-inhibit probe failed: %s", exc)
        return False
    if result.returncode != 0:
        logger.debug("systemd-inhibit probe: %s", result.stderr.decode(errors="replace").strip())
    return result.returncode == 0


def choose_inhibitor(
    mode: str = "auto",
    *,
    platform: str = sys.platform,
    which: Which = shutil.which,
    probe: Callable[[str], bool] = systemd_usable,
) -> Inhibitor:
    """Pick the inhibitor for `mode` on `platform`; an explicit choice that cannot work fails."""
    if mode not in MODES:
        raise ConfigError(f"unknown --inhibit {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return Inhibitor("none")
    caffeinate = which("caffeinate")
    systemd = which("systemd-inhibit")
    if mode == "caffeinate":
        if caffeinate is None:
            raise OpsError("caffeinate is not available here (it ships with macOS)")
        return _caffeinate(caffeinate)
    if mode == "systemd":
        if systemd is None:
            raise OpsError("systemd-inhibit is not installed")
        if not probe(systemd):
            raise OpsError(
                "systemd-inhibit is installed but cannot take a lock here (no logind / D-Bus); "
                "use --inhibit none"
            )
        return _systemd(systemd)
    # auto
    if platform == "darwin" and caffeinate is not None:
        return _caffeinate(caffeinate)
    if platform.startswith("linux") and systemd is not None:
        if probe(systemd):
            return _systemd(systemd)
        return Inhibitor(
            "none",
            note="systemd-inhibit is not usable here (no logind / D-Bus): running without a "
            "sleep inhibitor; make sure this machine does not suspend.",
        )
    return Inhibitor(
        "none",
        note="no sleep inhibitor found (caffeinate / systemd-inhibit): running without one; "
        "make sure this machine does not suspend.",
    )
