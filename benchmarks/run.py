"""stxbf's benchmark harness: one run measures everything issue 4 asks, side by side.

    python benchmarks/run.py            # the full run (~13 min on 2 cores, ~6 of them styles)
    python benchmarks/run.py --quick    # the same sections, small (~2.5 min)
    python benchmarks/run.py --smoke    # tiny (~35 s): what tests/test_bench_smoke.py runs
    nox -s bench [-- --quick]           # the same, in nox's own virtualenv

Sections (each a separate process pair: simulator + `python -m stxbf run`):

  rate      simulator at 600 req/min, ~250 ms latency: achieved rate / allowed rate, 429s, and
            requests sent before a retry-after elapsed (the simulator audits this)
  styles    the same at every rate-limit header style Hiro documents (minute/second/generic,
            with or without a policy, cost > 1, a monthly quota, reset as a Unix time): the
            tightest stated window, the steady rate reached, 429s, early requests, learning delay
  seed      the same workload one page at a time (--concurrency 1, as the seed crawled)
  bulk      no limit, no latency: the simulator's own serving ceiling (benchmarks/rawload.py,
            no parsing, no storing), then a real backfill of ~2M transactions: end-to-end tx/s,
            peak RSS at 250k/500k/1M/2M stored, database bytes per transaction
  commands  `stxbf --help`, a completion request, `stxbf status`/`health` on that database, idle
            and while a run holds it
  projection  365 days (~2M tx) against the hosted API at 50 and 500 req/min, from the measured
            utilisation and requests per transaction
  sources   (only with --sections sources) one chain backfilled by each source at 600/min:
            `--source v1`, and `auto` against a simulator whose v1 route answers 410 (the run
            switches to v3): requests per transaction, the limit's share used, exactness,
            365 days at 500/min
  tiers     (only with --sections tiers; benchmarks/tiers.py) each Hiro tier (25, 900, 3,000,
            7,000/min) at 100, 600 and 1,500 ms of heavy-tailed latency: share of the limit,
            429s, early requests, peak in flight, RSS; `--stxbf-src` measures another checkout

Prints a Markdown table and writes every figure as JSON (benchmarks/results/, or --json) so runs
on different commits can be compared (--compare OLD.json). Speed is reported, never asserted.
docs/performance.md has the method, the figures and how to read them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import (
    PYTHON,
    RunResult,
    StxbfRun,
    clean_env,
    first_request_t,
    http_json,
    log,
    requests_at,
    run_args,
    run_stxbf,
    simulator,
    steady_rate,
    stxbf_command,
    time_command,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("rate", "styles", "seed", "bulk", "commands", "sources", "tiers")
# `sources` (~13 min full, two rate-limited 30-day backfills) runs when asked: --sections sources
DEFAULT_SECTIONS = ("rate", "styles", "seed", "bulk", "commands")
DAY = 86_400

TARGETS = {
    "utilisation": 0.97,
    "share_429": 0.01,
    "early_requests": 0,
    "bulk_tx_per_s": 10_000,
    "ceiling_ratio": 0.6,
    "peak_rss_mb": 250,
    "bytes_per_tx": 150,
    "help_s": 0.3,
    "completion_s": 0.3,
    "status_s": 0.5,
    "health_s": 0.5,
}
STYLE_RATIO = 0.9  # each style's steady rate against its tightest stated window (issue 8)
YEAR_TX = 2_000_000  # the figure for 365 days of Stacks history
SEED_HOURS = (8, 16)


@dataclass(frozen=True)
class Profile:
    name: str
    rate_days: float  # simulated history for the rate-limited backfill
    rate_tx_per_day: int
    rate_rpm: int = 600
    rate_latency_ms: float = 250.0
    seed_seconds: float = 60.0  # how long the one-page-at-a-time crawl is sampled
    bulk_days: float = 200.0
    bulk_tx_per_day: int = 10_000
    raw_seconds: float = 20.0
    memory_marks: tuple[int, ...] = (250_000, 500_000, 1_000_000, 2_000_000)
    command_repeat: int = 5
    concurrency: int | None = None  # None: stxbf's default
    hold_seconds: float = 120.0
    sources_days: float = 30.0  # the v1/v3 comparison (issue 10: 30 days, 6,000 tx a day)
    sources_tx_per_day: int = 6_000


PROFILES = {
    # ~105k tx = ~2,100 requests = ~3.6 min at 591/min; 2M tx for memory, storage and commands
    "full": Profile("full", rate_days=14, rate_tx_per_day=7_500),
    "quick": Profile(
        "quick",
        rate_days=1.5,
        rate_tx_per_day=8_000,
        seed_seconds=10,
        bulk_days=20,
        raw_seconds=5,
        memory_marks=(50_000, 100_000, 200_000),
        command_repeat=3,
        sources_days=3,
    ),
    # what tests/test_bench_smoke.py runs: structure, not speed
    "smoke": Profile(
        "smoke",
        rate_days=0.5,
        rate_tx_per_day=4_000,
        seed_seconds=3,
        bulk_days=2,
        bulk_tx_per_day=6_000,
        raw_seconds=2,
        memory_marks=(5_000, 10_000),
        command_repeat=1,
        hold_seconds=30,
        sources_days=0.5,
        sources_tx_per_day=4_000,
    ),
}


@dataclass
class Report:
    profile: str
    started_at: str
    machine: dict[str, Any]
    params: dict[str, Any]
    sections: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    total_seconds: float = 0.0


# -- machine ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for name in ("stxbf", "httpx", "httpcore", "duckdb", "orjson", "anyio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout.strip()
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "src_dirty": dirty,
    }


# -- helpers ---------------------------------------------------------------------------------


def db_figures(home: Path) -> dict[str, Any]:
    """Rows and file size of a finished run's database (read in a child: duckdb stays out)."""
    code = (
        "import duckdb, json, os, sys\n"
        "p = sys.argv[1]\n"
        "con = duckdb.connect(p, read_only=True)\n"
        "n = con.execute('select count(*), count(distinct tx_id) from transactions').fetchone()\n"
        "size = sum(os.path.getsize(p + s) for s in ('', '.wal') if os.path.exists(p + s))\n"
        "print(json.dumps({'rows': n[0], 'distinct_tx_ids': n[1], 'file_bytes': size}))\n"
    )
    out = subprocess.run(
        [PYTHON, "-c", code, str(home / "stxbf.duckdb")],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def fetch_span(result: Any) -> float | None:
    if result.first_request_t is None or result.last_request_t is None:
        return None
    return max(1e-3, result.last_request_t - result.first_request_t)


def require_success(result: Any, what: str) -> None:
    if result.exit_code != 0:
        raise RuntimeError(
            f"{what}: stxbf run exited {result.exit_code}: {result.stderr_tail[-800:]}"
        )


# -- sections --------------------------------------------------------------------------------


def section_rate(p: Profile, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Rate-limit utilisation at `rate_rpm` with `rate_latency_ms` of latency."""
    rpm = args.rate_rpm or p.rate_rpm
    days = args.rate_days or p.rate_days
    with simulator(
        days=days,
        tx_per_day=p.rate_tx_per_day,
        rpm=rpm,
        latency_ms=p.rate_latency_ms,
        seed=11,
        url=args.rate_url,
    ) as sim:
        log(f"rate: {sim.banner}")
        result = run_stxbf(
            home=work / "rate",
            api_url=sim.url,
            args=run_args(days, p.concurrency),
            sim=sim,
            interval=0.1,
        )
        require_success(result, "rate")
        stats = sim.stats()
    progress = result.progress or {}
    counters = progress.get("counters", {})
    stored = int(progress.get("transactions_stored") or 0)
    if stats:
        sent = int(stats["requests"])
        ok = int(stats["by_status"].get("200", 0))
        n429 = int(stats["status_429"])
    else:
        sent, ok = int(counters.get("requests", 0)), int(counters.get("pages", 0))
        n429 = int(counters.get("responses_429", 0))
    span = fetch_span(result)
    if span is None:  # an external API: stxbf's own clock (first to last progress sample)
        span = _progress_span(result)
    # successful requests only: a 429 is no progress
    achieved_rpm = ok / span * 60.0 if span else 0.0
    whole_rpm = ok / result.wall_s * 60.0
    return {
        "api": sim.banner,
        "allowed_rpm": rpm,
        "latency_ms": p.rate_latency_ms if sim.simulated else None,
        "transactions": stored,
        "requests": ok,
        "requests_sent": sent,
        "requests_per_tx": sent / stored if stored else None,
        "wall_s": round(result.wall_s, 2),
        "fetch_span_s": round(span, 2) if span else None,
        "achieved_rpm": round(achieved_rpm, 1),
        "utilisation": round(achieved_rpm / rpm, 4),
        "utilisation_whole_process": round(whole_rpm / rpm, 4),
        "responses_429": n429,
        "share_429": round(n429 / sent, 5) if sent else None,
        "early_requests": int(stats["early_requests"]) if stats else None,
        "peak_rss_mb": round(result.peak_rss / 2**20, 1),
        "stxbf_cpu_s": result.cpu_s,
    }


def _progress_span(result: Any) -> float | None:
    moving = [s for s in result.samples if s.requests]
    if len(moving) < 2:
        return None
    return float(moving[-1].t - moving[0].t)


# -- rate-limit header styles -----------------------------------------------------------------


@dataclass(frozen=True)
class RateStyle:
    """One way an API states its rate limit: `stxbf sim serve` options, enforced as stated.

    The set is Hiro's documented one (hirosystems/docs `rate-limits.mdx`,
    `response-headers.mdx`; see src/stxbf/simulator/ratelimit.py) and the one
    tests/fetch/test_rate_styles.py asserts on; here at Hiro's own figures (500/min, a 20/s cap).
    """

    sends: str  # what the API answers with, for the table
    rpm: int = 0
    per_second: int = 0
    options: tuple[str, ...] = ()  # more `stxbf sim serve` options (header style, cost, ...)
    cost: int = 1

    @property
    def stated_per_second(self) -> float:
        """The tightest stated window, in requests (not cost units) a second."""
        windows = [w for w in (self.rpm / 60.0, float(self.per_second)) if w > 0]
        return min(windows) / self.cost

    def sim_args(self) -> tuple[str, ...]:
        extra = ("--per-second", str(self.per_second)) if self.per_second else ()
        return (*extra, *self.options)


HIRO_RPM, HIRO_PER_SECOND = 500, 20
RATE_STYLES: dict[str, RateStyle] = {
    "full-minute-second-generic": RateStyle(
        "explicit minute + second, generic = minute",
        HIRO_RPM,
        HIRO_PER_SECOND,
        ("--rate-headers", "full"),
    ),
    # the second window is the tightest here, and the generic triple describes it
    "full-generic-is-the-second": RateStyle(
        "explicit minute + second, generic = second",
        1_500,
        HIRO_PER_SECOND,
        ("--rate-headers", "full", "--generic-window", "second"),
    ),
    "second-only": RateStyle(
        "explicit second + generic", 0, HIRO_PER_SECOND, ("--rate-headers", "second")
    ),
    "minute-only": RateStyle(
        "explicit minute + generic", HIRO_RPM, 0, ("--rate-headers", "minute")
    ),
    "generic-minute": RateStyle(
        "generic only (a minute, unstated)", HIRO_RPM, 0, ("--rate-headers", "generic")
    ),
    "generic-second": RateStyle(
        "generic only (a second, unstated)",
        0,
        HIRO_PER_SECOND,
        ("--rate-headers", "generic", "--generic-window", "second"),
    ),
    "generic-policy-minute": RateStyle(
        "generic + ratelimit-policy w=60", HIRO_RPM, 0, ("--rate-headers", "generic-policy")
    ),
    "generic-policy-second": RateStyle(
        "generic + ratelimit-policy w=1",
        0,
        HIRO_PER_SECOND,
        ("--rate-headers", "generic-policy", "--generic-window", "second"),
    ),
    "cost-2": RateStyle(
        "full, x-ratelimit-cost-stacks: 2",
        2 * HIRO_RPM,
        2 * HIRO_PER_SECOND,
        ("--rate-headers", "full", "--request-cost", "2"),
        cost=2,
    ),
    "monthly-quota": RateStyle(
        "full + month (quota not reached)",
        HIRO_RPM,
        HIRO_PER_SECOND,
        ("--rate-headers", "full", "--month-quota", "1000000"),
    ),
    "reset-as-unix-time": RateStyle(
        "generic only, ratelimit-reset a Unix time",
        HIRO_RPM,
        0,
        ("--rate-headers", "generic", "--rate-reset", "unix"),
    ),
}


@dataclass(frozen=True)
class StylesRun:
    """How long each style runs, which styles, and what of the start is left out as warm-up."""

    seconds: float  # of requests at the style's stated rate
    warm_up: float  # left out of the steady rate (the first answers teach the pacer)
    names: tuple[str, ...] | None = None  # None: every style


STYLE_RUNS = {
    "full": StylesRun(seconds=30.0, warm_up=4.0),
    "quick": StylesRun(
        seconds=10.0,
        warm_up=3.0,
        names=(
            "full-minute-second-generic",
            "second-only",
            "generic-second",
            "generic-policy-minute",
            "cost-2",
        ),
    ),
    "smoke": StylesRun(seconds=4.0, warm_up=1.5, names=("second-only", "generic-minute")),
}
STYLE_HISTORY_DAYS = 1  # one day of history (its transactions sized to `seconds` of requests)
LEARNED_SHARE = 0.9  # the pacer has "reached its rate" at this share of its steady rate
LEARN_SPAN = 2.0  # seconds over which that rate is read


def section_styles(p: Profile, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One backfill per rate-limit header style against the loopback simulator, learning the
    limits from the headers alone (no --rpm), as against the real API."""
    plan = STYLE_RUNS[p.name]
    names = list(args.styles.split(",")) if args.styles else list(plan.names or RATE_STYLES)
    unknown = [n for n in names if n not in RATE_STYLES]
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}; choose from {','.join(RATE_STYLES)}")
    rows: dict[str, Any] = {}
    for name in names:
        rows[name] = _run_style(name, RATE_STYLES[name], plan, p, work)
        row = rows[name]
        log(
            f"styles: {name}: {row['achieved_per_s']}/s of {row['stated_per_s']}/s "
            f"(ratio {row['ratio']}), {row['responses_429']} 429s, {row['early_requests']} early, "
            f"learned in {row['learning_delay_s']} s"
        )
    return {
        "latency_ms": p.rate_latency_ms,
        "seconds_per_style": plan.seconds,
        "warm_up_s": plan.warm_up,
        "styles": rows,
    }


