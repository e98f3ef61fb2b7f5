"""The `tiers` section of benchmarks/run.py: each Hiro tier's limit at each latency (issue 16).

Hiro's rate-limit page lists, per API key: no key 25/min, Starter 900/min, Build 3,000/min and
Scale 7,000/min. For each tier and a heavy-tailed (lognormal) latency of 100, 600 and 1,500 ms
mean, one backfill runs against the loopback simulator with no flags (the limit learned from the
headers, `--concurrency` at its default): the steady share of the limit it reached, the 429s,
the requests sent before a retry-after passed, the most requests the simulator had in flight at
once, and stxbf's peak RSS.

    python benchmarks/run.py --sections tiers               # every cell (~12 min)
    python benchmarks/run.py --sections tiers --quick       # three cells (~4 min)
    python benchmarks/run.py --sections tiers --stxbf-src /path/to/old/checkout   # before
    python benchmarks/run.py --sections tiers --tiers Scale    # one tier's cells (~4 min)

`--stxbf-src` runs `stxbf run` from another source tree (its `src/` first on PYTHONPATH) against
the same simulator, for a before → after table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import log, run_args, run_stxbf, simulator, steady_rate

TIER_RPM = {"no key": 25, "Starter": 900, "Build": 3_000, "Scale": 7_000}
LATENCIES_MS = (100, 600, 1_500)
HISTORY_DAYS = 1  # of history, its transactions sized to the cell's seconds of requests


@dataclass(frozen=True)
class Cell:
    tier: str
    latency_ms: int
    seconds: float  # of requests at the tier's limit
    warm_up: float  # left out of the steady rate (the first answers teach the limit)

    @property
    def rpm(self) -> int:
        return TIER_RPM[self.tier]


def _grid(seconds: float, warm_up: float) -> tuple[Cell, ...]:
    """Every paid tier at every latency, Scale at 300 ms too (issue 16's case); without a key
    one cell, at 600 ms: at 25/min a slot is 2.4 s apart, so latency changes nothing there, and
    a minute holds only 25 requests (its cell runs longer)."""
    cells = [Cell("no key", 600, 150.0, 10.0)]
    for tier in ("Starter", "Build", "Scale"):
        cells += [Cell(tier, latency, seconds, warm_up) for latency in LATENCIES_MS]
    cells.append(Cell("Scale", 300, seconds, warm_up))
    return tuple(cells)


CELLS = {
    "full": _grid(40.0, 8.0),
    "quick": (
        Cell("no key", 600, 120.0, 10.0),
        Cell("Build", 600, 30.0, 8.0),
        Cell("Scale", 300, 30.0, 8.0),
    ),
    "smoke": (Cell("Starter", 100, 6.0, 2.0),),
}


def section_tiers(p: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one backfill per tier and latency; `args.stxbf_src` runs another checkout's stxbf.

    `p` is run.py's Profile, of which only the name is read (typed loosely, so that this module
    does not import run.py, which imports it).
    """
    source = getattr(args, "stxbf_src", None)
    extra_env = {"PYTHONPATH": str(Path(source).resolve() / "src")} if source else None
    rows: dict[str, Any] = {}
    wanted = getattr(args, "tiers", None)
    tiers = {t.strip().lower() for t in wanted.split(",")} if wanted else None
    for cell in CELLS[p.name]:
        if tiers is not None and cell.tier.lower() not in tiers:
            continue
        name = f"{cell.tier} {cell.rpm}/min, {cell.latency_ms} ms"
        rows[name] = _run_cell(cell, work / "tiers" / f"{cell.rpm}-{cell.latency_ms}", extra_env)
        row = rows[name]
        log(
            f"tiers: {name}: {row['utilisation']} of the limit, {row['responses_429']} 429s, "
            f"{row['early_requests']} early, peak {row['peak_in_flight']} in flight, "
            f"{row['peak_rss_mb']} MB"
        )
    return {"stxbf_src": source, "latency_shape": "lognormal", "cells": rows}


def _run_cell(cell: Cell, home: Path, extra_env: dict[str, str] | None) -> dict[str, Any]:
    per_second = cell.rpm / 60.0
    tx_per_day = int(per_second * cell.seconds * 50 / HISTORY_DAYS)  # 50 transactions a page
    with simulator(
        days=HISTORY_DAYS + 0.5,
        tx_per_day=tx_per_day,
        rpm=cell.rpm,
        latency_ms=cell.latency_ms,
        seed=17,
        extra_args=("--latency-shape", "lognormal"),
    ) as sim:
        result = run_stxbf(
            home=home,
            api_url=sim.url,
            args=run_args(HISTORY_DAYS, None),
            sim=sim,
            interval=0.1,
            extra_env=extra_env,
        )
        stats = sim.stats() or {}
    curve = [(s.t, s.sim_requests) for s in result.samples if s.sim_requests is not None]
    steady = steady_rate(curve, cell.warm_up) if curve else None
    sent = int(stats.get("requests", 0))
    n429 = int(stats.get("status_429", 0))
    return {
        "tier": cell.tier,
        "allowed_rpm": cell.rpm,
        "latency_ms": cell.latency_ms,
        "exit_code": result.exit_code,
        "error": None if result.exit_code == 0 else result.stderr_tail[-400:],
        "steady_per_s": round(steady, 2) if steady else None,
        "utilisation": round(steady / per_second, 3) if steady else None,
        "requests": sent,
        "responses_429": n429,
        "share_429": round(n429 / sent, 5) if sent else None,
        "early_requests": int(stats.get("early_requests", 0)),
        "peak_in_flight": stats.get("max_in_flight"),
        "peak_rss_mb": round(result.peak_rss / 2**20, 1),
        "wall_s": round(result.wall_s, 1),
    }


def tiers_table(tiers: dict[str, Any]) -> list[str]:
    """One row per tier and latency."""
    source = tiers.get("stxbf_src")
    lines = [
        "",
        "Hiro tiers, heavy-tailed (lognormal) latency, no flags"
        + (f" (stxbf from {source})" if source else "")
        + ":",
        "",
        "| tier | latency (mean) | share of the limit | 429s | early | peak in flight | RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in tiers["cells"].values():
        util = "n/a" if r["utilisation"] is None else f"{r['utilisation']:.3f}"
        status = "" if r["exit_code"] == 0 else f" (exit {r['exit_code']})"
        lines.append(
            f"| {r['tier']} {r['allowed_rpm']:,}/min{status} | {r['latency_ms']} ms | {util} "
            f"| {r['responses_429']} | {r['early_requests']} | {r['peak_in_flight']} "
            f"| {r['peak_rss_mb']:.0f} MB |"
        )
    return lines
