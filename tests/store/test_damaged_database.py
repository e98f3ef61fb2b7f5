"""A damaged database gets the documented answer from `status`, `health` and `run`: the
database-problem code, valid JSON with `--json`, and a hint that says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from stxbf.codes import ExitCode, HealthCode
from stxbf.errors import DatabaseCorrupt
from stxbf.store import Store
from tests.fakes import END, day, make_db
from tests.helpers import run_cli, stxbf

ROWS = 150_000  # ~4 MB: the 800 KB overwrite at 400 KB lands inside the data


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database as a finished run leaves it, big enough to be damaged in the middle."""
    path = tmp_path_factory.mktemp("pristine") / "stxbf.duckdb"
    make_db(path, [(day(0)[0], END, "verified")])
    with Store.open(path) as store:
        store._con.execute(  # bulk rows straight through DuckDB: fast, and realistic in size
            "INSERT INTO transactions (tx_id, tx_type, sender_address, burn_block_time) "
            "SELECT md5(i::VARCHAR), 'token_transfer', 'SP' || md5((i % 5000)::VARCHAR), "
            "? + i % 80000 FROM range(?) t(i)",
            [day(0)[0], ROWS],
        )
        store.save_summary()
        store.checkpoint()
    return path


def overwrite_middle(path: Path) -> None:
    """`dd if=/dev/urandom of=F bs=4096 seek=100 count=200 conv=notrunc`"""
    with path.open("r+b") as handle:
        handle.seek(100 * 4096)
        handle.write(os.urandom(200 * 4096))


def truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "overwritten-middle": (overwrite_middle, "move it aside"),
    "truncated": (truncate, "move it aside"),
    "zero-bytes": (empty, "remove it"),
}


@pytest.fixture(params=DAMAGE.keys())
def damaged(request: pytest.FixtureRequest, pristine: Path, isolated_env: Path) -> tuple[Path, str]:
    isolated_env.mkdir(parents=True, exist_ok=True)
    path = isolated_env / "stxbf.duckdb"
    shutil.copyfile(pristine, path)
    damage, hint = DAMAGE[request.param]
    damage(path)
    return path, hint


def test_status_json_says_database_problem(damaged, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, hint = damaged
    code, out, _ = run_cli(["status", "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == ExitCode.DATABASE == data["exit_code"]
    assert data["state"] == "database_problem"
    assert hint in data["hint"] and "stxbf run" in data["hint"]
    code, out, err = run_cli(["status"], capsys, monkeypatch)
    assert code == ExitCode.DATABASE
    assert err.startswith("stxbf: error: ") and hint in err and "internal error" not in err


def test_health_json_says_database_problem(damaged, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, hint = damaged
    code, out, _ = run_cli(["health", "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == HealthCode.DATABASE_PROBLEM == data["exit_code"]
    assert data["verdict"] == "database_problem"
    assert hint in data["hint"]
    assert {c["name"]: c["status"] for c in data["checks"]}["database"] == "fail"


def test_opening_for_a_run_raises_database_corrupt_with_the_hint(damaged) -> None:  # type: ignore[no-untyped-def]
    path, hint = damaged
    # what a run reads before it fetches anything
    with pytest.raises(DatabaseCorrupt) as caught, Store.open(path) as store:
        store.windows()
        store.summary(wallets=True)
        store.tx_ids()
    assert caught.value.exit_code == ExitCode.DATABASE
    assert caught.value.hint is not None and hint in caught.value.hint


@pytest.mark.slow  # `python -m stxbf run`
def test_run_exits_with_the_database_code(damaged, isolated_env: Path) -> None:  # type: ignore[no-untyped-def]
    _, hint = damaged
    env = {**os.environ, "STXBF_HOME": str(isolated_env)}
    result = stxbf(
        "run", "--target-days", "1", "--api-url", "http://127.0.0.1:1", env=env, timeout=60
    )
    assert result.returncode == ExitCode.DATABASE, result.stderr
    assert hint in result.stderr
    assert "internal error" not in result.stderr


def test_a_pristine_copy_reads_fine(  # type: ignore[no-untyped-def]
    pristine: Path, isolated_env: Path, capsys, monkeypatch
) -> None:
    isolated_env.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pristine, isolated_env / "stxbf.duckdb")
    code, out, _ = run_cli(["status", "--json", "--target-days", "10"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["transactions"] == ROWS + 2