def _run_style(
    name: str, style: RateStyle, plan: StylesRun, p: Profile, work: Path
) -> dict[str, Any]:
    stated = style.stated_per_second
    # 50 transactions a page: `seconds` of pages at the stated rate (plus a few count requests)
    tx_per_day = int(stated * plan.seconds * 50 / STYLE_HISTORY_DAYS)
    with simulator(
        days=STYLE_HISTORY_DAYS + 0.5,
        tx_per_day=tx_per_day,
        rpm=style.rpm,
        latency_ms=p.rate_latency_ms,
        seed=13,
        extra_args=style.sim_args(),
    ) as sim:
        result = run_stxbf(
            home=work / "styles" / name,
            api_url=sim.url,
            args=run_args(STYLE_HISTORY_DAYS, p.concurrency),
            sim=sim,
            interval=0.1,
        )
        stats = sim.stats() or {}
    curve = [(s.t, s.sim_requests) for s in result.samples if s.sim_requests is not None]
    sent = int(stats.get("requests", 0))
    n429 = int(stats.get("status_429", 0))
    steady = steady_rate(curve, plan.warm_up)
    delay = learning_delay(curve, steady) if steady else None
    return {
        "sends": style.sends,
        "sim_args": ["--rpm", str(style.rpm), *style.sim_args()],
        "exit_code": result.exit_code,
        "error": None if result.exit_code == 0 else result.stderr_tail[-400:],
        "stated_per_s": round(stated, 2),
        "achieved_per_s": round(steady, 2) if steady else None,
        "ratio": round(steady / stated, 3) if steady else None,
        "requests": sent,
        "responses_429": n429,
        "share_429": round(n429 / sent, 5) if sent else None,
        "early_requests": int(stats.get("early_requests", 0)),
        "learning_delay_s": None if delay is None else round(delay, 1),
        "wall_s": round(result.wall_s, 2),
        "requests_per_second": per_second_timeline(curve),  # to see where a rate was lost
    }


