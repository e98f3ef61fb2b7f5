"""How a `StatusReport` reads on screen: the words for its figures, the `stxbf status` view and
the live monitor's dashboard, drawn with rich.

The words (days, the target, the quota, the rate and ETA, the last error) are plain strings, so
that `status`, `health`, the monitor's dashboard and its plain lines word each thing alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stxbf.codes import StatusState
from stxbf.logs import LEVEL_STYLES, line_level
from stxbf.report.days import DAY_BEFORE_CHAIN, DAY_MISSING, DAY_PARTIAL, DAY_VERIFIED
from stxbf.report.status import StatusReport, not_progressing
from stxbf.words import clock, days_count, fmt_bytes, fmt_count, fmt_duration, fmt_time, plural

STRIP_GLYPHS = {
    DAY_VERIFIED: ("█", "green"),
    DAY_PARTIAL: ("▒", "yellow"),
    DAY_MISSING: ("·", "red"),
    DAY_BEFORE_CHAIN: (" ", "dim"),
}
STATE_STYLES: dict[str, str] = {  # keyed by StatusState (a str)
    StatusState.COMPLETE: "bold green",
    StatusState.REACHED_CHAIN_START: "bold green",
    StatusState.RUNNING: "bold cyan",
    StatusState.STALLED: "bold red",
    StatusState.DEGRADED: "bold yellow",
    StatusState.RATE_LIMITED: "bold yellow",
    StatusState.DATABASE_PROBLEM: "bold red",
    StatusState.INCOMPLETE: "bold yellow",
    StatusState.NOT_STARTED: "dim",
}
_WORST_FIRST = (DAY_MISSING, DAY_PARTIAL, DAY_BEFORE_CHAIN, DAY_VERIFIED)


# -- words: how figures read on every screen -----------------------------------------------


def days_text(report: StatusReport) -> str:
    """Say how far the backfill is (`12/30 days (40.0%)`), in the same words on every screen."""
    return f"{report.days_verified}/{report.target_days} days ({report.percent:.1f}%)"


def target_text(target_days: int, run_target_days: int | None, *, running: bool = False) -> str:
    """Say which target is judged, and the run's own when it is known: `365 days (last run: 7
    days)`."""
    if run_target_days is None:
        return days_count(target_days)
    if run_target_days == target_days:
        return f"{days_count(target_days)} (as {'this run' if running else 'the last run'})"
    which = "this run" if running else "last run"
    return f"{days_count(target_days)} ({which}: {days_count(run_target_days)})"


def quota_text(report: StatusReport) -> str:
    """Say what the API's headers said last of the quota: `148,210 of 150,000 requests left (at
    14:02 UTC)`."""
    assert report.quota_remaining is not None
    of = f" of {report.quota_limit:,.0f}" if report.quota_limit is not None else ""
    when = f" (at {clock(report.quota_at)})" if report.quota_at is not None else ""
    return f"{report.quota_remaining:,.0f}{of} requests left{when}"


def rate_text(report: StatusReport) -> str:
    if report.rate_rpm is None:
        return "—"
    limit = f" (limit {report.limit_rpm:.0f})" if report.limit_rpm else " (no limit)"
    return f"{report.rate_rpm:.0f} requests/min{limit}"


def rate_and_eta(report: StatusReport, now: float) -> tuple[str, str]:
    """Return the rate and ETA to show, or dashes and the reason while no progress is made."""
    why = not_progressing(report, now)
    if why is not None:
        return f"— ({why})", f"— ({why})"
    return rate_text(report), fmt_duration(report.eta_seconds)


def describe_last_error(
    error: str, error_at: float | None, progress_at: float | None, now: float
) -> tuple[str, bool]:
    """Word the last error with its age (`HTTP 503 from the API (2m 10s ago, recovered)`), and
    return with it whether pages arrived since."""
    recovered = error_at is not None and progress_at is not None and progress_at > error_at
    notes = []
    if error_at is not None:
        notes.append(f"{fmt_duration(max(0.0, now - error_at))} ago")
    if recovered:
        notes.append("recovered")
    return (f"{error} ({', '.join(notes)})" if notes else error), recovered


def last_error_of(report: StatusReport, now: float) -> tuple[str, bool] | None:
    """Return the report's last error as `describe_last_error` words it, or None if it has none."""
    if not report.last_error:
        return None
    return describe_last_error(
        report.last_error, report.last_error_at, report.last_progress_at, now
    )


# -- the coverage strip ------------------------------------------------------------------------


def coverage_strip(coverage: str, *, width: int, max_rows: int = 4) -> Text:
    """Draw one glyph per day, oldest first. A long range folds several days into one glyph,
    which shows the worst of them."""
    width = max(10, width)
    per_glyph = max(1, math.ceil(len(coverage) / (width * max_rows)))
    text = Text()
    for index, start in enumerate(range(0, len(coverage), per_glyph)):
        if index and index % width == 0:  # rows cut here: into a pipe the console does not wrap
            text.append("\n")
        chunk = coverage[start : start + per_glyph]
        code = next(c for c in _WORST_FIRST if c in chunk)
        glyph, style = STRIP_GLYPHS[code]
        text.append(glyph, style=style)
    if per_glyph > 1:
        text.append(f"\n(one mark = {plural(per_glyph, 'day')})", style="dim")
    return text


def strip_legend(report: StatusReport) -> Text:
    text = Text()
    for code, count, label in (
        (DAY_VERIFIED, report.days_verified, "verified"),
        (DAY_PARTIAL, report.days_partial, "partial"),
        (DAY_MISSING, report.days_missing, "missing"),
        (DAY_BEFORE_CHAIN, report.days_before_chain, "before chain start"),
    ):
        if code == DAY_BEFORE_CHAIN and not count:
            continue
        glyph, style = STRIP_GLYPHS[code]
        text.append(glyph if glyph != " " else "␣", style=style)
        text.append(f" {label} {count}   ")
    return text


def _state_line(report: StatusReport) -> Text:
    line = Text("Status: ")
    line.append(report.label, style=STATE_STYLES.get(report.state, ""))
    return line


def _last_error(report: StatusReport, now: float, prefix: str = "") -> Text | None:
    """Draw the last error dim once pages arrived after it, and red until then."""
    found = last_error_of(report, now)
    if found is None:
        return None
    text, recovered = found
    return Text(prefix + text, style="dim" if recovered else "red")


def _backing_off(report: StatusReport, now: float) -> float | None:
    """Return the seconds left of a retry-after wait, or None when there is none."""
    if report.backoff_until is not None and report.backoff_until > now:
        return report.backoff_until - now
    return None


# -- status ------------------------------------------------------------------------------------


def _figures(report: StatusReport, now: float) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Transactions", fmt_count(report.transactions))
    grid.add_row("Wallets (senders)", fmt_count(report.wallets))
    grid.add_row("Earliest transaction", fmt_time(report.earliest_tx_time))
    grid.add_row("Latest transaction", fmt_time(report.latest_tx_time))
    grid.add_row("Database", Text(f"{fmt_bytes(report.db_bytes)}  {report.db_path}"))
    running = report.runner.alive
    grid.add_row("Target", target_text(report.target_days, report.run_target_days, running=running))
    if report.quota_remaining is not None:
        grid.add_row("Monthly quota", quota_text(report))
    if report.runner.alive:
        rate, eta = rate_and_eta(report, now)
        grid.add_row("Rate", rate)
        grid.add_row("ETA", eta)
        age = report.runner.heartbeat_age
        route = f", from {report.run_source}" if report.run_source else ""
        grid.add_row(
            "Runner",
            f"pid {report.runner.pid}, {report.runner.phase or 'starting'}{route}, "
            f"heartbeat {fmt_duration(age)} ago"
            if age is not None
            else f"pid {report.runner.pid}{route}",
        )
    if (left := _backing_off(report, now)) is not None:
        grid.add_row("Backoff", Text(f"waiting {fmt_duration(left)}", style="yellow"))
    if (error := _last_error(report, now)) is not None:
        grid.add_row("Last error", error)
    if report.range_start is not None and report.range_end is not None:
        grid.add_row("Range", f"{fmt_time(report.range_start)} → {fmt_time(report.range_end)}")
    if report.chain_start is not None:
        grid.add_row("Chain starts", fmt_time(report.chain_start))
    return grid


def render_status(report: StatusReport, *, width: int, now: float | None = None) -> RenderableType:
    """Draw the `stxbf status` view: the progress and status lines first, because scripts grep
    them, then the figures and the coverage strip."""
    now = time.time() if now is None else now
    head = Text(f"Progress: {days_text(report)}\n")  # scripts grep this line
    head.append_text(_state_line(report))
    if report.state == StatusState.NOT_STARTED:
        hint = "No backfill yet: start one with `stxbf tmux` (or `stxbf run` in the foreground)."
        return Group(head, Text(hint, style="dim"), *(Text(f"note: {n}") for n in report.notes))
    if report.state == StatusState.DATABASE_PROBLEM:
        lines = [report.reason or "", f"What to do: {report.hint}" if report.hint else ""]
        return Group(head, *(Text(line) for line in lines if line))
    parts: list[RenderableType] = [head, Text(""), _figures(report, now), Text("")]
    days = plural(report.target_days, "day")
    parts.append(Text(f"Coverage ({days}, oldest → newest):", style="bold"))
    parts.append(coverage_strip(report.coverage, width=width, max_rows=8))
    parts.append(strip_legend(report))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


# -- the live monitor --------------------------------------------------------------------------


def render_log_lines(lines: Sequence[str]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    level: str | None = "INFO"
    for index, line in enumerate(lines):
        level = line_level(line) or level
        if index:
            text.append("\n")
        text.append(line, style=LEVEL_STYLES.get(level or "INFO", ""))
    return text


def _dashboard_report(report: StatusReport, *, width: int, now: float) -> list[RenderableType]:
    """Draw the dashboard's report: progress bar, state, figures, errors, notes and the strip."""
    bar = Table.grid(padding=(0, 1))
    bar.add_column(ratio=1)
    bar.add_column(no_wrap=True)
    bar.add_row(
        ProgressBar(total=max(1, report.target_days), completed=report.days_verified),
        Text(days_text(report)),
    )
    state = _state_line(report)
    if report.runner.alive:
        rate, eta = rate_and_eta(report, now)
        state.append(f"   rate {rate}   ETA {eta}")
        if report.run_source:
            state.append(f"   from {report.run_source}")
    figures = Text(
        f"Transactions {fmt_count(report.transactions)}   "
        f"Wallets {fmt_count(report.wallets)}   "
        f"Oldest {fmt_time(report.earliest_tx_time)}   DB {fmt_bytes(report.db_bytes)}"
    )
    if report.run_target_days not in (None, report.target_days):
        figures.append(f"   Run's target {days_count(report.run_target_days or 0)}")
    parts: list[RenderableType] = [bar, state, figures]
    if (left := _backing_off(report, now)) is not None:
        parts.append(Text(f"Backing off: {fmt_duration(left)} left", style="yellow"))
    if (error := _last_error(report, now, "Last error: ")) is not None:
        parts.append(error)
    parts += [Text(f"note: {note}", style="yellow") for note in report.notes]
    parts.append(coverage_strip(report.coverage, width=width - 4, max_rows=3))
    parts.append(strip_legend(report))
    return parts


def render_dashboard(
    report: StatusReport | None,
    *,
    error: str | None,
    log_lines: Sequence[str],
    width: int,
    height: int,
    interval: float,
    now: float | None = None,
) -> RenderableType:
    """Draw the monitor's frame: the report, then as many recent log lines as the height allows."""
    now = time.time() if now is None else now
    parts: list[RenderableType] = []
    if error is not None:
        parts.append(Text(f"cannot read status: {error}", style="bold red"))
    if report is not None:
        parts += _dashboard_report(report, width=width, now=now)
    strip_rows = math.ceil(len(report.coverage) / max(1, width - 4)) if report is not None else 0
    used = len(parts) + max(0, strip_rows - 1) + 3  # borders and the "Recent log" title
    room = max(0, height - used)
    if room and log_lines:
        parts.append(Text("Recent log", style="bold"))
        parts.append(render_log_lines(list(log_lines)[-room:]))
    stamp = datetime.fromtimestamp(now).strftime("%H:%M:%S")
    return Panel(
        Group(*parts),
        title="stxbf monitor",
        subtitle=f"updated {stamp} · every {interval:g}s · Ctrl+C quits (read-only)",
        border_style="cyan",
    )
