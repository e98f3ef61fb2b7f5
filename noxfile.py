"""Developer sessions: `nox` runs tests, lint, typecheck; `quick`, `quick-on`, `bench` and `torture`
on demand.

Each session builds its own virtualenv with the standard library's `venv` (no uv or virtualenv
needed). Arguments after `--` go to the tool: `nox -s tests -- -k settings -x`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.4"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.download_python = "never"  # test the interpreters users have, never fetch one
nox.options.error_on_missing_interpreters = False  # an absent one is skipped, and nox says so

ROOT = Path(__file__).parent
BENCH_SCRIPT = ROOT / "benchmarks" / "run.py"
# the Pythons users run that `requires-python` claims: the oldest, Ubuntu 24.04's, Debian 13's
PYTHONS = ["3.10", "3.12", "3.13"]


def _runs(command: str) -> bool:
    """Whether `command` on PATH is an interpreter that starts (a pyenv shim of a version that
    is installed but not selected is on PATH and fails)."""
    found = shutil.which(command)
    return (
        found is not None and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0
    )


def _put_pyenv_versions_on_path() -> None:
    """Installed pyenv versions that PATH does not reach go on it (nox finds `python3.X` there)."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    extra = []
    for version in PYTHONS:
        if _runs(f"python{version}"):
            continue
        builds = sorted(versions.glob(f"{version}.*/bin/python{version}"))
        if builds:
            extra.append(str(builds[-1].parent))
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


_put_pyenv_versions_on_path()


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: the same `pytest` the README's test command (and .ci/run) runs."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def quick(session: nox.Session) -> None:
    """The quick loop while editing: every test but those marked `slow` (subprocess, end to end,
    real tmux, multi-second runs); about 31 s on 2 idle cores. `nox -s tests` (what
    CI runs) has them all."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(name="quick-on", python=PYTHONS)
def quick_on(session: nox.Session) -> None:
    """The quick loop on each Python users run (`nox -s quick-on-3.13`; `quick-on`: all of them).
    An interpreter that is not installed is skipped, with nox saying so."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff's lint rules and formatting check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/stxbf (settings in pyproject.toml)."""
    session.install("-e", ".", "mypy")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark harness against the local simulator: `nox -s bench -- --help`."""
    if not BENCH_SCRIPT.exists():
        session.skip(f"{BENCH_SCRIPT.relative_to(ROOT)} does not exist yet")
    session.install("-e", ".[test]")
    session.run("python", str(BENCH_SCRIPT.relative_to(ROOT)), *session.posargs)


@nox.session
def torture(session: nox.Session) -> None:
    """Long fault-injection runs (tests marked `torture`)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "torture", *session.posargs)
