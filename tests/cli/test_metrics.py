"""`stxbf metrics`: Prometheus text exposition that parses, says what `status --json` and
`health --json` say for the same state, carries every registry verdict once, and replaces its
`--output` file in one rename.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stxbf import codes, snapshot
from stxbf.cli.metrics import build_metrics, render_metrics, write_textfile
from stxbf.codes import STATUS_STATES, VERDICTS, Outcome
from stxbf.errors import QuotaExhausted
from stxbf.report.health import HealthReport
from stxbf.runner import Runner
from stxbf.simulator import SimConfig, run_in_thread
from stxbf.simulator.api import SimApi
from stxbf.simulator.transport import SimTransport
from tests.checks import SMALL
from tests.fakes import END, day, make_db, params, publish_running
from tests.helpers import assert_one_line_error, run_cli, stxbf, wait_for_snapshot

FAKE_RUNNER = Path(__file__).resolve().parents[1] / "fake_runner.py"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# metric → the `status --json` field it carries (absent where the field is null)
STATUS_FIELDS = {
    "stxbf_days_covered": "days_verified",
    "stxbf_days_partial": "days_partial",
    "stxbf_days_missing": "days_missing",
    "stxbf_days_target": "target_days",
    "stxbf_status_exit_code": "exit_code",
    "stxbf_transactions": "transactions",
    "stxbf_wallets": "wallets",
    "stxbf_database_size_bytes": "db_bytes",
    "stxbf_latest_transaction_timestamp_seconds": "latest_tx_time",
    "stxbf_last_progress_timestamp_seconds": "last_progress_at",
    "stxbf_consecutive_failures": "consecutive_failures",
    "stxbf_requests_per_minute": "rate_rpm",
    "stxbf_rate_limit_requests_per_minute": "limit_rpm",
    "stxbf_eta_seconds": "eta_seconds",
    "stxbf_rate_limited_until_timestamp_seconds": "rate_limited_until",
    "stxbf_quota_remaining": "quota_remaining",
    "stxbf_quota_limit": "quota_limit",
    "stxbf_restarts_total": "restarts",
}
# counter → the key in `status --json`'s `counters` (absent where `counters` is null)
COUNTER_FIELDS = {
    "stxbf_requests_total": "requests",
    "stxbf_pages_total": "pages",
    "stxbf_rate_limited_responses_total": "responses_429",
    "stxbf_errors_total": "errors",
    "stxbf_retries_total": "retries",
}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = rf"\{{(?:[a-zA-Z_]\w*={LABEL_VALUE})(?:,[a-zA-Z_]\w*={LABEL_VALUE})*\}}"
SAMPLE = re.compile(rf"^({NAME})(?:{LABELS})? (?:[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?|NaN|[+-]Inf)$")


def check_format(text: str) -> None:
    """Text format 0.0.4, strictly: HELP and TYPE before each family's samples, a final newline."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    typed: dict[str, str] = {}
    current = ""
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            current = line.split(" ")[2]
            assert current not in typed, f"{current} is described twice"
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("gauge", "counter"), line
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            assert match.group(1) == current, line


def parse(text: str) -> tuple[Samples, set[str]]:
    """{(sample name, labels without db): value} and the db labels seen; the text checked first."""
    check_format(text)
    samples: Samples = {}
    dbs = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            dbs.add(labels.pop("db"))
            key = (sample.name, tuple(sorted(labels.items())))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples, dbs


