"""The options that several commands share, declared once. Their help texts name the defaults
from `stxbf.defaults`, the module the settings read them from too.

A setting's option has no default of its own (None: the environment or the config file may
give one), so its help names the default in the words Typer uses for the others, `[default: X]`,
numbers without a trailing `.0`: one way in every help.
"""

from __future__ import annotations

from typing import Literal

import typer

from stxbf import defaults

# Closed sets of values, as types: Typer lists them in help and completes them in the shell.
# The settings validate the same values from the environment and the config file (a test holds
# these to settings.SOURCES and settings.LOG_LEVELS).
SourceChoice = Literal["auto", "v1", "v3"]
LogLevelChoice = Literal["debug", "info", "warning", "error"]  # any case

TargetDays = typer.Option(
    None, "--target-days", help=f"Days of history to backfill.  [default: {defaults.TARGET_DAYS}]"
)
MaxPages = typer.Option(
    None, "--max-pages", help=f"Page budget per iteration.  [default: {defaults.MAX_PAGES}]"
)
MaxIterations = typer.Option(
    None, "--max-iterations", help="Stop after N iterations; 0 = until the target.  [default: 0]"
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
    help="Requests in flight at most; how many are in flight follows the rate limit and the "
    f"latency under it.  [default: {defaults.CONCURRENCY}]",
)
Rpm = typer.Option(
    None, "--rpm", help="Fix the request rate (per minute) instead of following the API's headers."
)
ApiUrl = typer.Option(
    None, "--api-url", help=f"Stacks API base URL.  [default: {defaults.DEFAULT_API_URL}]"
)
Home = typer.Option(None, "--home", help="Data directory: database, log, lock (env STXBF_HOME).")
Db = typer.Option(None, "--db", help="DuckDB file.  [default: $STXBF_HOME/stxbf.duckdb]")
Source = typer.Option(
    None,
    "--source",
    case_sensitive=False,
    help="Where transactions come from: auto (v1 while it answers, then v3), v1 "
    "(/extended/v1/tx) or v3 (/extended/v3/transactions) (env STXBF_SOURCE).  [default: auto]",
)
GiveUpAfter = typer.Option(
    None,
    "--give-up-after",
    help="Seconds of failures before a request is abandoned. "
    f"[default: {defaults.GIVE_UP_AFTER:g}]",
)
RequestTimeout = typer.Option(
    None,
    "--request-timeout",
    help=f"Seconds one HTTP request may take.  [default: {defaults.REQUEST_TIMEOUT:g}]",
)
LogLevel = typer.Option(
    None, "--log-level", case_sensitive=False, help="Log file detail.  [default: info]"
)
SettleHours = typer.Option(
    None,
    "--settle-hours",
    help="Windows ending this close to the chain head stay open and are fetched again by "
    f"every run; 0 = only the 2 h head window.  [default: {defaults.SETTLE_HOURS:g}]",
)
Verify = typer.Option(
    False,
    "--verify",
    help="Before reporting the target reached, re-count every verified window (as "
    "`stxbf verify`) and fetch again those that changed.",
)
StallSeconds = typer.Option(
    round(defaults.STALL_SECONDS),  # an int shows as `[default: 600]`, not `600.0`
    "--stall-seconds",
    min=1,
    help="A runner that got no page and committed no window for this long is stalled.",
)
SessionName = typer.Option(
    None,
    "--session-name",
    help=f"tmux session name (env STXBF_SESSION_NAME).  [default: {defaults.SESSION_NAME}]",
)
SocketName = typer.Option(
    None, "--socket-name", help="tmux socket name, for a private server (env STXBF_TMUX_SOCKET)."
)
# status and health: the target a backfill is judged against, resolved as `run` resolves its own
JudgedTargetDays = typer.Option(
    None,
    "--target-days",
    min=1,
    help="Days of history to judge against, as `run` reads them (flag, STXBF_TARGET_DAYS, "
    f"the config file).  [default: {defaults.TARGET_DAYS}]",
)
