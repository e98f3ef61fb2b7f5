"""The benchmark harness runs end to end (`benchmarks/run.py --smoke`): structure and sanity only.

Speed is never asserted here: the machines that run the suite are noisy. What must hold on any
machine is asserted: every section ran, the figures are consistent with each other, nothing was
sent before a retry-after elapsed, and every stored transaction is there exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"
Smoke = tuple[dict[str, Any], str]  # the results JSON, the printed table

pytestmark = [
    pytest.mark.slow,  # the benchmark harness end to end: tens of seconds
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)"
    ),
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(out), "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_every_section_reports(smoke: Smoke) -> None:
    report, _ = smoke
    assert report["profile"] == "smoke"
    assert report["errors"] == {}
    assert set(report["sections"]) == {"rate", "styles", "seed", "bulk", "commands", "projection"}
    machine = report["machine"]
    assert machine["cores"] and machine["python"] and "duckdb" in machine["versions"]


def test_the_rate_limited_run_is_sane(smoke: Smoke) -> None:
    rate = smoke[0]["sections"]["rate"]
    assert rate["allowed_rpm"] == 600
    assert rate["transactions"] > 0 and rate["requests"] > 0
    assert rate["requests_sent"] >= rate["requests"]
    assert 0 < rate["utilisation"] <= 1.05  # never meaningfully above the limit
    assert rate["early_requests"] == 0
    assert rate["share_429"] is not None and rate["share_429"] <= 0.5


def test_each_rate_limit_header_style_is_measured(smoke: Smoke) -> None:
    report, table = smoke
    runs = report["sections"]["styles"]["styles"]
    assert runs  # the smoke profile runs a few of the styles
    for name, run in runs.items():
        assert run["exit_code"] == 0, (name, run["error"])
        assert run["early_requests"] == 0, name
        assert run["requests"] > 0 and run["stated_per_s"] > 0
        assert run["share_429"] is not None and run["share_429"] <= 0.5
        # a rate was reached and read, and it is never meaningfully above the stated window
        assert run["achieved_per_s"] is not None and 0 < run["ratio"] <= 1.1, name
        assert run["learning_delay_s"] is not None and run["learning_delay_s"] >= 0
        assert f"| {name} |" in table


def test_the_seed_comparison_and_projection(smoke: Smoke) -> None:
    sections = smoke[0]["sections"]
    seed, projection = sections["seed"], sections["projection"]
    assert seed["requests"] > 0 and seed["speedup"] > 0
    # a year at 50/min can never take less than the limit allows: 2M tx / 50 per page / 50 per min
    assert projection["hours_at_50"] >= projection["year_requests"] / 50 / 60 * 0.99
    assert projection["hours_at_500"] < projection["hours_at_50"]


def test_the_bulk_backfill_is_complete_and_measured(smoke: Smoke) -> None:
    bulk = smoke[0]["sections"]["bulk"]
    assert bulk["transactions"] > 10_000
    assert bulk["distinct_tx_ids"] == bulk["transactions"]  # stored exactly once
    assert bulk["tx_per_s"] > 0 and bulk["pages_per_s"] > 0
    assert bulk["ceiling"]["pages_per_s"] > 0 and bulk["ceiling"]["non_200"] == 0
    assert bulk["ceiling_ratio"] > 0
    assert 20 < bulk["peak_rss_mb"] < 4096
    assert all(value is not None for value in bulk["peak_rss_mb_at"].values())
    assert 0 < bulk["bytes_per_tx"] < 10_000


def test_commands_are_timed_idle_and_while_a_run_holds_the_database(
    smoke: Smoke,
) -> None:
    commands = smoke[0]["sections"]["commands"]
    assert set(commands["idle"]) == {"help", "completion", "status", "health"}
    assert set(commands["while_running"]) >= {"status", "health"}
    assert commands["while_running"]["holder_still_running"] is True
    assert commands["idle"]["help"]["exit_codes"] == [0]
    for timing in [*commands["idle"].values(), commands["while_running"]["status"]]:
        assert 0 < timing["best_s"] < 30


def test_the_table_names_all_seven_measurements(smoke: Smoke) -> None:
    _, table = smoke
    for number in range(1, 8):
        assert f"| {number}. " in table


def test_memory_at_a_mark_skips_a_last_sample_that_found_the_process_gone() -> None:
    """The sampler reads the memory, then the progress file: a process exiting in between
    leaves a sample with a count and a memory of 0 (a zombie's, through psutil). A mark it
    crosses takes the run's peak, not `None` (which once failed the smoke test above)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import procs  # type: ignore[import-not-found]
        import run  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPT.parent))
    mb = 2**20
    result = procs.RunResult(exit_code=0, wall_s=3.0, peak_rss=90 * mb)
    result.samples = [
        procs.Sample(1.0, 40 * mb, 50 * mb, 1_000, None, None),
        procs.Sample(2.0, 60 * mb, 70 * mb, 5_000, None, None),
        procs.Sample(3.0, 0, None, 20_000, None, None),  # the process was exiting
    ]
    marks = run.memory_at_marks(result, [1_000, 5_000, 20_000, 50_000], stored=20_000)
    assert marks == {"1000": 50.0, "5000": 70.0, "20000": 90.0, "50000": None}
