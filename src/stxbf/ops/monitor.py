"""Drawing a `StatusReport` with rich: the `status` view, the coverage strip and the live monitor.

The monitor (the tmux session's bottom pane, or `stxbf status --watch`) only ever reads: the
runner's progress snapshot while it runs, the database (briefly, read-only) when nothing runs, and
the log file. It never takes the database lock from a runner.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stxbf.codes import StatusState
from stxbf.errors import StxbfError
from stxbf.ops.logs import LEVEL_STYLES, line_level, tail
from stxbf.ops.status import (
    DAY_BEFORE_CHAIN,
    DAY_MISSING,
    DAY_PARTIAL,
    DAY_VERIFIED,
    StatusReport,
)

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
    StatusState.RATE_LIMITED: "bold yellow",
    StatusState.DATABASE_PROBLEM: "bold red",
    StatusState.INCOMPLETE: "bold yellow",
    StatusState.NOT_STARTED: "dim",
}
_WORST_FIRST = (DAY_MISSING, DAY_PARTIAL, DAY_BEFORE_CHAIN, DAY_VERIFIED)


# -- small formatters --------------------------------------------------------------------------


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isinf(seconds) or math.isnan(seconds):
        return "—"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fmt_count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def progress_line(report: StatusReport) -> str:
    return f"Progress: {report.days_verified}/{report.target_days} days ({report.percent:.1f}%)"


def rate_text(report: StatusReport) -> str:
    if report.rate_rpm is None:
        return "—"
    limit = f" (limit {report.limit_rpm:.0f})" if report.limit_rpm else " (no limit)"
    return f"{report.rate_rpm:.0f} requests/min{limit}"


def not_progressing(report: StatusReport, now: float) -> str | None:
    """Why a live runner is making no progress (backing off, stalled), or None while it is.

    A rate and an ETA are only true while pages arrive: otherwise they describe the past.
    """
    if report.state == "stalled":
        return "stalled"
    if report.backoff_until is not None and report.backoff_until > now:
        return "backing off"
    if report.runner.phase == "backing_off":
        return "backing off"
    return None


def rate_and_eta(report: StatusReport, now: float) -> tuple[str, str]:
    """The rate and ETA to show: dashes (and why) while no progress is being made."""
    why = not_progressing(report, now)
    if why is not None:
        return f"— ({why})", f"— ({why})"
    return rate_text(report), fmt_duration(report.eta_seconds)


def describe_last_error(
    error: str, error_at: float | None, progress_at: float | None, now: float
) -> tuple[str, bool]:
    """`HTTP 503 from the API (2m 10s ago, recovered)`, and whether pages arrived since."""
    recovered = error_at is not None and progress_at is not None and progress_at > error_at
    notes = []
    if error_at is not None:
        notes.append(f"{fmt_duration(max(0.0, now - error_at))} ago")
    if recovered:
        notes.append("recovered")
    return (f"{error} ({', '.join(notes)})" if notes else error), recovered


def plain_line(report: StatusReport | None, *, error: str | None, now: float) -> str:
    """One line per refresh for `status --watch` without a terminal (a pipe, a log file)."""
    stamp = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if report is None:
        return f"{stamp} cannot read status: {error}"
    parts = [
        f"{report.days_verified}/{report.target_days} days ({report.percent:.1f}%)",
        report.label,
        f"{fmt_count(report.transactions)} tx",
    ]
    if report.runner.alive:
        rate, eta = rate_and_eta(report, now)
        parts += [f"rate {rate}", f"ETA {eta}"]
    if report.last_error:
        text, _ = describe_last_error(
            report.last_error, report.last_error_at, report.last_progress_at, now
        )
        parts.append(f"last error {text}")
    return f"{stamp} " + " · ".join(parts)


# -- the coverage strip ------------------------------------------------------------------------


def coverage_strip(coverage: str, *, width: int, max_rows: int = 4) -> Text:
    """One glyph per day, oldest first; long ranges fold several days into one glyph (the worst)."""
    width = max(10, width)
    per_glyph = max(1, math.ceil(len(coverage) / (width * max_rows)))
    text = Text()
    for start in range(0, len(coverage), per_glyph):
        chunk = coverage[start : start + per_glyph]
        code = next(c for c in _WORST_FIRST if c in chunk)
        glyph, style = STRIP_GLYPHS[code]
        text.append(glyph, style=style)
    if per_glyph > 1:
        text.append(f"\n(one mark = {per_glyph} days)", style="dim")
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
    if report.runner.alive:
        rate, eta = rate_and_eta(report, now)
        grid.add_row("Rate", rate)
        grid.add_row("ETA", eta)
        age = report.runner.heartbeat_age
        grid.add_row(
            "Runner",
            f"pid {report.runner.pid}, {report.runner.phase or 'starting'}, "
            f"heartbeat {fmt_duration(age)} ago"
            if age is not None
            else f"pid {report.runner.pid}",
        )
    if report.backoff_until is not None and report.backoff_until > now:
        grid.add_row(
            "Backoff", Text(f"waiting {fmt_duration(report.backoff_until - now)}", style="yellow")
        )
    if report.last_error:
        text, recovered = describe_last_error(
            report.last_error, report.last_error_at, report.last_progress_at, now
        )
        grid.add_row("Last error", Text(text, style="dim" if recovered else "red"))
    if report.range_start is not None and report.range_end is not None:
        grid.add_row("Range", f"{fmt_time(report.range_start)} → {fmt_time(report.range_end)}")
    if report.chain_start is not None:
        grid.add_row("Chain starts", fmt_time(report.chain_start))
    return grid


def render_status(report: StatusReport, *, width: int, now: float | None = None) -> RenderableType:
    """The `stxbf status` view: the seed's two lines first (scripts grep them), then the detail."""
    now = time.time() if now is None else now
    head = Text(progress_line(report) + "\n")
    head.append("Status: ")
    head.append(report.label, style=STATE_STYLES.get(report.state, ""))
    if report.state == StatusState.NOT_STARTED:
        hint = "No backfill yet: start one with `stxbf tmux` (or `stxbf run` in the foreground)."
        return Group(head, Text(hint, style="dim"), *(Text(f"note: {n}") for n in report.notes))
    if report.state == StatusState.DATABASE_PROBLEM:
        lines = [report.reason or "", f"What to do: {report.hint}" if report.hint else ""]
        return Group(head, *(Text(line) for line in lines if line))
    parts: list[RenderableType] = [head, Text(""), _figures(report, now), Text("")]
    parts.append(Text(f"Coverage ({report.target_days} days, oldest → newest):", style="bold"))
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
    now = time.time() if now is None else now
    parts: list[RenderableType] = []
    if error is not None:
        parts.append(Text(f"cannot read status: {error}", style="bold red"))
    if report is not None:
        bar = Table.grid(padding=(0, 1))
        bar.add_column(ratio=1)
        bar.add_column(no_wrap=True)
        bar.add_row(
            ProgressBar(total=max(1, report.target_days), completed=report.days_verified),
            Text(f"{report.days_verified}/{report.target_days} days ({report.percent:.1f}%)"),
        )
        parts.append(bar)
        state = Text("Status: ")
        state.append(report.label, style=STATE_STYLES.get(report.state, ""))
        if report.runner.alive:
            rate, eta = rate_and_eta(report, now)
            state.append(f"   rate {rate}   ETA {eta}")
        parts.append(state)
        figures = Text(
            f"Transactions {fmt_count(report.transactions)}   "
            f"Wallets {fmt_count(report.wallets)}   "
            f"Oldest {fmt_time(report.earliest_tx_time)}   DB {fmt_bytes(report.db_bytes)}"
        )
        parts.append(figures)
        if report.backoff_until is not None and report.backoff_until > now:
            parts.append(
                Text(
                    f"Backing off: {fmt_duration(report.backoff_until - now)} left", style="yellow"
                )
            )
        if report.last_error:
            text, recovered = describe_last_error(
                report.last_error, report.last_error_at, report.last_progress_at, now
            )
            parts.append(Text(f"Last error: {text}", style="dim" if recovered else "red"))
        for note in report.notes:
            parts.append(Text(f"note: {note}", style="yellow"))
        parts.append(coverage_strip(report.coverage, width=width - 4, max_rows=3))
        parts.append(strip_legend(report))
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