def one_of(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def plain(samples: Samples) -> dict[str, float]:
    return {name: value for (name, labels), value in samples.items() if not labels}


def assert_matches(samples: Samples, status: dict[str, Any], health: dict[str, Any]) -> None:
    """Every value the metrics carry is the one `status --json` / `health --json` print."""
    values = plain(samples)
    for metric, key in STATUS_FIELDS.items():
        assert values.get(metric) == status[key], metric
    for metric, key in COUNTER_FIELDS.items():
        expected = (status["counters"] or {}).get(key)
        assert values.get(metric) == expected, metric
    assert values["stxbf_runner_up"] == (1 if status["runner"]["alive"] else 0)
    assert one_of(samples, "stxbf_status", "state") == {
        str(state): float(state == status["state"]) for state in STATUS_STATES
    }
    verdicts = one_of(samples, "stxbf_health", "verdict")
    assert verdicts == {str(v): float(v == health["verdict"]) for v in VERDICTS}
    assert values["stxbf_health_exit_code"] == health["exit_code"]
    (info,) = [dict(labels) for name, labels in samples if name == "stxbf_info"]
    assert info["source"] == (status["run_source"] or "")
    assert info["read_from"] == status["source"]


class Views(NamedTuple):
    samples: Samples
    dbs: set[str]
    status: dict[str, Any]
    health: dict[str, Any]


def views(capsys, monkeypatch, *args: str) -> Views:  # type: ignore[no-untyped-def]
    """`metrics`, `status --json` and `health --json` with the same arguments, in this process."""
    code, out, err = run_cli(["metrics", *args], capsys, monkeypatch)
    assert (code, err) == (0, "")
    samples, dbs = parse(out)
    _, status, _ = run_cli(["status", "--json", *args], capsys, monkeypatch)
    health_args = [arg for arg in args if not arg.startswith("--target-days")]
    _, health, _ = run_cli(["health", "--json", *health_args], capsys, monkeypatch)
    return Views(samples, dbs, json.loads(status), json.loads(health))


@pytest.fixture
def db(isolated_env: Path) -> Path:
    return isolated_env / "stxbf.duckdb"


# -- the same state as status and health ---------------------------------------------------------


def test_before_any_run(db: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen = views(capsys, monkeypatch)
    assert_matches(seen.samples, seen.status, seen.health)
    assert seen.status["state"] == "not_started" and seen.health["verdict"] == "not_running"
    assert seen.dbs == {str(db)}
    assert "stxbf_eta_seconds" not in plain(seen.samples)  # only when known


@pytest.mark.parametrize(
    "windows",
    [[(day(0)[0], END, "verified")], [(day(0)[0], day(3)[1], "verified")]],
    ids=["complete", "incomplete"],
)
def test_an_idle_database(db: Path, capsys, monkeypatch, windows) -> None:  # type: ignore[no-untyped-def]
    db.parent.mkdir(parents=True)
    make_db(db, windows)
    seen = views(capsys, monkeypatch)
    assert_matches(seen.samples, seen.status, seen.health)
    assert plain(seen.samples)["stxbf_transactions"] == seen.status["transactions"] > 0


@pytest.mark.parametrize(
    "damage", [b"", b"not a database, garbage " * 200], ids=["zero-bytes", "garbage"]
)
def test_a_damaged_database_still_gives_metrics(  # type: ignore[no-untyped-def]
    db: Path, capsys, monkeypatch, damage: bytes
) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(damage)
    seen = views(capsys, monkeypatch)  # exit 0: the verdict is in the metrics
    assert_matches(seen.samples, seen.status, seen.health)
    assert one_of(seen.samples, "stxbf_health", "verdict")["database_problem"] == 1


@pytest.mark.slow  # `stxbf run` end to end, in its own process
def test_a_finished_run_against_the_simulator(isolated_env: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with run_in_thread(SMALL.with_(days=4)) as sim:
        result = stxbf("run", "--api-url", sim.url, "--target-days", "3")
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("STXBF_TARGET_DAYS", "3")  # judged against the configured target
    seen = views(capsys, monkeypatch)
    assert_matches(seen.samples, seen.status, seen.health)
    values = plain(seen.samples)
    assert values["stxbf_days_covered"] == values["stxbf_days_target"] == 3
    assert seen.health["verdict"] == "healthy" and values["stxbf_transactions"] > 0


@pytest.fixture
def fake_runner(db: Path) -> Iterator[subprocess.Popen[str]]:
    """A live runner (tests/fake_runner.py) that published one snapshot and then holds still."""
    db.parent.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_RUNNER), "--db", str(db), "--stale", "--seconds", "120"],
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_snapshot(db.with_name(db.name + ".progress.json"), lambda s: True, proc=proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_running_backfill(db: Path, fake_runner, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen = views(capsys, monkeypatch, "--stall-seconds", "3600")
    assert_matches(seen.samples, seen.status, seen.health)
    values = plain(seen.samples)
    assert values["stxbf_runner_up"] == 1 and seen.status["state"] == "running"
    assert values["stxbf_requests_total"] == seen.status["counters"]["requests"] > 0
    assert values["stxbf_rate_limited_responses_total"] == 1
    assert values["stxbf_eta_seconds"] == 3600.0
    assert values["stxbf_rate_limit_requests_per_minute"] == 500.0


def test_the_status_is_built_once_and_health_judges_that_one(  # type: ignore[no-untyped-def]
    db: Path, capsys, monkeypatch
) -> None:
    import stxbf.report.health
    import stxbf.report.status

    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], END, "verified")])  # 10 days, complete: a 20-day target is not
    built = []
    real = stxbf.report.status.build_status

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stxbf.report.status, "build_status", counted)
    monkeypatch.setattr(stxbf.report.health, "build_status", counted)
    code, out, _ = run_cli(["metrics", "--target-days", "20"], capsys, monkeypatch)
    assert code == 0 and len(built) == 1
    samples, _ = parse(out)
    assert one_of(samples, "stxbf_status", "state")["incomplete"] == 1
    assert one_of(samples, "stxbf_health", "verdict")["not_running"] == 1  # not "complete"


