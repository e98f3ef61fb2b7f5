"""What a run tells a person, in its runner pane and its cron mail (issue 15, item 5): ISO times,
plurals that agree with their counts, figures compared like with like, no rate before a request.
"""

from __future__ import annotations

import io
import logging
import time

import pytest
from rich.console import Console

from stxbf.cli.run import LiveView, progress_line
from stxbf.snapshot import Counters, ProgressSnapshot
from stxbf.words import plural, utc_iso

NOW = 1796055895  # 2026-12-07 14:24:55 UTC


def snapshot(**fields: object) -> ProgressSnapshot:
    base: dict[str, object] = {
        "pid": 1,
        "started_at": time.time() - 60,
        "updated_at": time.time(),
        "phase": "fetching",
        "api_url": "https://api.hiro.so",
        "target_days": 7,
        "range_start": NOW - 7 * 86_400,
        "range_end": NOW,
    }
    return ProgressSnapshot(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("count", "noun", "text"),
    [
        (1, "day", "1 day"),
        (0, "day", "0 days"),
        (2, "page", "2 pages"),
        (1234, "page", "1,234 pages"),
    ],
)
def test_plural_agrees_with_its_count(count: int, noun: str, text: str) -> None:
    assert plural(count, noun) == text


def test_the_runner_pane_stamps_warnings_in_iso_utc() -> None:
    """RichHandler's own stamp was `[12/07/26 14:18:25]`, local and in the locale's order."""
    handler = LiveView().log_handler()
    out = io.StringIO()
    handler.console = Console(file=out, width=200, force_terminal=False)  # type: ignore[attr-defined]
    record = logging.LogRecord("stxbf.runner", logging.WARNING, __file__, 1, "slow API", None, None)
    record.created = NOW
    handler.emit(record)
    line = out.getvalue()
    assert utc_iso(NOW) in line, line
    assert "/" not in line.split("slow API")[0], line  # no 12/07/26


def test_the_cron_line_says_nothing_of_a_rate_before_a_request() -> None:
    line = progress_line(snapshot(rate_rpm=12.0, limit_rpm=50.0, counters=Counters()))
    assert "12/50 req/min" not in line
    assert "rate — (limit 50/min)" in line
    sent = progress_line(snapshot(rate_rpm=12.0, limit_rpm=50.0, counters=Counters(requests=3)))
    assert "12/50 req/min" in sent


def test_the_cron_line_does_not_divide_the_database_by_the_range() -> None:
    """`182,108/42,413 tx` put the whole database over the range's total."""
    line = progress_line(snapshot(transactions_stored=182_108, expected_total=42_413))
    assert "182,108/42,413" not in line
    assert "182,108 tx stored (range ~42,413)" in line


def test_the_cron_line_counts_one_day_and_one_page_in_the_singular() -> None:
    line = progress_line(snapshot(target_days=1, counters=Counters(requests=1, pages=1)))
    assert "0/1 day verified" in line and "· 1 page ·" in line
    assert "1 days" not in line and "1 pages" not in line
