"""Requests per transaction: the v1 window engine and the v3 source on the same simulated chain.

    .venv/bin/python benchmarks/v3_requests.py [--days 30] [--tx-per-day 6000]
        [--span-hours 6] [--target-rows N] [--rpm 600 [--latency-ms 250]]

In-process (the simulator's httpx transport, no rate limit), so it counts requests rather than
timing them; the time at 500 requests/min is requests / 500 minutes. With `--rpm` the simulator
limits the rate (and delays each answer), the pacer learns the limit from the headers as in a
run, and the share of the limit each source used is printed. Both fetch every window of
the chain's whole history and are checked against the simulator's ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from stxbf.fetch.client import ApiClient
from stxbf.fetch.engine import Engine
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import PageSource
from stxbf.fetch.v3 import V3Engine, V3Source
from stxbf.fetch.windows import CompletedWindow
from stxbf.simulator import SimApi, SimConfig, SimTransport

END = 1_750_000_000
LIMITED = False  # --rpm: the simulator limits and delays; the pacer learns the limit


def connect(api: SimApi) -> tuple[ApiClient, Pacer]:
    if not LIMITED:
        client = ApiClient("http://sim", transport=SimTransport(api, clock=lambda: END))
        return client, Pacer(rpm=None, fixed=True)
    began = time.time()
    transport = SimTransport(api, clock=lambda: END + time.time() - began)
    return ApiClient("http://sim", transport=transport), Pacer(rpm=None)


async def run_v1(api: SimApi, start: int, end: int) -> set[str]:
    client, pacer = connect(api)
    ids: set[str] = set()

    async def on_window(window: CompletedWindow) -> None:
        assert window.state == "verified", window
        ids.update(row[0] for row in window.rows)

    source = PageSource(client, pacer, give_up_after=60)
    engine = Engine(source, concurrency=8, on_window=on_window)
    result = await engine.run_pass([(start, end)], head_start=None, page_budget=10**9)
    assert result.finished
    return ids


async def run_v3(
    api: SimApi, start: int, end: int, span: int, target_rows: int | None
) -> tuple[set[str], V3Source]:
    client, pacer = connect(api)
    source = V3Source(client, pacer, give_up_after=60, concurrency=8)
    ids: set[str] = set()

    async def on_window(window: CompletedWindow) -> None:
        assert window.state == "verified", window
        ids.update(row[0] for row in window.rows)

    engine = V3Engine(
        source, on_window=on_window, initial_span=span, target_window_rows=target_rows
    )
    result = await engine.run_pass([(start, end)], head_start=None, page_budget=10**9)
    assert result.finished
    return ids, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--tx-per-day", type=int, default=6000)
    parser.add_argument("--span-hours", type=float, default=6.0)
    parser.add_argument(
        "--target-rows", type=int, default=None, help="adapt the span to this many rows a window"
    )
    parser.add_argument("--rpm", type=int, default=None, help="limit the simulator (real time)")
    parser.add_argument("--latency-ms", type=float, default=250.0)
    args = parser.parse_args()
    global LIMITED
    LIMITED = args.rpm is not None
    config = SimConfig(
        days=args.days,
        tx_per_day=args.tx_per_day,
        end_time=END,
        rpm=args.rpm,
        latency_ms=args.latency_ms if LIMITED else 0.0,
    )
    api = SimApi(config, epoch=END)
    times = api.chain.tenure_burn_time
    # every window final: the v3 source leaves the last 2 h (its slack) open, so stop 3 h short
    start, end = times[0], times[-1] - 3 * 3600
    truth = set(api.chain.tx_ids(start, end))
    print(f"chain: {len(api.chain)} txs, {api.chain.n_tenures} burn blocks; range {len(truth)} txs")
    for name in ("v1", "v3"):
        api.set_limits(rpm=args.rpm)
        api.handle("POST", "/_sim/reset", {})
        began = time.perf_counter()
        if name == "v1":
            ids = asyncio.run(run_v1(api, start, end))
            detail = ""
        else:
            ids, source = asyncio.run(
                run_v3(api, start, end, int(args.span_hours * 3600), args.target_rows)
            )
            stats = source.v3_stats
            overhead = stats.overhead_requests / stats.tx_pages
            detail = (
                f" (tx pages {stats.tx_pages}, burn-block pages {stats.burn_pages}, "
                f"block lookups {stats.block_lookups}, re-walks {stats.rewalks}; "
                f"verification overhead {overhead:.1%} of tx pages)"
            )
        assert ids == truth, f"{name}: {len(ids)} != {len(truth)}"
        requests = api.requests
        elapsed = time.perf_counter() - began
        if LIMITED:
            detail += (
                f"; {requests / elapsed * 60:.0f} requests/min of {args.rpm} "
                f"({requests / elapsed * 60 / args.rpm:.3f}), 429s {api.by_status.get(429, 0)}"
            )
        print(
            f"{name}: {requests} requests, {requests / len(truth):.5f} per tx, "
            f"{requests / 500:.1f} min at 500/min, {elapsed:.1f} s here{detail}"
        )


if __name__ == "__main__":
    main()
