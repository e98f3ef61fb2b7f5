"""The data directory's files: named once, by `DataPaths`, and its records kept private."""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stxbf import paths
from stxbf.paths import (
    DataPaths,
    RunnerRecord,
    SessionRecord,
    SupervisorRecord,
    read_runner_record,
    read_session_record,
    read_supervisor_record,
    write_runner_record,
    write_session_record,
    write_supervisor_record,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "stxbf"
SUFFIXES = [
    value
    for name, value in vars(paths).items()
    if name.endswith("_SUFFIX") and isinstance(value, str)
]


def code_strings(path: Path) -> Iterator[tuple[int, str]]:
    """Yield the string constants of a module's code, leaving out its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and id(node) not in docstrings:
            yield getattr(node, "lineno", 0), str(getattr(node, "value", ""))


def spelled_suffixes(root: Path) -> list[str]:
    """Every place outside paths.py whose code spells a data-directory file's suffix."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "paths.py":
            continue
        for line, text in code_strings(path):
            found += [f"{path.relative_to(root)}:{line} {s!r}" for s in SUFFIXES if s in text]
    return found


def test_the_suffixes_are_known() -> None:
    assert {".lock", ".progress.json", ".runner.json", ".summary.json"} <= set(SUFFIXES)


def test_only_paths_names_the_files_beside_the_database() -> None:
    """A module that rebuilds `<db>.lock` or `<db>.progress.json` by hand can drift from the
    runner that writes them: every module takes a `DataPaths` instead."""
    assert spelled_suffixes(SRC) == []


def test_the_name_check_sees_a_file_named_by_hand(tmp_path: Path) -> None:
    (tmp_path / "paths.py").write_text('LOCK = ".lock"\n')
    (tmp_path / "health.py").write_text(
        '"""Reads `<db>.progress.json`."""\n\nP = db.with_name(db.name + ".progress.json")\n'
    )
    assert spelled_suffixes(tmp_path) == ["health.py:3 '.progress.json'"]


def test_two_databases_in_one_directory_share_no_file(tmp_path: Path) -> None:
    one, two = DataPaths.of(tmp_path), DataPaths.of(tmp_path, tmp_path / "other.duckdb")
    beside = ["lock", "progress", "runner_record", "session_record", "supervisor_record", "summary"]
    for name in beside:
        assert getattr(one, name) != getattr(two, name)
        assert getattr(one, name).name.startswith("stxbf.duckdb.")
    assert one.run_ending(7) == tmp_path / "run" / "outcome.7.json"


RECORDS: dict[str, tuple[Any, Any, Any, Any]] = {
    "runner": (
        DataPaths.runner_record,
        write_runner_record,
        read_runner_record,
        RunnerRecord(pid=12, started_at=1.0, host="h", tmux="/tmp/s,1,$0", tmux_pane="%3"),
    ),
    "session": (
        DataPaths.session_record,
        write_session_record,
        read_session_record,
        SessionRecord(socket_name="s", session_name="n", started_at=2.0, options={"rpm": 5}),
    ),
    "supervisor": (
        DataPaths.supervisor_record,
        write_supervisor_record,
        read_supervisor_record,
        SupervisorRecord(pid=13, state="waiting", restarts=2, restart_at=9.0, reason="x"),
    ),
}


@pytest.mark.parametrize("kind", RECORDS.keys())
def test_a_record_reads_back_as_written_and_only_its_owner_can_read_it(
    tmp_path: Path, kind: str
) -> None:
    where, write, read, record = RECORDS[kind]
    path = where.fget(DataPaths.of(tmp_path / "data"))
    old = os.umask(0o022)  # the usual umask of the shell `stxbf tmux start` is typed into
    try:
        write(path, record)
    finally:
        os.umask(old)
    assert read(path) == record
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