def per_second_timeline(curve: list[tuple[float, int]]) -> list[float]:
    """Requests sent in each whole second from the first one (interpolated between samples)."""
    first = first_request_t(curve)
    if first is None:
        return []
    seconds = int(curve[-1][0] - first)
    return [
        round(requests_at(curve, first + i + 1) - requests_at(curve, first + i), 1)
        for i in range(seconds)
    ]


def learning_delay(curve: list[tuple[float, int]], steady: float) -> float | None:
    """Seconds from the first request until the pacer ran at its rate: the start of the first
    `LEARN_SPAN` over which the request rate was at least `LEARNED_SHARE` of the steady rate."""
    first = first_request_t(curve)
    if first is None:
        return None
    step, t = 0.05, first
    last = curve[-1][0] - LEARN_SPAN
    while t <= last:
        rate = (requests_at(curve, t + LEARN_SPAN) - requests_at(curve, t)) / LEARN_SPAN
        if rate >= LEARNED_SHARE * steady:
            return t - first
        t += step
    return None


def section_seed(
    p: Profile, work: Path, args: argparse.Namespace, rate: dict[str, Any] | None
) -> dict[str, Any]:
    """The same workload one page at a time, sampled for `seed_seconds`."""
    rpm = args.rate_rpm or p.rate_rpm
    days = args.rate_days or p.rate_days
    with simulator(
        days=days,
        tx_per_day=p.rate_tx_per_day,
        rpm=rpm,
        latency_ms=p.rate_latency_ms,
        seed=11,
        url=args.rate_url,
    ) as sim:
        run = StxbfRun(
            home=work / "seed",
            api_url=sim.url,
            args=run_args(days, None, "--concurrency", "1"),
            sim=sim,
            interval=0.1,
        )
        result = run.wait(timeout=p.seed_seconds + 3.0)  # + start-up and preflight
        stats = sim.stats()
    counters = (result.progress or {}).get("counters", {})
    requests = int(stats["requests"] if stats else counters.get("requests", 0))
    span = fetch_span(result) or _progress_span(result) or result.wall_s
    seq_rpm = requests / span * 60.0
    out: dict[str, Any] = {
        "sampled_s": round(span, 2),
        "requests": requests,
        "achieved_rpm": round(seq_rpm, 1),
        "finished": not result.interrupted,
    }
    if rate and rate.get("achieved_rpm"):
        out["speedup"] = round(rate["achieved_rpm"] / seq_rpm, 2)
        out["workload_requests"] = rate["requests"]
        out["projected_wall_s"] = round(rate["requests"] / seq_rpm * 60.0, 1)
        out["stxbf_wall_s"] = rate["wall_s"]
    return out


