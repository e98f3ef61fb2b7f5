"""`stxbf demo`: see the whole tool work with no network — a simulated API, a real backfill."""

from __future__ import annotations

from pathlib import Path

import typer

from stxbf.cli.common import console


def demo(
    days: int = typer.Option(7, "--days", min=1, max=60, help="Days of history to backfill."),
    tx_per_day: int = typer.Option(
        4000, "--tx-per-day", min=1, max=50_000, help="Simulated chain density."
    ),
    rpm: int = typer.Option(
        3000, "--rpm", min=1, help="The simulated API's rate limit (requests/min)."
    ),
    latency_ms: float = typer.Option(30, "--latency-ms", min=0, help="Simulated latency."),
    fault_rate: float = typer.Option(
        0.02, "--fault-rate", min=0.0, max=0.5, help="Share of requests that fail (retried)."
    ),
    home: Path | None = typer.Option(
        None, "--home", help="Demo data directory.  [default: $STXBF_HOME/demo]"
    ),
) -> None:
    """Run a short backfill against a built-in simulated Stacks API, then show the status.

    Starts the simulator on a free loopback port (rate limit, latency and a few faults included),
    backfills DAYS of its history into a demo data directory with the real progress display, and
    prints what `stxbf status` says. Nothing leaves this machine; your real data is not touched.
    """
    from stxbf.cli.run import execute, render_report
    from stxbf.paths import DataPaths
    from stxbf.settings import load_settings
    from stxbf.simulator import SimConfig, run_in_thread

    base = load_settings()
    demo_home = home if home is not None else base.home / "demo"
    demo_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = DataPaths.of(demo_home)
    wal = paths.db.with_name(paths.db.name + ".wal")  # DuckDB's write-ahead log
    for path in (paths.db, wal, paths.progress):  # each demo starts from a fresh simulated chain
        path.unlink(missing_ok=True)
    config = SimConfig(
        days=days + 3,
        tx_per_day=tx_per_day,
        rpm=rpm,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        fault_kinds=("500", "503", "truncate", "short"),
        seed=7,
    )
    with run_in_thread(config) as sim:
        console.print(
            f"[bold]stxbf demo[/]: simulated Stacks API at {sim.url} "
            f"({tx_per_day:,} tx/day, {rpm} req/min, {latency_ms:.0f} ms, "
            f"{fault_rate:.0%} faults) → {demo_home}"
        )
        settings = load_settings(api_url=sim.url, home=demo_home, db=paths.db, target_days=days)
        report = execute(settings)
        render_report(report)
    console.print()
    _show_status(demo_home, days)
    console.print(look_around(demo_home, days), markup=False, soft_wrap=True)
    raise typer.Exit(int(report.exit_code))


def look_around(demo_home: Path, days: int) -> str:
    """Return the commands to paste, one a line. The variables are exported first so that every
    command sees them, the target too, because status and health judge the configured target
    rather than the last run's."""
    import shlex

    program = _program()
    return "\n".join(
        (
            "",
            "Look around (paste these lines):",
            f"  export STXBF_HOME={shlex.quote(str(demo_home))} STXBF_TARGET_DAYS={days}",
            f"  {program} status",
            f"  {program} logs",
            f"  {program} health",
        )
    )


def _program() -> str:
    """Return `stxbf` when the shell finds it, else the path it ran from (`.venv/bin/stxbf`)."""
    import os
    import shlex
    import shutil
    import sys

    if shutil.which("stxbf"):
        return "stxbf"
    ran = sys.argv[0]
    if os.path.basename(ran) == "stxbf" and os.path.isfile(ran):
        return shlex.quote(os.path.relpath(ran) if not ran.startswith("/") else ran)
    return "stxbf"


def _show_status(demo_home: Path, days: int) -> None:
    """Print what `STXBF_HOME=<demo> STXBF_TARGET_DAYS=<days> stxbf status` would print."""
    from stxbf.cli.status import show_status
    from stxbf.report.status import build_status
    from stxbf.settings import load_settings

    settings = load_settings(home=demo_home, target_days=days)
    report = build_status(settings.paths, target_days=settings.target_days)
    show_status(report)
