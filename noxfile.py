"""Developer sessions: `nox` runs tests, lint, typecheck; `quick`, `bench` and `torture` on demand.

Each session builds its own virtualenv with the standard library's `venv` (no uv or virtualenv
needed). Arguments after `--` go to the tool: `nox -s tests -- -k settings -x`.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2024.4"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint", "typecheck"]

ROOT = Path(__file__).parent
BENCH_SCRIPT = ROOT / "benchmarks" / "run.py"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: the same `pytest` the README's test command (and .ci/run) runs."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def quick(session: nox.Session) -> None:
    """The quick loop while editing: every test but those marked `slow` (subprocess, end to end,
    real tmux, multi-second runs); under a minute. `nox -s tests` (what CI runs) has them all."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not slow", *session.posargs)


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
