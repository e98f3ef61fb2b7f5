"""The options several commands share, declared once; their help texts name the defaults from
`stxbf.defaults`, the module the settings read them from too."""

from __future__ import annotations

import typer

from stxbf import defaults

TargetDays = typer.Option(
    None, "--target-days", help=f"Days of history to backfill (default {defaults.TARGET_DAYS})."
)
MaxPages = typer.Option(
    None, "--max-pages", help=f"Page budget per iteration (default {defaults.MAX_PAGES})."
)
MaxIterations = typer.Option(
    None, "--max-iterations", help="Stop after N iterations; 0 = until the target (default 0)."
)
MaxRequests = typer.Option(
    None,
    "--max-requests",
    help="Send at most N requests in this run, then stop with the completed windows committed "
    "(exit 3); default none.",
)
Concurrency = typer.Option(
    None,
    "--concurrency",
    help="Requests in flight at most; the number in flight follows the rate limit and the "
    f"latency under it (default {defaults.CONCURRENCY}).",
)
Rpm = typer.Option(
    None, "--rpm", help="Fix the request rate (per minute) instead of following the API's headers."
)
ApiUrl = typer.Option(
    None, "--api-url", help=f"Stacks API base URL (default {defaults.DEFAULT_API_URL})."
)
Home = typer.Option(None, "--home", help="Data directory: database, log, lock (env STXBF_HOME).")
Db = typer.Option(None, "--db", help="DuckDB file (default $STXBF_HOME/stxbf.duckdb).")
Source = typer.Option(
    None,
    "--source",
    help="Where transactions come from: auto (/extended/v1/tx while it answers, then "
    "/extended/v3/transactions), v1 or v3 (env STXBF_SOURCE; default auto).",
)
GiveUpAfter = typer.Option(
    None,
    "--give-up-after",
    help=f"Seconds of failures before a request is abandoned (default {defaults.GIVE_UP_AFTER:g}).",
)
RequestTimeout = typer.Option(
    None,
    "--request-timeout",
    help=f"Seconds one HTTP request may take (default {defaults.REQUEST_TIMEOUT:g}).",
)
LogLevel = typer.Option(
    None, "--log-level", help="Log file detail: DEBUG, INFO, WARNING or ERROR (default INFO)."
)
SettleHours = typer.Option(
    None,
    "--settle-hours",
    help="Windows ending this close to the chain head stay open and are fetched again by "
    f"every run (default {defaults.SETTLE_HOURS:g}; 0 = only the 2 h head window).",
)
Verify = typer.Option(
    False,
    "--verify",
    help="Before reporting the target reached, re-count every verified window (as "
    "`stxbf verify`) and fetch again those that changed.",
)
StallSeconds = typer.Option(
    defaults.STALL_SECONDS,
    "--stall-seconds",
    min=1,
    help="A runner that got no page and committed no window for this long is stalled.",
)
SessionName = typer.Option(
    None,
    "--session-name",
    help=f"tmux session name (default {defaults.SESSION_NAME}; env STXBF_SESSION_NAME).",
)
SocketName = typer.Option(
    None, "--socket-name", help="tmux socket name, for a private server (env STXBF_TMUX_SOCKET)."
)