# -- the target: flag > env > config file > the last run's, as status reads it ------------------


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [
        ([], {}, None),
        (["--target-days", "20"], {}, None),
        ([], {"STXBF_TARGET_DAYS": "30"}, None),
        ([], {}, "target_days = 40\n"),
        (["--target-days", "20"], {"STXBF_TARGET_DAYS": "30"}, "target_days = 40\n"),
    ],
    ids=["none", "flag", "env", "config-file", "flag-over-env-and-file"],
)
def test_the_target_is_read_as_status_reads_it(  # type: ignore[no-untyped-def]
    db: Path, capsys, monkeypatch, args: list[str], env: dict[str, str], config: str | None
) -> None:
    db.parent.mkdir(parents=True)
    make_db(db, [(day(0)[0], END, "verified")])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if config is not None:
        path = db.parent / "stxbf.toml"
        path.write_text(config, encoding="utf-8")
        monkeypatch.setenv("STXBF_CONFIG", str(path))
    code, out, _ = run_cli(["metrics", *args], capsys, monkeypatch)
    _, status, _ = run_cli(["status", "--json", *args], capsys, monkeypatch)
    assert code == 0
    samples, _ = parse(out)
    assert plain(samples)["stxbf_days_target"] == json.loads(status)["target_days"]
    if args:
        assert plain(samples)["stxbf_days_target"] == 20


# -- the registry's verdicts, whatever they are ---------------------------------------------------


def health_report(verdict: str) -> HealthReport:
    return HealthReport(verdict=verdict, exit_code=0, checked_at=1.5e9, reasons=[], checks=[])


