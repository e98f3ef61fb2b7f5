"""`stxbf sim`: run the simulated Hiro API on loopback (for the demo, benchmarks and manual tests).

The simulator itself lives in `stxbf.simulator`; this module only parses flags, starts it and
prints the one line scripts wait for: `stxbf simulator serving http://127.0.0.1:PORT (...)`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import typer

from stxbf.cli.common import WholeSummaries
from stxbf.words import utc_iso

if TYPE_CHECKING:
    from stxbf.simulator import SimApi, SimConfig

MAX_DAYS = 3650  # ten years, as for --target-days
MAX_CHAIN_TRANSACTIONS = 50_000_000  # the whole chain is generated in memory at start

app = typer.Typer(
    help="Run a simulated Hiro Stacks API on loopback (seeded chain, limits, faults).",
    no_args_is_help=True,
    cls=WholeSummaries,
)

Port = typer.Option(0, "--port", "-p", min=0, max=65535, help="TCP port; 0 picks a free one.")
HostChoice = Literal["127.0.0.1", "localhost", "::1"]  # defaults.LOOPBACK_HOSTS
Host = typer.Option("127.0.0.1", "--host", help="Loopback address to bind (only).")
Days = typer.Option(
    30, "--days", min=0, max=MAX_DAYS, help="History length: genesis is DAYS before now."
)
TxPerDay = typer.Option(6000, "--tx-per-day", min=0, help="Transactions per day of history.")
Seed = typer.Option(1, "--seed", help="Seed for the chain, latency jitter and faults.")
Growth = typer.Option(
    0, "--growth", min=0, help="New transactions per second while serving (0 = frozen chain)."
)
Rpm = typer.Option(0, "--rpm", min=0, help="Requests per minute per client (0 = unlimited).")
PerSecond = typer.Option(
    0,
    "--per-second",
    min=-1,
    help="Requests per second per client (0 = off, -1 = ceil(rpm/60)*3 like a burst cap).",
)
LatencyMs = typer.Option(0, "--latency-ms", min=0, help="Added latency per response.")
LatencyShape = typer.Option(
    "even",
    "--latency-shape",
    help="How latency varies: `even` (within 20 % of --latency-ms) or `lognormal` "
    "(that mean, a long tail).",
)
FaultRate = typer.Option(0, "--fault-rate", min=0, max=1, help="Share of requests faulted, 0..1.")
FaultKinds = typer.Option(
    "",
    "--fault-kinds",
    help="Comma list of fault kinds: 500, 502, 503, 504, stall, drop, truncate, malformed, "
    "short, 429.  [default: all]",
)
StallSeconds = typer.Option(60, "--stall-seconds", min=0, help="How long a stall lasts.")
RequireKey = typer.Option(
    False, "--require-key", help="401 without x-api-key, 403 with a key not in --api-key."
)
ApiKey = typer.Option(
    ["sim-key"], "--api-key", help="An accepted key when --require-key (repeatable)."
)
# The simulator's closed sets, as types Typer lists and completes (a test holds them to
# simulator.ratelimit.RATE_HEADER_STYLES, GENERIC_WINDOWS, RESET_FORMATS and
# simulator.config.V1_STATES).
RateHeadersChoice = Literal["full", "second", "minute", "generic", "generic-policy", "none"]
GenericWindowChoice = Literal["minute", "second"]
RateResetChoice = Literal["delta", "unix"]
V1Choice = Literal["on", "deprecated", "gone"]
LatencyShapeChoice = Literal["even", "lognormal"]  # simulator.config.LATENCY_SHAPES

RateHeaders = typer.Option("full", "--rate-headers", help="Rate-limit headers sent.")
GenericWindow = typer.Option(
    "minute", "--generic-window", help="The window the generic ratelimit-* triple describes."
)
RateReset = typer.Option(
    "delta", "--rate-reset", help="ratelimit-reset as delta seconds or as a Unix time."
)
RequestCost = typer.Option(
    1, "--request-cost", help="Units each request spends (> 1 sends x-ratelimit-cost-stacks)."
)
MonthQuota = typer.Option(
    0, "--month-quota", help="Units per month per client (0 = none); then 429 until it resets."
)
MonthSeconds = typer.Option(
    0, "--month-seconds", help="The quota's period in seconds (0 = the UTC calendar month)."
)
Now = typer.Option(
    None,
    "--now",
    help="The chain's end time, fixed (unix seconds or ISO 8601): restarted with the same seed "
    "and --now, the simulator serves the same chain.",
)
V1 = typer.Option(
    "on", "--v1", help="/extended/v1/tx: on, deprecated (Warning: 299) or gone (410 Gone)."
)
V1GoneAfter = typer.Option(
    0, "--v1-gone-after", help="Switch /extended/v1/tx to 410 Gone after N requests (0 = never)."
)


@app.command("serve")
def serve(
    port: int = Port,
    host: HostChoice = Host,
    days: float = Days,
    tx_per_day: int = TxPerDay,
    seed: int = Seed,
    growth: float = Growth,
    rpm: int = Rpm,
    per_second: int = PerSecond,
    latency_ms: float = LatencyMs,
    latency_shape: LatencyShapeChoice = LatencyShape,
    fault_rate: float = FaultRate,
    fault_kinds: str = FaultKinds,
    stall_seconds: float = StallSeconds,
    require_key: bool = RequireKey,
    api_key: list[str] = ApiKey,
    rate_headers: RateHeadersChoice = RateHeaders,
    generic_window: GenericWindowChoice = GenericWindow,
    rate_reset: RateResetChoice = RateReset,
    request_cost: int = RequestCost,
    month_quota: int = MonthQuota,
    month_seconds: float = MonthSeconds,
    v1: V1Choice = V1,
    v1_gone_after: int = V1GoneAfter,
    now: str | None = Now,
) -> None:
    """Serve the simulated API until interrupted; prints the URL on one line first."""
    from stxbf.simulator import SimConfig, parse_fault_kinds, parse_instant

    _check_numbers(days, tx_per_day, growth, latency_ms, fault_rate, stall_seconds)
    with _config_errors("--now"):
        end_time = parse_instant(now) if now is not None else None
    with _config_errors():
        config = SimConfig(
            end_time=end_time,
            seed=seed,
            days=days,
            tx_per_day=tx_per_day,
            growth=growth,
            host=host,
            port=port,
            rpm=rpm or None,
            per_second=_burst_cap(rpm) if per_second < 0 else per_second or None,
            latency_ms=latency_ms,
            latency_shape=latency_shape,
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
            v1_gone_after=v1_gone_after or None,
        )
    _serve(config)


def _burst_cap(rpm: int) -> int | None:
    """Resolve `--per-second -1` to three seconds' worth of the minute rate, or off without one."""
    return math.ceil(rpm / 60) * 3 if rpm else None