def memory_at_marks(
    result: RunResult, marks: Iterable[int], stored: int
) -> dict[str, float | None]:
    """Peak RSS (MB) when the stored count first reached each mark.

    The first sample past the mark that read the memory counts: the last sample may find the
    process gone, its count read from the progress file and its memory unread. A mark crossed
    after the last such sample gets the run's peak.
    """
    out: dict[str, float | None] = {}
    for mark in marks:
        hit = next(
            (s for s in result.samples if (s.stored or 0) >= mark and (s.hwm or s.rss)), None
        )
        peak = (hit.hwm or hit.rss) if hit is not None else None
        if peak is None and stored >= mark:
            peak = result.peak_rss
        out[str(mark)] = round(peak / 2**20, 1) if peak else None
    return out


def section_bulk(p: Profile, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Unthrottled: the API's serving ceiling, then a real backfill of the whole chain."""
    days = args.bulk_days or p.bulk_days
    with simulator(days=days, tx_per_day=p.bulk_tx_per_day, seed=7, url=args.bulk_url) as sim:
        log(f"bulk: {sim.banner} (started in {sim.startup_s:.1f} s)")
        now = int(time.time())
        if sim.simulated:
            chain = http_json(f"{sim.url}/_sim/chain")
            start, end = int(chain["first_burn_block_time"]), int(chain["last_burn_block_time"])
        else:
            start, end = now - int(days * DAY), now
        sim_cpu0 = sim.cpu_seconds()
        raw = json.loads(
            subprocess.run(
                [
                    PYTHON,
                    str(Path(__file__).with_name("rawload.py")),
                    sim.url,
                    "--start",
                    str(start),
                    "--end",
                    str(end),
                    "--seconds",
                    str(p.raw_seconds),
                    "--concurrency",
                    str(p.concurrency or 16),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=clean_env(),
            ).stdout
        )
        sim_cpu1 = sim.cpu_seconds()
        if sim_cpu0 is not None and sim_cpu1 is not None:
            raw["api_cpu_share"] = round((sim_cpu1 - sim_cpu0) / raw["seconds"], 2)
        log(f"bulk: ceiling {raw['pages_per_s']:.0f} pages/s ({raw['tx_per_s']:.0f} tx/s)")
        sim.reset()
        home = work / "bulk"
        sim_cpu0 = sim.cpu_seconds()
        result = run_stxbf(
            home=home, api_url=sim.url, args=run_args(days, p.concurrency), sim=sim, interval=0.2
        )
        sim_cpu1 = sim.cpu_seconds()
        require_success(result, "bulk")
        stats = sim.stats()
    figures = db_figures(home)
    stored = figures["rows"]
    pages = int(stats["pages"]) if stats else (result.progress or {}).get("counters", {})["pages"]
    tx_s = stored / result.wall_s
    pages_s = pages / result.wall_s
    marks = memory_at_marks(result, p.memory_marks, stored)
    span = fetch_span(result)
    measured = [x for x in result.samples if x.rss]
    step = max(1, len(measured) // 60)
    timeline = [(round(x.t, 1), round(x.rss / 2**20, 1), x.stored) for x in measured[::step]]
    return {
        "api": sim.banner,
        "ceiling": raw,
        "transactions": stored,
        "distinct_tx_ids": figures["distinct_tx_ids"],
        "pages": pages,
        "wall_s": round(result.wall_s, 2),
        "fetch_span_s": round(span, 2) if span else None,
        "tx_per_s": round(tx_s, 1),
        "tx_per_s_while_fetching": round(stored / span, 1) if span else None,
        "pages_per_s": round(pages_s, 1),
        "ceiling_ratio": round(pages_s / raw["pages_per_s"], 3) if raw["pages_per_s"] else None,
        "stxbf_cpu_share": round(result.cpu_s / result.wall_s, 2) if result.cpu_s else None,
        "api_cpu_share": round((sim_cpu1 - sim_cpu0) / result.wall_s, 2)
        if sim_cpu0 is not None and sim_cpu1 is not None
        else None,
        "peak_rss_mb": round(result.peak_rss / 2**20, 1),
        "peak_rss_mb_at": marks,
        "db_bytes": figures["file_bytes"],
        "bytes_per_tx": round(figures["file_bytes"] / stored, 1) if stored else None,
        "rss_timeline": timeline,  # (seconds, RSS MB, transactions stored)
        "home": str(home),
    }


COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "help": (["--help"], {}),
    "completion": (
        [],
        {"_STXBF_COMPLETE": "complete_bash", "COMP_WORDS": "stxbf st", "COMP_CWORD": "1"},
    ),
    "status": (["status"], {}),
    "health": (["health"], {}),
}


def section_commands(
    p: Profile, work: Path, home: Path, transactions: int, days: float
) -> dict[str, Any]:
    """Best-of-N wall time of each command on `home`'s database, idle and while a run holds it."""
    base = stxbf_command()
    env = clean_env(STXBF_HOME=str(home), COLUMNS="100", NO_COLOR="1")
    idle = {
        name: time_command([*base, *argv], env={**env, **extra}, repeat=p.command_repeat)
        for name, (argv, extra) in COMMANDS.items()
    }
    held: dict[str, Any] = {}
    # A run against a slow API (1 req/min, as long a history as the database) holds the lock
    # and publishes its progress file meanwhile; it finds little to do, slowly.
    with simulator(days=days, tx_per_day=100, rpm=1, seed=3) as slow:
        run = StxbfRun(home=home, api_url=slow.url, args=run_args(days, None), interval=0.5)
        try:
            deadline = time.monotonic() + p.hold_seconds
            while time.monotonic() < deadline and run.running():
                snap = run.progress()
                if snap and snap.get("pid") == run.proc.pid:
                    break
                time.sleep(0.1)
            if not run.running():
                raise RuntimeError(f"the holding run ended early: {run.wait().stderr_tail}")
            for name in ("status", "health"):
                argv, extra = COMMANDS[name]
                held[name] = time_command(
                    [*base, *argv], env={**env, **extra}, repeat=p.command_repeat
                )
            held["holder_still_running"] = run.running()
        finally:
            run.interrupt()
            run.wait(timeout=30)
    return {"transactions_in_db": transactions, "idle": idle, "while_running": held}


def section_sources(p: Profile, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """v1 and v3 on the same simulated chain, rate-limited: what the second source costs.

    v3 proves each window by the burn blocks' counts (`/extended/v2/burn-blocks` pages and one
    `/extended/v2/blocks/:hash` anchor now and then): that overhead is part of its requests.
    """
    out: dict[str, Any] = {}
    for name, source, v1 in (("v1", "v1", "on"), ("v3", "auto", "gone")):
        with simulator(
            days=p.sources_days + 1,
            tx_per_day=p.sources_tx_per_day,
            rpm=p.rate_rpm,
            latency_ms=p.rate_latency_ms,
            seed=21,
            extra_args=("--v1", v1),
        ) as sim:
            log(f"sources/{name}: {sim.banner}")
            result = run_stxbf(
                home=work / f"sources-{name}",
                api_url=sim.url,
                args=run_args(p.sources_days, p.concurrency, "--source", source),
                sim=sim,
                interval=0.1,
            )
            require_success(result, f"sources/{name}")
            stats = sim.stats() or {}
        figures = db_figures(work / f"sources-{name}")
        sent = int(stats.get("requests", 0))
        ok = int(stats.get("by_status", {}).get("200", 0))
        stored = int(figures["distinct_tx_ids"])
        span = fetch_span(result)
        achieved = ok / span * 60.0 if span else 0.0
        per_tx = sent / stored if stored else None
        out[name] = {
            "source_flag": source,
            "v1_route": v1,
            "transactions": stored,
            "duplicates": int(figures["rows"]) - stored,
            "requests_sent": sent,
            "requests_ok": ok,
            "responses_410": int(stats.get("by_status", {}).get("410", 0)),
            "responses_429": int(stats.get("status_429", 0)),
            "early_requests": stats.get("early_requests"),
            "requests_per_tx": round(per_tx, 5) if per_tx else None,
            "fetch_span_s": round(span, 2) if span else None,
            "achieved_rpm": round(achieved, 1),
            "allowed_rpm": p.rate_rpm,
            "utilisation": round(achieved / p.rate_rpm, 4),
            "year_hours_at_500": round(per_tx * YEAR_TX / 500 / 60, 2) if per_tx else None,
        }
    v1_per_tx, v3_per_tx = out["v1"]["requests_per_tx"], out["v3"]["requests_per_tx"]
    if v1_per_tx and v3_per_tx:
        out["v3_overhead"] = round(v3_per_tx / v1_per_tx - 1, 4)
    return out


def projection(rate: dict[str, Any], seed: dict[str, Any] | None) -> dict[str, Any]:
    """365 days at the hosted API's limits, from the measured utilisation."""
    util = rate["utilisation"]
    per_tx = rate["requests_per_tx"] or 1 / 50
    requests = YEAR_TX * per_tx
    out: dict[str, Any] = {"year_transactions": YEAR_TX, "year_requests": round(requests)}
    for rpm in (50, 500):
        out[f"hours_at_{rpm}"] = round(requests / (util * rpm) / 60.0, 2)
        if seed and seed.get("achieved_rpm"):
            # one page at a time cannot go faster than its latency allows, nor than the limit
            seq = min(rpm, seed["achieved_rpm"])
            out[f"seed_way_hours_at_{rpm}"] = round(requests / seq / 60.0, 2)
    out["seed_reported_hours"] = list(SEED_HOURS)
    return out


# -- report ----------------------------------------------------------------------------------


def verdict(value: float | None, target: float, *, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "meets" if ok else "MISSES"


def rows(report: Report) -> list[tuple[str, str, str, str]]:
    s = report.sections
    out: list[tuple[str, str, str, str]] = []
    rate = s.get("rate")
    if rate:
        out += [
            (
                f"1. Rate-limit utilisation ({rate['allowed_rpm']}/min"
                + (f", {rate['latency_ms']:.0f} ms" if rate.get("latency_ms") else "")
                + ")",
                f"{rate['utilisation']:.3f} ({rate['achieved_rpm']:.0f}/min over "
                f"{rate['fetch_span_s']:.0f} s; whole process "
                f"{rate['utilisation_whole_process']:.3f})",
                f">= {TARGETS['utilisation']}",
                verdict(rate["utilisation"], TARGETS["utilisation"], higher_is_better=True),
            ),
            (
                "1. Requests answered 429",
                f"{rate['responses_429']} of {rate.get('requests_sent', rate['requests'])} "
                f"({100 * (rate['share_429'] or 0):.2f}%)",
                "<= 1%",
                verdict(rate["share_429"], TARGETS["share_429"], higher_is_better=False),
            ),
            (
                "1. Requests sent before retry-after elapsed",
                "n/a (external API)"
                if rate["early_requests"] is None
                else str(rate["early_requests"]),
                "0",
                verdict(rate["early_requests"], 0, higher_is_better=False),
            ),
        ]
    styles = s.get("styles")
    if styles:
        out.append(styles_row(styles))
    seed = s.get("seed")
    if seed and "speedup" in seed:
        out.append(
            (
                "2. Speed-up over one page at a time",
                f"{seed['speedup']:.2f}x ({seed['achieved_rpm']:.0f}/min sequential; workload "
                f"{_dur(seed['projected_wall_s'])} vs {_dur(seed['stxbf_wall_s'])})",
                "-",
                "-",
            )
        )
    bulk = s.get("bulk")
    if bulk:
        ceiling = bulk["ceiling"]
        out += [
            (
                "3. Unthrottled end-to-end throughput",
                f"{bulk['tx_per_s']:,.0f} tx/s, {bulk['pages_per_s']:,.0f} pages/s "
                f"({bulk['transactions']:,} tx in {_dur(bulk['wall_s'])})",
                f">= {TARGETS['bulk_tx_per_s']:,} tx/s",
                verdict(bulk["tx_per_s"], TARGETS["bulk_tx_per_s"], higher_is_better=True),
            ),
            (
                "3. Share of the API's serving ceiling",
                f"{bulk['ceiling_ratio']:.2f} (ceiling {ceiling['pages_per_s']:,.0f} pages/s = "
                f"{ceiling['tx_per_s']:,.0f} tx/s)",
                f">= {TARGETS['ceiling_ratio']}",
                verdict(bulk["ceiling_ratio"], TARGETS["ceiling_ratio"], higher_is_better=True),
            ),
            (
                f"4. Peak RSS of stxbf run ({bulk['transactions']:,} tx)",
                f"{bulk['peak_rss_mb']:.0f} MB (at "
                + ", ".join(
                    f"{_count(int(k))}: {v:.0f}" for k, v in bulk["peak_rss_mb_at"].items() if v
                )
                + ")",
                f"<= {TARGETS['peak_rss_mb']} MB, flat",
                verdict(bulk["peak_rss_mb"], TARGETS["peak_rss_mb"], higher_is_better=False),
            ),
            (
                "5. Database bytes per transaction",
                f"{bulk['bytes_per_tx']:.0f} B/tx ({bulk['db_bytes'] / 2**20:,.0f} MiB)",
                f"<= {TARGETS['bytes_per_tx']} B/tx",
                verdict(bulk["bytes_per_tx"], TARGETS["bytes_per_tx"], higher_is_better=False),
            ),
        ]
    commands = s.get("commands")
    if commands:
        n = commands["transactions_in_db"]
        for name in ("help", "completion", "status", "health"):
            idle = commands["idle"][name]["best_s"]
            target = TARGETS[f"{name}_s"]
            label = {"help": "stxbf --help", "completion": "shell completion"}.get(
                name, f"stxbf {name} ({_count(n)} tx)"
            )
            held = commands["while_running"].get(name)
            if held:
                value = f"{idle:.2f} s idle, {held['best_s']:.2f} s while a run holds the DB"
                worst = max(idle, held["best_s"])
            else:
                value, worst = f"{idle:.2f} s", idle
            out.append(
                (
                    f"6. {label}",
                    value,
                    f"<= {target} s",
                    verdict(worst, target, higher_is_better=False),
                )
            )
    proj = s.get("projection")
    if proj:
        for rpm in (50, 500):
            seq = proj.get(f"seed_way_hours_at_{rpm}")
            out.append(
                (
                    f"7. 365 days (~{_count(proj['year_transactions'])} tx) at {rpm}/min",
                    f"{_hours(proj[f'hours_at_{rpm}'])}"
                    + (f" (one page at a time, at best: {_hours(seq)})" if seq else ""),
                    f"seed: {SEED_HOURS[0]}-{SEED_HOURS[1]} h",
                    "-",
                )
            )
    out += source_rows(s.get("sources"))
    return out


def source_rows(sources: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The `sources` section's lines: each source's cost, and v3's overhead over v1."""
    if not sources:
        return []
    out: list[tuple[str, str, str, str]] = []
    for name in ("v1", "v3"):
        f = sources.get(name)
        if not f:
            continue
        exact = "exact" if f["duplicates"] == 0 else f"{f['duplicates']} duplicates"
        out.append(
            (
                f"8. source {name} ({f['allowed_rpm']}/min"
                + (", v1 answers 410" if f["v1_route"] == "gone" else "")
                + ")",
                f"{f['requests_per_tx']:.4f} req/tx ({f['requests_sent']:,} for "
                f"{_count(f['transactions'])} tx, {exact}); {f['utilisation']:.3f} of the limit "
                f"({f['achieved_rpm']:.0f}/min); 365 days at 500/min: "
                f"{_hours(f['year_hours_at_500'])}",
                f">= {TARGETS['utilisation']} of the limit",
                verdict(f["utilisation"], TARGETS["utilisation"], higher_is_better=True),
            )
        )
    if "v3_overhead" in sources:
        overhead = sources["v3_overhead"]
        out.append(
            (
                "8. v3 requests over v1 (proof by burn blocks)",
                f"{overhead:+.1%}",
                "< +10%",
                verdict(overhead, 0.10, higher_is_better=False),
            )
        )
    return out


def styles_row(styles: dict[str, Any]) -> tuple[str, str, str, str]:
    """The styles in one line of the main table: the worst of each figure."""
    runs = styles["styles"].values()
    ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
    worst = min(ratios) if len(ratios) == len(runs) else None
    sent = sum(r["requests"] for r in runs)
    n429 = sum(r["responses_429"] for r in runs)
    worst_429 = max((r["share_429"] or 0) for r in runs)
    early = sum(r["early_requests"] for r in runs)
    failed = [n for n, r in styles["styles"].items() if r["exit_code"] != 0]
    ok = (
        not failed
        and worst is not None
        and worst >= STYLE_RATIO
        and worst_429 <= TARGETS["share_429"]
        and early == 0
    )
    return (
        f"1. Rate-limit header styles ({len(runs)}, table below)",
        (f"worst ratio {worst:.3f}" if worst is not None else "a style never reached a rate")
        + f"; {n429} 429s of {sent}; {early} early"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        f"each >= {STYLE_RATIO} of its tightest window, <= 1% 429s, 0 early",
        "meets" if ok else "MISSES",
    )


def styles_table(styles: dict[str, Any]) -> list[str]:
    """One row per rate-limit header style."""
    lines = [
        "",
        f"Rate-limit header styles ({styles['latency_ms']:.0f} ms latency, "
        f"~{styles['seconds_per_style']:.0f} s of requests each; steady rate after "
        f"{styles['warm_up_s']:g} s):",
        "",
        "| style | the API sends | tightest stated window | steady rate | ratio | requests "
        "| 429s | early | learning delay |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in styles["styles"].items():

        def fmt(value: Any, spec: str, unit: str = "") -> str:
            return "n/a" if value is None else f"{value:{spec}}{unit}"

        status = "" if r["exit_code"] == 0 else f" (exit {r['exit_code']})"
        lines.append(
            f"| {name}{status} | {r['sends']} | {r['stated_per_s']:.2f}/s "
            f"| {fmt(r['achieved_per_s'], '.2f', '/s')} | {fmt(r['ratio'], '.3f')} "
            f"| {r['requests']} | {r['responses_429']} ({100 * (r['share_429'] or 0):.1f}%) "
            f"| {r['early_requests']} | {fmt(r['learning_delay_s'], '.1f', ' s')} |"
        )
    return lines


def _count(n: int) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1_000_000 else f"{n / 1e3:.0f}k"


def _dur(seconds: float) -> str:
    seconds = float(seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _hours(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 2 else f"{hours * 60:.0f} min"


def markdown(report: Report, compare: Report | None = None) -> str:
    m = report.machine
    lines = [
        f"stxbf benchmark ({report.profile}) at {m.get('commit')}"
        + (" (src modified)" if m.get("src_dirty") else "")
        + f", {report.started_at}, {report.total_seconds / 60:.1f} min",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}",
        "",
        "| measurement | result | target | verdict |",
        "| --- | --- | --- | --- |",
    ]

    def key(name: str) -> str:  # labels carry workload sizes; compare by what is measured
        return name.split(" (")[0]

    old = {key(r[0]): r[1] for r in rows(compare)} if compare else {}
    for name, value, target, ok in rows(report):
        if compare is not None:
            value += f"; was {old.get(key(name), '-')}"
        lines.append(f"| {name} | {value} | {target} | {ok} |")
    for section, error in report.errors.items():
        lines.append(f"| {section} | FAILED: {error.splitlines()[-1][:120]} | | |")
    if report.sections.get("styles"):
        lines += styles_table(report.sections["styles"])
    if report.sections.get("tiers"):
        from tiers import tiers_table

        lines += tiers_table(report.sections["tiers"])
    return "\n".join(lines)


def load_report(path: Path) -> Report:
    data = json.loads(path.read_text())
    return Report(**data)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark stxbf against the simulator (or any Stacks API).",
        epilog="Results: benchmarks/results/<date>-<commit>-<profile>.json unless --json.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small workloads (~2.5 min)")
    size.add_argument("--smoke", action="store_true", help="tiny workloads (the test suite's)")
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma list of {','.join(SECTIONS)} (default: {','.join(DEFAULT_SECTIONS)}; "
        "commands needs bulk)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--compare", type=Path, help="an earlier results JSON to show beside")
    parser.add_argument("--workdir", type=Path, help="keep databases here (default: a temp dir)")
    parser.add_argument("--rate-url", help="an external rate-limited API instead of a simulator")
    parser.add_argument("--rate-rpm", type=int, help="its allowed requests per minute")
    parser.add_argument("--rate-days", type=float, help="days of its history to backfill")
    parser.add_argument(
        "--styles",
        help=f"comma list of rate-limit header styles to run (default: the profile's; of "
        f"{','.join(RATE_STYLES)})",
    )
    parser.add_argument(
        "--stxbf-src", help="tiers: run `stxbf run` from this checkout (a before figure)"
    )
    parser.add_argument(
        "--tiers",
        help="tiers: comma list of the tiers to run (e.g. Scale; default: every one)",
    )
    parser.add_argument("--bulk-url", help="an external unthrottled API instead of a simulator")
    parser.add_argument("--bulk-days", type=float, help="days of its history to backfill")
    args = parser.parse_args(argv)
    if args.rate_url and not args.rate_rpm:
        parser.error("--rate-url needs --rate-rpm (the API's allowed requests per minute)")
    if (args.rate_url and not args.rate_days) or (args.bulk_url and not args.bulk_days):
        parser.error("an external API needs --rate-days / --bulk-days (how much to backfill)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES["quick" if args.quick else "smoke" if args.smoke else "full"]
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = Report(
        profile=profile.name,
        started_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        machine=machine_info(),
        params={
            **asdict(replace(profile)),
            **{k: v for k, v in vars(args).items() if k.endswith(("_url", "_rpm", "_days"))},
        },
    )
    with contextlib.ExitStack() as stack:
        if args.workdir:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stxbf-bench-")))

        def attempt(name: str, fn: Any, *fn_args: Any) -> Any:
            log(f"{name}: start")
            t = time.monotonic()
            try:
                value = fn(*fn_args)
            except Exception:
                report.errors[name] = traceback.format_exc()
                log(f"{name}: FAILED\n{report.errors[name]}")
                return None
            report.sections[name] = value
            log(f"{name}: done in {time.monotonic() - t:.0f} s")
            return value

        rate = attempt("rate", section_rate, profile, work, args) if "rate" in wanted else None
        if "styles" in wanted:
            attempt("styles", section_styles, profile, work, args)
        seed = (
            attempt("seed", section_seed, profile, work, args, rate) if "seed" in wanted else None
        )
        bulk = attempt("bulk", section_bulk, profile, work, args) if "bulk" in wanted else None
        if "commands" in wanted and bulk:
            attempt(
                "commands",
                section_commands,
                profile,
                work,
                Path(bulk["home"]),
                bulk["transactions"],
                args.bulk_days or profile.bulk_days,
            )
        if "sources" in wanted:
            attempt("sources", section_sources, profile, work, args)
        if "tiers" in wanted:
            from tiers import section_tiers  # imports this module: not at the top

            attempt("tiers", section_tiers, profile, work, args)
        if rate:
            report.sections["projection"] = projection(rate, seed)
    report.total_seconds = round(time.monotonic() - started, 1)
    compare = load_report(args.compare) if args.compare else None
    print(markdown(report, compare))
    out = args.json
    if out is None:
        stamp = report.started_at[:10]
        out = RESULTS / f"{stamp}-{report.machine.get('commit') or 'nogit'}-{profile.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"\nresults: {out}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
