"""`stxbf sim`: run the simulated Hiro API on loopback (for the demo, benchmarks and manual tests).

The simulator itself lives in `stxbf.simulator`; this module only parses flags, starts it and
prints the one line scripts wait for: `stxbf simulator serving http://127.0.0.1:PORT (...)`.
"""

from __future__ import annotations

import math
import sys

import typer

MAX_DAYS = 3650  # ten years, as for --target-days
MAX_CHAIN_TRANSACTIONS = 50_000_000  # the whole chain is generated in memory at start

app = typer.Typer(
    help="Run a simulated Hiro Stacks API on loopback (seeded chain, limits, faults).",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    port: int = typer.Option(
        0, "--port", "-p", min=0, max=65535, help="TCP port; 0 picks a free one."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to bind (only)."),
    days: float = typer.Option(
        30.0,
        "--days",
        min=0,
        max=MAX_DAYS,
        help="History length: genesis is DAYS before now.",
    ),
    tx_per_day: int = typer.Option(
        6000, "--tx-per-day", min=0, help="Transactions per day of history."
    ),
    seed: int = typer.Option(1, "--seed", help="Seed for the chain, latency jitter and faults."),
    growth: float = typer.Option(
        0.0,
        "--growth",
        min=0,
        help="New transactions per second while serving (0 = frozen chain).",
    ),
    rpm: int = typer.Option(
        0, "--rpm", min=0, help="Requests per minute per client (0 = unlimited)."
    ),
    per_second: int = typer.Option(
        0,
        "--per-second",
        min=-1,
        help="Requests per second per client (0 = off, -1 = ceil(rpm/60)*3 like a burst cap).",
    ),
    latency_ms: float = typer.Option(
        0.0, "--latency-ms", min=0, help="Added latency per response."
    ),
    fault_rate: float = typer.Option(
        0.0, "--fault-rate", min=0, max=1, help="Share of requests faulted, 0..1."
    ),
    fault_kinds: str = typer.Option(
        "",
        "--fault-kinds",
        help="Comma list of 500,502,503,504,stall,drop,truncate,malformed,short,429 (default all).",
    ),
    stall_seconds: float = typer.Option(
        60.0, "--stall-seconds", min=0, help="How long a stall lasts."
    ),
    require_key: bool = typer.Option(
        False, "--require-key", help="401 without x-api-key, 403 with a key not in --api-key."
    ),
    api_key: list[str] = typer.Option(
        ["sim-key"], "--api-key", help="An accepted key when --require-key (repeatable)."
    ),
    rate_headers: str = typer.Option(
        "full",
        "--rate-headers",
        help="Rate-limit headers sent: full, second, minute, generic, generic-policy or none.",
    ),
    generic_window: str = typer.Option(
        "minute",
        "--generic-window",
        help="The window the generic ratelimit-* triple describes: minute or second.",
    ),
    rate_reset: str = typer.Option(
        "delta", "--rate-reset", help="ratelimit-reset as delta seconds or a Unix time: delta|unix."
    ),
    request_cost: int = typer.Option(
        1, "--request-cost", help="Units each request spends (> 1 sends x-ratelimit-cost-stacks)."
    ),
    month_quota: int = typer.Option(
        0, "--month-quota", help="Units per month per client (0 = none); then 429 until it resets."
    ),
    month_seconds: float = typer.Option(
        0.0, "--month-seconds", help="The quota's period in seconds (0 = the UTC calendar month)."
    ),
    v1: str = typer.Option(
        "on",
        "--v1",
        help="/extended/v1/tx: on, deprecated (Warning: 299) or gone (410 Gone).",
    ),
) -> None:
    """Serve the simulated API until interrupted; prints the URL on one line first."""
    from stxbf.errors import ConfigError
    from stxbf.simulator import SimConfig, parse_fault_kinds, serve_forever
    from stxbf.simulator.api import SimApi

    _check_finite(
        {
            "--days": days,
            "--growth": growth,
            "--latency-ms": latency_ms,
            "--fault-rate": fault_rate,
            "--stall-seconds": stall_seconds,
        }
    )
    if days * tx_per_day > MAX_CHAIN_TRANSACTIONS:
        raise ConfigError(
            f"a chain of {days:g} days at {tx_per_day:,} tx/day is more than the simulator holds "
            f"in memory ({MAX_CHAIN_TRANSACTIONS:,} transactions): lower --days or --tx-per-day"
        )
    if per_second < 0:
        per_second = math.ceil(rpm / 60) * 3 if rpm else 0
    try:
        config = SimConfig(
            seed=seed,
            days=days,
            tx_per_day=tx_per_day,
            growth=growth,
            host=host,
            port=port,
            rpm=rpm or None,
            per_second=per_second or None,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            fault_kinds=parse_fault_kinds(fault_kinds),
            stall_seconds=stall_seconds,
            require_key=require_key,
            api_keys=tuple(api_key),
            rate_headers=rate_headers,
            rate_generic_window=generic_window,
            rate_reset=rate_reset,
            request_cost=request_cost,
            month_quota=month_quota or None,
            month_seconds=month_seconds or None,
            v1=v1,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    def ready(url: str, api: SimApi) -> None:
        chain = api.chain
        details = f"{len(chain)} txs over {days:g} days, seed {seed}"
        if rpm:
            details += f", {rpm} rpm"
        if per_second:
            details += f", {per_second}/s"
        if month_quota:
            details += f", {month_quota}/month"
        if rpm or per_second or month_quota:
            details += f", {rate_headers} headers"
        if v1 != "on":
            details += f", v1 {v1}"
        if fault_rate:
            details += f", faults {fault_rate:g}"
        if growth:
            details += f", growth {growth:g} tx/s"
        sys.stdout.write(f"stxbf simulator serving {url} ({details})\n")
        sys.stdout.flush()

    try:
        serve_forever(config, on_ready=ready)
    except OSError as exc:  # the port is taken, or the address is not ours
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _check_finite(values: dict[str, float]) -> None:
    """Typer's range checks let `nan` and `inf` through; the simulator cannot use them."""
    from stxbf.errors import ConfigError

    for flag, value in values.items():
        if not math.isfinite(value):
            raise ConfigError(f"invalid value for {flag}: {value} is not a finite number")