def _check_numbers(
    days: float,
    tx_per_day: int,
    growth: float,
    latency_ms: float,
    fault_rate: float,
    stall_seconds: float,
) -> None:
    """Refuse what Typer's range checks miss: `nan` and `inf`, and a chain too large to hold."""
    from stxbf.errors import ConfigError

    floats = {
        "--days": days,
        "--growth": growth,
        "--latency-ms": latency_ms,
        "--fault-rate": fault_rate,
        "--stall-seconds": stall_seconds,
    }
    for flag, value in floats.items():
        if not math.isfinite(value):
            raise ConfigError(f"invalid {flag}: must be a finite number (got {value!r})")
    if days * tx_per_day > MAX_CHAIN_TRANSACTIONS:
        raise ConfigError(
            f"a chain of {days:g} days at {tx_per_day:,} tx/day is more than the simulator holds "
            f"in memory ({MAX_CHAIN_TRANSACTIONS:,} transactions): lower --days or --tx-per-day"
        )


@contextlib.contextmanager
def _config_errors(flag: str | None = None) -> Iterator[None]:
    """Turn a setting that SimConfig refuses (a ValueError) into a usage error with its message."""
    from stxbf.errors import ConfigError

    try:
        yield
    except ValueError as exc:
        raise ConfigError(f"invalid {flag}: {exc}" if flag else str(exc)) from None


def _serve(config: SimConfig) -> None:
    """Serve until interrupted, printing the ready line once the port is bound."""
    from stxbf.errors import ConfigError
    from stxbf.simulator import serve_forever

    def ready(url: str, api: SimApi) -> None:
        sys.stdout.write(f"stxbf simulator serving {url} ({_describe(config, len(api.chain))})\n")
        sys.stdout.flush()

    try:
        serve_forever(config, on_ready=ready)
    except OSError as exc:  # the port is taken, or the address is not ours
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None


def _describe(config: SimConfig, transactions: int) -> str:
    """Return the ready line's summary of what is served and how."""
    parts = [f"{transactions} txs over {config.days:g} days, seed {config.seed}"]
    if config.end_time is not None:
        parts.append(f"ending {utc_iso(config.end_time)}")
    if config.rpm:
        parts.append(f"{config.rpm} rpm")
    if config.per_second:
        parts.append(f"{config.per_second}/s")
    if config.month_quota:
        parts.append(f"{config.month_quota}/month")
    if config.rpm or config.per_second or config.month_quota:
        parts.append(f"{config.rate_headers} headers")
    if config.v1 != "on":
        parts.append(f"v1 {config.v1}")
    if config.fault_rate:
        parts.append(f"faults {config.fault_rate:g}")
    if config.growth:
        parts.append(f"growth {config.growth:g} tx/s")
    return ", ".join(parts)
