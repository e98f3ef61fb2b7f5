"""A backfill against every rate-limit header style an API may answer with.

For each style: no request leaves before a retry-after has passed, at most 1 % of the answers
are 429s, the pacer learns a ceiling just under the tightest window the API states (0.95 of a
second's, 0.985 of a minute's), and the steady rate is never above that window. The steady rate
is also at least 0.8 of it: a wall-clock figure, so only a guard against a wrong window (a
second's limit read as a minute's is 60 times slower); `test_pacer.py` proves with a fake clock
that late sleeps do not slow the pace, and `benchmarks/run.py styles` measures it. The styles
are Hiro's documented set (x-ratelimit-*-stacks-second|minute|month, the generic
ratelimit-limit/-remaining/-reset triple with or without ratelimit-policy, a cost above 1, a
reset sent as a Unix time), served by the simulator with the limits really enforced.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from stxbf.codes import ExitCode
from stxbf.errors import QuotaExhausted
from stxbf.paths import DataPaths
from stxbf.runner import Runner, RunParams, RunReport
from stxbf.simulator import SimConfig
from stxbf.simulator.api import SimApi
from stxbf.simulator.transport import SimTransport

pytestmark = pytest.mark.slow

WARM_UP = 4.0  # seconds at the start left out of the steady rate (the first answers teach it)


class Style(NamedTuple):
    limits: dict[str, Any]
    per_second: float  # the tightest stated window, in requests per second


# Every style runs at once, each against its own simulator, at 8 requests/s: low enough that
# eleven runs on a loaded 2-core machine keep up (what is measured is the pacing, not the CPU),
# and one ~15 s run instead of eleven.
STYLES: dict[str, Style] = {
    "full-minute-second-generic": Style(dict(rate_headers="full", rpm=480, per_second=16), 8),
    "full-generic-is-the-second": Style(
        dict(rate_headers="full", rpm=1200, per_second=8, rate_generic_window="second"), 8
    ),
    "second-only": Style(dict(rate_headers="second", per_second=8), 8),
    "minute-only": Style(dict(rate_headers="minute", rpm=480), 8),
    "generic-minute": Style(dict(rate_headers="generic", rpm=480), 8),
    "generic-second": Style(
        dict(rate_headers="generic", per_second=8, rate_generic_window="second"), 8
    ),
    "generic-policy-minute": Style(dict(rate_headers="generic-policy", rpm=480), 8),
    "generic-policy-second": Style(
        dict(rate_headers="generic-policy", per_second=8, rate_generic_window="second"), 8
    ),
    "cost-2": Style(dict(rate_headers="full", per_second=16, request_cost=2), 8),
    "monthly-quota": Style(dict(rate_headers="full", rpm=480, month_quota=1_000_000), 8),
    "reset-as-unix-time": Style(dict(rate_headers="generic", rpm=480, rate_reset="unix"), 8),
}
RUN_SECONDS = 12  # of requests at the style's rate: the chain is sized for it


class RecordingTransport(SimTransport):
    """The in-process simulator, noting when each request was answered and with what."""

    def __init__(self, api: SimApi) -> None:
        super().__init__(api)
        self.answers: list[tuple[float, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.answers.append((time.monotonic(), response.status_code))
        return response


def run_params(tmp_path: Path, **changes: Any) -> RunParams:
    db = tmp_path / "stxbf.duckdb"
    values: dict[str, Any] = dict(
        api_url="http://127.0.0.1:1",
        api_key=None,
        paths=DataPaths.of(tmp_path, db),
        target_days=2,
        concurrency=16,
        rpm=None,  # learn the rate from the headers, as against the real API
    )
    values.update(changes)
    return RunParams(**values)


def steady_rate(answers: list[tuple[float, int]]) -> float:
    """Requests per second after the warm-up, until the last few windows drain (the last 5 %
    of the requests, when fewer windows are left than requests may be in flight)."""
    first = answers[0][0]
    times = [t for t, _ in answers]
    steady = [t for t in times[: int(len(times) * 0.95)] if t >= first + WARM_UP]
    assert len(steady) > 30, "the run was too short to measure"
    return (len(steady) - 1) / (steady[-1] - steady[0])


class Outcome(NamedTuple):
    report: RunReport
    answers: list[tuple[float, int]]
    stats: dict[str, Any]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """One backfill per style, all at once in one event loop, each with its own simulator."""

    async def one(name: str, style: Style) -> tuple[str, Outcome]:
        tx_per_day = int(style.per_second * RUN_SECONDS * 50 / 2)  # 50 a page, two days
        api = SimApi(SimConfig(days=3, tx_per_day=tx_per_day, latency_ms=15, **style.limits))
        transport = RecordingTransport(api)
        params = run_params(tmp_path_factory.mktemp(name))
        report = await Runner(params, transport=transport).run()
        return name, Outcome(report, transport.answers, api.stats())

    async def every() -> dict[str, Outcome]:
        return dict(await asyncio.gather(*(one(n, s) for n, s in STYLES.items())))

    return asyncio.run(every())


@pytest.mark.parametrize("name", list(STYLES))
def test_each_style_is_paced_at_its_tightest_window(
    outcomes: dict[str, Outcome], name: str
) -> None:
    style, outcome = STYLES[name], outcomes[name]
    assert outcome.report.exit_code == ExitCode.OK, outcome.report.message
    statuses = [status for _, status in outcome.answers]
    assert outcome.stats["early_requests"] == 0, "a request left before a retry-after passed"
    assert statuses.count(429) <= 0.01 * len(statuses), f"{statuses.count(429)} 429s"
    snapshot = outcome.report.snapshot
    assert snapshot is not None and snapshot.limit_rpm is not None
    learned = snapshot.limit_rpm / 60 / style.per_second
    assert 0.94 <= learned <= 0.99, f"paced at {learned:.3f} of the tightest stated window"
    rate = steady_rate(outcome.answers)
    assert rate >= 0.8 * style.per_second, f"{rate:.1f}/s against {style.per_second}/s stated"
    assert rate <= 1.01 * style.per_second


def test_a_monthly_quota_that_runs_out_ends_the_run_with_its_code(tmp_path: Path) -> None:
    api = SimApi(
        SimConfig(days=3, tx_per_day=6000, rate_headers="full", per_second=50, month_quota=40)
    )
    # it stops at once: a run that waited for the month's reset would end only at the timeout
    with pytest.raises(QuotaExhausted) as caught:
        asyncio.run(Runner(run_params(tmp_path), transport=SimTransport(api)).run())
    assert caught.value.exit_code == ExitCode.RATE_LIMITED
    assert "monthly request quota" in caught.value.message
    assert "resets at" in caught.value.message
    assert api.stats()["early_requests"] == 0