def test_every_registry_verdict_appears_once_and_one_is_1(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(codes.VERDICTS, "degraded", Outcome("Degraded", 9))  # another's, later
    text = render_metrics(build_metrics(None, health_report("degraded"), db="/d", version="0"))
    samples, _ = parse(text)
    verdicts = one_of(samples, "stxbf_health", "verdict")
    assert sorted(verdicts) == sorted(str(v) for v in codes.VERDICTS)
    assert verdicts["degraded"] == 1 and sum(verdicts.values()) == 1


def test_label_values_are_escaped(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / 'a "quoted" \\ dir\nwith a newline' / "stxbf.duckdb"
    code, out, _ = run_cli(["metrics", "--db", str(odd)], capsys, monkeypatch)
    assert code == 0
    _, dbs = parse(out)
    assert dbs == {str(odd)}


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--bogus"], ["--target-days", "0"]], ids=["flag", "value"])
def test_a_usage_error_exits_64(capsys, monkeypatch, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli(["metrics", *args], capsys, monkeypatch)
    assert (code, out) == (64, "")
    assert err.startswith("stxbf: error:")


def test_a_config_error_exits_64_and_still_says_so_in_the_metrics(  # type: ignore[no-untyped-def]
    capsys, monkeypatch
) -> None:
    monkeypatch.setenv("STXBF_TARGET_DAYS", "many")
    code, out, err = run_cli(["metrics"], capsys, monkeypatch)
    assert code == 64
    assert err.startswith("stxbf: error: invalid STXBF_TARGET_DAYS")
    samples, _ = parse(out)
    assert one_of(samples, "stxbf_health", "verdict")["config_error"] == 1


# -- --output: one rename, nothing left behind -------------------------------------------------


def test_output_replaces_the_file_in_one_rename(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch
) -> None:
    target = tmp_path / "collector" / "stxbf.prom"
    target.parent.mkdir()
    target.write_text("stxbf_old 1\n", encoding="utf-8")
    renames: list[tuple[Path, Path, str]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: str | Path, dst: str | Path) -> None:
        renames.append((Path(src), Path(dst), Path(src).read_text(encoding="utf-8")))
        assert target.read_text(encoding="utf-8") == "stxbf_old 1\n"  # untouched until now
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    code, out, err = run_cli(["metrics", "--output", str(target)], capsys, monkeypatch)
    assert (code, out, err) == (0, "", "")
    text = target.read_text(encoding="utf-8")
    parse(text)
    ((src, dst, written),) = renames
    assert (src.parent, dst, written) == (target.parent, target, text)
    assert not src.name.endswith(".prom")  # the collector never reads the temporary file
    assert synced, "the file is flushed to disk before the rename"
    assert sorted(p.name for p in target.parent.iterdir()) == ["stxbf.prom"]
    assert target.stat().st_mode & 0o044 == 0o044 & ~current_umask()  # node_exporter reads it


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_output_that_cannot_be_written_is_one_line_and_leaves_nothing(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, monkeypatch
) -> None:
    target = tmp_path / "no such dir" / "stxbf.prom"
    args = ["metrics", "--output", str(target)]
    result = subprocess.CompletedProcess(args, *run_cli(args, capsys, monkeypatch))
    line = assert_one_line_error(result, 1)
    assert str(target) in line and result.stdout == ""
    assert not target.parent.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "collector" / "stxbf.prom"
    target.parent.mkdir()
    target.write_text("stxbf_old 1\n", encoding="utf-8")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_textfile(target, "stxbf_new 1\n")
    assert [p.name for p in target.parent.iterdir()] == ["stxbf.prom"]
    assert target.read_text(encoding="utf-8") == "stxbf_old 1\n"


# -- the monthly quota, where the API states one -------------------------------------------------


def test_a_runner_reports_the_monthly_quota_the_api_states(tmp_path: Path) -> None:
    api = SimApi(
        SimConfig(days=3, tx_per_day=6000, rate_headers="full", per_second=1000, month_quota=8)
    )
    run = params(tmp_path, rpm=None, target_days=2, concurrency=16)
    with pytest.raises(QuotaExhausted):
        asyncio.run(Runner(run, transport=SimTransport(api)).run())
    snap = snapshot.read(run.paths.progress)
    assert snap is not None
    assert (snap.quota_remaining, snap.quota_limit) == (0, 8)


def test_the_quota_goes_from_the_snapshot_into_status_and_metrics(  # type: ignore[no-untyped-def]
    db: Path, capsys, monkeypatch
) -> None:
    lock = publish_running(db, age=1)
    progress = db.with_name(db.name + ".progress.json")
    snap = snapshot.read(progress)
    assert snap is not None
    snap.quota_remaining, snap.quota_limit = 1234.0, 150_000.0
    snapshot.publish(progress, snap)
    try:
        seen = views(capsys, monkeypatch)
    finally:
        lock.release()
    assert_matches(seen.samples, seen.status, seen.health)
    values = plain(seen.samples)
    assert (values["stxbf_quota_remaining"], values["stxbf_quota_limit"]) == (1234, 150_000)
