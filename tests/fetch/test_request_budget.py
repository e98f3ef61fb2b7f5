"""The monthly quota planned, not just hit (issue 16): a run says at the start what the range
needs against the quota left, `status` shows the quota a run heard of last, and `--max-requests`
stops a run cleanly (exit 3) with its completed windows committed, never above the budget."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from stxbf.cli.render import render_status
from stxbf.codes import ExitCode
from stxbf.paths import DataPaths
from stxbf.report.status import build_status
from stxbf.runner import Runner
from stxbf.snapshot import read
from stxbf.store import Store
from tests.fakes import FakeChain, params, recent_chain, transport_for

MONTH = 150_000  # Hiro's Starter quota


def quota_transport(chain: FakeChain, sent: list[int], left: int = 120_000) -> httpx.MockTransport:
    """The chain's API with Hiro's monthly quota headers, counting the requests it answers."""
    inner = transport_for(chain)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        response = inner.handle_request(request)
        response.headers["x-ratelimit-limit-stacks-month"] = str(MONTH)
        response.headers["x-ratelimit-remaining-stacks-month"] = str(left - len(sent))
        return response

    return httpx.MockTransport(handler)


def test_max_requests_stops_cleanly_and_the_next_run_completes_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = recent_chain(seed=7)
    sent: list[int] = []
    p = params(tmp_path, max_requests=12)
    with caplog.at_level(logging.INFO):
        report = asyncio.run(Runner(p, transport=quota_transport(chain, sent)).run())
    assert report.exit_code == ExitCode.INCOMPLETE, report.message
    assert report.message.startswith("request budget spent: 12 requests sent (--max-requests 12)")
    assert len(sent) == 12  # never one above the budget
    plans = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: ")]
    assert len(plans) == 1
    assert "the range needs about" in plans[0]
    assert "monthly quota left: " in plans[0]
    assert f"of {MONTH:,}" in plans[0] and "this run may send 12 (--max-requests)" in plans[0]
    with Store.open(p.db_path, read_only=True) as store:
        committed = store.tx_ids()
    assert committed and committed < {row[0] for row in chain.rows}  # some windows, not all

    second = asyncio.run(
        Runner(replace(p, max_requests=None), transport=quota_transport(chain, sent)).run()
    )
    assert second.exit_code == ExitCode.OK, second.message
    with Store.open(p.db_path, read_only=True) as store:
        assert store.tx_ids() == {row[0] for row in chain.rows}
        assert store.summary(wallets=False).transactions == len(chain.rows)  # none twice


def test_status_shows_the_quota_the_last_run_heard_of(tmp_path: Path) -> None:
    chain = recent_chain(seed=8)
    sent: list[int] = []
    p = params(tmp_path)
    report = asyncio.run(Runner(p, transport=quota_transport(chain, sent)).run())
    assert report.exit_code == ExitCode.OK
    snapshot = read(p.paths.progress)
    assert snapshot is not None
    assert snapshot.quota_limit == MONTH and snapshot.quota_remaining == 120_000 - len(sent)
    status = build_status(
        DataPaths.of(p.db_path.parent, p.db_path),
        target_days=3,
    )
    assert status.quota_remaining == 120_000 - len(sent) and status.quota_limit == MONTH
    assert status.to_dict()["quota_remaining"] == 120_000 - len(sent)
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render_status(status, width=120))
    text = out.getvalue()
    assert f"{120_000 - len(sent):,} of {MONTH:,} requests left" in text