def run_monitor(
    build: Callable[[], StatusReport],
    *,
    log_path: Path | None,
    console: Console,
    interval: float = 10.0,
    iterations: int | None = None,
    log_lines: int = 30,
) -> None:
    """Redraw every `interval` seconds until interrupted (or `iterations` frames, for tests).

    Without a terminal (a pipe, a file) a live panel cannot redraw: one plain line per refresh.
    """
    from rich.live import Live

    if not console.is_terminal:
        _plain_monitor(build, console=console, interval=interval, iterations=iterations)
        return
    frame = 0
    with Live(console=console, auto_refresh=False, vertical_overflow="crop") as live:
        while iterations is None or frame < iterations:
            report: StatusReport | None = None
            error: str | None = None
            try:
                report = build()
            except StxbfError as exc:
                error = exc.message
            lines = tail(log_path, log_lines) if log_path is not None else []
            live.update(
                render_dashboard(
                    report,
                    error=error,
                    log_lines=lines,
                    width=console.width,
                    height=console.height,
                    interval=interval,
                ),
                refresh=True,
            )
            frame += 1
            if iterations is not None and frame >= iterations:
                break
            time.sleep(interval)


def _plain_monitor(
    build: Callable[[], StatusReport],
    *,
    console: Console,
    interval: float,
    iterations: int | None,
) -> None:
    frame = 0
    while iterations is None or frame < iterations:
        report: StatusReport | None = None
        error: str | None = None
        try:
            report = build()
        except StxbfError as exc:
            error = exc.message
        line = plain_line(report, error=error, now=time.time())
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.file.flush()
        frame += 1
        if iterations is not None and frame >= iterations:
            break
        time.sleep(interval)
