"""`stxbf verify` and `stxbf run` on the command line: outcomes, JSON, a damaged file's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stxbf.cli.run import execute
from stxbf.codes import ExitCode
from stxbf.errors import DatabaseCorrupt
from stxbf.paths import DataPaths
from stxbf.report.status import build_status
from stxbf.settings import load_settings
from stxbf.simulator import SimConfig, run_in_thread
from stxbf.store import Store
from tests.fakes import build_file, damage
from tests.helpers import stxbf

pytestmark = pytest.mark.slow  # every test runs `python -m stxbf`

CHAIN = SimConfig(days=3, tx_per_day=600, seed=43)


def test_verify_counts_every_window_and_prints_json(isolated_env: Path) -> None:
    with run_in_thread(CHAIN) as server:
        settings = load_settings(api_url=server.url, target_days=2)
        assert execute(settings, interactive=False).exit_code == ExitCode.OK
        old = server.chain.tenure_burn_time[server.chain.n_tenures * 2 // 5]  # ~1.8 days ago
        server.chain.late_insert(old, 4)  # an old window, past the settle period, gains 4
        done = stxbf("verify", "--api-url", server.url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["windows_changed"] == 1
    assert (report["rows_added"], report["rows_removed"]) == (4, 0)
    assert report["windows_checked"] > 1 and report["damaged_windows"] == []
    status = build_status(
        DataPaths.of(isolated_env),
        target_days=2,
    )
    assert status.oldest_check_at is not None
    assert status.checked_at - status.oldest_check_at < 600
    shown = stxbf("status")
    assert "Oldest window check:" in shown.stdout


def test_a_damaged_file_is_reported_by_verify_and_refused_by_run(isolated_env: Path) -> None:
    path = isolated_env / "stxbf.duckdb"
    isolated_env.mkdir(parents=True, exist_ok=True)
    build_file(path)
    damage(path)  # status and health read nothing of what the noise hit
    with Store.open(path, read_only=True) as store:
        windows = store.damaged_windows()
    assert windows
    api = "http://127.0.0.1:1"  # nothing listens: neither command may get as far as asking
    checked = stxbf("verify", "--api-url", api)
    assert checked.returncode == int(DatabaseCorrupt.exit_code), checked.stderr
    assert "fail their checksums" in checked.stderr
    assert checked.stderr.count("fetch again:") == len(windows)
    as_json = stxbf("verify", "--api-url", api, "--json")
    assert as_json.returncode == int(DatabaseCorrupt.exit_code)
    report = json.loads(as_json.stdout)
    assert report["damaged_tables"] == ["transactions"]
    assert len(report["damaged_windows"]) == len(windows)
    before = path.read_bytes()
    refused = stxbf("run", "--api-url", api, "--target-days", "1")
    assert refused.returncode == int(DatabaseCorrupt.exit_code)
    assert "database damaged" in refused.stderr and "stxbf verify" in refused.stderr
    assert "cannot reach" not in refused.stderr  # refused before any request
    assert path.read_bytes() == before


def test_verify_without_a_database_is_an_error_in_json_too(isolated_env: Path) -> None:
    done = stxbf("verify", "--json")
    assert done.returncode == 1
    assert "no database" in json.loads(done.stdout)["error"]
    assert not (isolated_env / "stxbf.duckdb").exists()


def test_settle_hours_is_validated() -> None:
    done = stxbf("run", "--settle-hours", "-1")
    assert done.returncode == 2
    assert "settle_hours" in done.stderr or "--settle-hours" in done.stderr
