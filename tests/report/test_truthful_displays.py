"""Displays that are true: a last error says how old it is and whether
pages arrived since; no rate or ETA as if running while no progress is made."""

from __future__ import annotations

import io
import re
import time
from dataclasses import replace

import pytest
from rich.console import Console

from stxbf.cli.render import render_dashboard, render_status
from stxbf.cli.run import LiveView, progress_line
from stxbf.snapshot import Counters, ProgressSnapshot
from tests.fakes import running_report

NOW = time.time()


def text_of(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=140, force_terminal=False).print(renderable)
    return out.getvalue()


def monitor_views(report: object) -> dict[str, str]:
    return {
        "status": text_of(render_status(report, width=100, now=NOW)),  # type: ignore[arg-type]
        "dashboard": text_of(
            render_dashboard(
                report,  # type: ignore[arg-type]
                error=None,
                log_lines=[],
                width=100,
                height=40,
                interval=10,
                now=NOW,
            )
        ),
    }


def test_a_recovered_error_says_its_age_and_that_it_recovered() -> None:
    report = replace(
        running_report(10),
        last_error="HTTP 503 from the API",
        last_error_at=NOW - 130,
        last_progress_at=NOW - 5,
    )
    for name, text in monitor_views(report).items():
        assert "HTTP 503 from the API (2m 10s ago, recovered)" in text, name


def test_an_error_without_progress_since_is_not_called_recovered() -> None:
    report = replace(
        running_report(10),
        last_error="HTTP 503 from the API",
        last_error_at=NOW - 5,
        last_progress_at=NOW - 130,
    )
    for name, text in monitor_views(report).items():
        assert "HTTP 503 from the API (5s ago)" in text, name
        assert "recovered" not in text, name


@pytest.mark.parametrize("why", ["backing off", "stalled", "degraded", "rate-limited"])
def test_no_rate_or_eta_while_no_progress_is_made(why: str) -> None:
    report = running_report(10)
    if why != "backing off":
        report = replace(report, state=why.replace("-", "_"), label=why.capitalize())
    else:
        report = replace(report, backoff_until=NOW + 60)
    for name, text in monitor_views(report).items():
        assert "10m 00s" not in text, name  # the ETA of a healthy run
        assert "480 requests/min" not in text, name
        assert f"— ({why})" in text, name


# -- the run's own display (`stxbf run` on a terminal, and the demo's last frame) -------------


def snapshot(**changes: object) -> ProgressSnapshot:
    base = ProgressSnapshot(
        pid=1,
        started_at=NOW - 600,
        updated_at=NOW,
        phase="fetching",
        api_url="http://sim",
        target_days=7,
        range_start=int(NOW) - 7 * 86_400,
        range_end=int(NOW),
        counters=Counters(requests=900, pages=880, errors=3, retries=3),
        transactions_stored=40_000,
        expected_total=80_000,
        rate_rpm=2_900.0,
        limit_rpm=3_000.0,
        eta_seconds=600.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def live_text(snap: ProgressSnapshot) -> str:
    view = LiveView()
    view.update(snap)
    return text_of(view._render())


def test_the_run_panel_says_a_past_error_recovered() -> None:
    now = time.time()  # the panel reads the clock itself
    snap = snapshot(
        last_error="HTTP 500 from the API", last_error_at=now - 65, last_progress_at=now - 1
    )
    assert re.search(r"HTTP 500 from the API \(1m 0\ds ago, recovered\)", live_text(snap))


@pytest.mark.parametrize("phase", ["backing_off", "failed"])
def test_the_run_panel_and_line_show_no_eta_without_progress(phase: str) -> None:
    backoff_until = time.time() + 3600 if phase == "backing_off" else None
    snap = snapshot(phase=phase, backoff_until=backoff_until)
    panel = live_text(snap)
    line = progress_line(snap)
    for text in (panel, line):
        assert "10m 00s" not in text
        assert "2900" not in text.replace(",", "")


def test_the_monitor_and_status_say_which_route_the_run_fetches_from() -> None:
    report = replace(running_report(10), run_source="v3", sources={"v1": 9, "v3": 4})
    for name, text in monitor_views(report).items():
        assert "from v3" in text, name
    idle = replace(running_report(10), run_source=None)
    for name, text in monitor_views(idle).items():
        assert "from v" not in text, name
