"""The runner's source seam: v1, v3, and `auto` switching from one to the other in a run.

In-process against the simulator (its httpx transport, no sleeping): each test compares the
stored tx_ids with the simulator's canonical set, and the windows' `source` with the route used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from stxbf.codes import ExitCode
from stxbf.errors import ApiGone, ApiUnreachable, QuotaExhausted
from stxbf.fetch.client import ApiClient
from stxbf.fetch.pacer import Pacer
from stxbf.fetch.pages import PageSource
from stxbf.runner import Runner, RunReport
from stxbf.simulator import SimApi, SimConfig
from stxbf.simulator.transport import SimTransport
from stxbf.snapshot import read
from stxbf.store import Store
from tests.fakes import params

HOUR = 3600
TARGET_DAYS = 2


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stxbf.fetch.pages._backoff", lambda state: 0.0)


def make_api(
    *, seed: int, v1: str = "on", days: float = TARGET_DAYS + 1, **config: object
) -> SimApi:
    """A chain longer than the target (no chain-start warning), whose head is an hour old."""
    end = time.time() - HOUR
    return SimApi(SimConfig(seed=seed, days=days, tx_per_day=750, end_time=end, v1=v1, **config))  # type: ignore[arg-type]


class SwitchOff(SimTransport):
    """Switches v1 to 410 after `after` requests to it: the operator's switch, mid-run."""

    def __init__(self, api: SimApi, after: int) -> None:
        super().__init__(api, sleep=False)
        self.api, self.after, self.v1_requests, self.v3_requests = api, after, 0, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/extended/v1/tx":
            self.v1_requests += 1
            if self.v1_requests == self.after:
                self.api.set_v1("gone")
        elif request.url.path == "/extended/v3/transactions":
            self.v3_requests += 1
        return await super().handle_async_request(request)


def run(home: Path, transport: httpx.AsyncBaseTransport, **kwargs: object) -> RunReport:
    p = params(home, target_days=TARGET_DAYS, **kwargs)
    return asyncio.run(Runner(p, transport=transport).run())


def stored(home: Path) -> tuple[set[str], int, int]:
    """(tx_ids, rows, the range's start) of the database."""
    with Store.open(home / "data" / "stxbf.duckdb", read_only=True) as store:
        rows = store._con.execute("SELECT count(*) FROM transactions").fetchone()
        start = int(store.get_meta("range_start") or 0)
        return store.tx_ids(), int(rows[0]) if rows else 0, start


def assert_exact(api: SimApi, home: Path) -> None:
    ids, rows, start = stored(home)
    assert rows == len(ids), "a transaction is stored twice"
    assert ids == set(api.chain.tx_ids(start, None))


def window_sources(home: Path) -> dict[str, int]:
    with Store.open(home / "data" / "stxbf.duckdb", read_only=True) as store:
        return store.window_sources()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_backfill_entirely_on_v3_is_exact(tmp_path: Path) -> None:
    api = make_api(seed=31, v1="gone")
    transport = SwitchOff(api, after=0)
    report = run(tmp_path, transport, source="v3")
    assert report.exit_code == ExitCode.OK, report.message
    assert_exact(api, tmp_path)
    assert transport.v1_requests == 0 and transport.v3_requests > 0
    assert set(window_sources(tmp_path)) == {"v3"}
    snapshot = read(tmp_path / "data" / "stxbf.duckdb.progress.json")
    assert snapshot is not None and snapshot.source == "v3"
    assert snapshot.window_sources == window_sources(tmp_path)


def test_auto_starts_on_v3_when_v1_answers_410_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stxbf")
    api = make_api(seed=32, v1="gone")
    report = run(tmp_path, SwitchOff(api, after=0))
    assert report.exit_code == ExitCode.OK, report.message
    assert_exact(api, tmp_path)
    (warning,) = warnings(caplog)
    assert "410" in warning and "/extended/v3/transactions" in warning
    assert set(window_sources(tmp_path)) == {"v3"}


def test_v1_switched_off_mid_run_finishes_on_v3_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stxbf")
    api = make_api(seed=33)
    transport = SwitchOff(api, after=20)
    report = run(tmp_path, transport, concurrency=2)
    assert report.exit_code == ExitCode.OK, report.message
    assert_exact(api, tmp_path)
    assert transport.v1_requests >= 20 and transport.v3_requests > 0
    assert set(window_sources(tmp_path)) == {"v1", "v3"}  # the v1 windows stayed committed
    (warning,) = warnings(caplog)
    assert "410" in warning and "switching" in warning
    passes = [r.getMessage() for r in caplog.records if " to fetch in " in r.getMessage()]
    assert "from v1" in passes[0] and "from v3" in passes[-1]


def test_a_missing_v1_route_switches_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An API without the v1 routes answers 404 there (Fastify's not-found handler)."""
    api = make_api(seed=34)

    class NoV1(SimTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/extended/v1/tx":
                return httpx.Response(404, json={"error": "Not Found", "statusCode": 404})
            return await super().handle_async_request(request)

    report = run(tmp_path, NoV1(api, sleep=False))
    assert report.exit_code == ExitCode.OK, report.message
    assert_exact(api, tmp_path)
    (warning,) = warnings(caplog)
    assert "404" in warning


def test_source_v1_with_v1_gone_is_the_410_error(tmp_path: Path) -> None:
    api = make_api(seed=35, v1="gone")
    with pytest.raises(ApiGone) as raised:
        run(tmp_path, SwitchOff(api, after=0), source="v1")
    assert raised.value.exit_code == ExitCode.ERROR
    assert "410" in raised.value.message


@pytest.mark.slow  # two whole runs, one on each route
def test_a_database_filled_on_v1_continues_on_v3_without_refetching(tmp_path: Path) -> None:
    api = make_api(seed=36)
    first = SwitchOff(api, after=0)
    assert run(tmp_path, first, source="v1").exit_code == ExitCode.OK
    with Store.open(tmp_path / "data" / "stxbf.duckdb", read_only=True) as store:
        before = {(w.start_time, w.end_time): w for w in store.windows(state="verified")}
    api.set_v1("gone")
    report = run(tmp_path, SwitchOff(api, after=0))
    assert report.exit_code == ExitCode.OK and report.snapshot is not None
    assert_exact(api, tmp_path)
    with Store.open(tmp_path / "data" / "stxbf.duckdb", read_only=True) as store:
        after = {(w.start_time, w.end_time): w for w in store.windows(state="verified")}
        on_v3 = [w for w in store.windows() if w.source == "v3"]
    # every verified v1 window stays as it was (same checkpoint, same fetch): not fetched again
    assert all(after[span].source == "v1" for span in before)
    assert all(after[span].checked_at == before[span].checked_at for span in before)
    # only what the first run left open (the settle period, the head) was fetched, on v3
    assert on_v3 and any(w.state == "open" for w in on_v3)
    assert not [w for w in on_v3 for a, b in before if w.start_time <= b and w.end_time >= a]
    assert report.snapshot.counters.transactions_fetched == sum(w.rows_stored for w in on_v3)


@pytest.mark.slow  # waits out real retry backoffs: ~6 s
def test_faults_on_v3_are_retried_and_the_backfill_stays_exact(tmp_path: Path) -> None:
    api = make_api(seed=37, v1="gone", fault_rate=0.1)
    report = run(tmp_path, SwitchOff(api, after=0), source="v3")
    assert report.exit_code == ExitCode.OK, report.message
    assert_exact(api, tmp_path)
    assert sum(api.faults.values()) > 5


def test_growth_at_the_head_during_a_v3_run(tmp_path: Path) -> None:
    """The chain grows while the run walks: every verified window is exact, the head is open."""
    api = make_api(seed=38, v1="gone", growth=2.0)
    before = len(api.chain)

    class Growing(SwitchOff):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            api.advance(5.0)  # the chain moves on while the walks run
            return await super().handle_async_request(request)

    transport = Growing(api, after=0)
    report = run(tmp_path, transport, source="v3")
    assert report.exit_code == ExitCode.OK, report.message
    assert len(api.chain) > before  # it did grow
    with Store.open(tmp_path / "data" / "stxbf.duckdb", read_only=True) as store:
        verified = store.windows(state="verified")
        assert verified
        for window in verified:
            got = store.tx_ids(window.start_time, window.end_time)
            assert got == set(api.chain.tx_ids(window.start_time, window.end_time))


@pytest.mark.slow  # a whole run, then a verify
def test_verify_on_v3_recounts_by_burn_blocks_and_refetches_a_damaged_window(
    tmp_path: Path,
) -> None:
    api = make_api(seed=39, v1="gone")
    assert run(tmp_path, SwitchOff(api, after=0), source="v3").exit_code == ExitCode.OK
    db = tmp_path / "data" / "stxbf.duckdb"
    with Store.open(db) as store:  # a window loses one row behind stxbf's back
        (lost,) = store._con.execute(
            "SELECT tx_id FROM transactions ORDER BY burn_block_time LIMIT 1"
        ).fetchone() or (None,)
        store._con.execute("DELETE FROM transactions WHERE tx_id = ?", [lost])
    p = params(tmp_path, target_days=TARGET_DAYS, source="auto")
    transport = SwitchOff(api, after=0)
    report = asyncio.run(Runner(p, transport=transport).verify())
    assert report.exit_code == 0, report.message
    assert report.windows_changed == 1 and report.rows_added == 1
    assert transport.v1_requests <= 4  # the 410s of the first requests in flight, then v3
    assert_exact(api, tmp_path)


# -- one request path: the v1 page and the v3/v2 GETs obey the same rules ----------------------

BURN_PAGE = {"limit": 1, "offset": 0, "total": 0, "results": []}
V1_PAGE = {"limit": 1, "offset": 0, "total": 0, "results": []}


def request_kinds() -> dict[str, Callable[[PageSource, int | None], Awaitable[object]]]:
    from stxbf.fetch.v3 import BURN_BLOCKS_PATH
    from stxbf.models_v3 import parse_burn_block_page

    def v1_page(source: PageSource, attempts: int | None) -> Awaitable[object]:
        return source.page(start_time=1, end_time=5, limit=1, connect_attempts=attempts)

    def v3_get(source: PageSource, attempts: int | None) -> Awaitable[object]:
        return source.fetch(
            BURN_BLOCKS_PATH, {"limit": 1}, parse_burn_block_page, connect_attempts=attempts
        )

    return {"v1-page": v1_page, "v2-burn-blocks": v3_get}


def over(handle: Callable[[httpx.Request], httpx.Response], give_up_after: float) -> PageSource:
    client = ApiClient("https://api.example", transport=httpx.MockTransport(handle))
    source = PageSource(client, Pacer(rpm=1_000_000), give_up_after=give_up_after)
    source._wait = lambda state: 0.0  # type: ignore[method-assign]
    return source


@pytest.mark.parametrize("kind", ["v1-page", "v2-burn-blocks"])
def test_a_quota_429_stops_at_once_on_either_route(kind: str) -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(429, headers={"retry-after": "3600"})

    source = over(handle, give_up_after=60)
    with pytest.raises(QuotaExhausted) as caught:
        asyncio.run(request_kinds()[kind](source, None))  # type: ignore[arg-type]
    assert len(calls) == 1 and caught.value.quota == "retry-after"
    assert source.stats.responses_429 == 1


@pytest.mark.parametrize("kind", ["v1-page", "v2-burn-blocks"])
def test_first_contact_without_an_answer_fails_fast_on_either_route(kind: str) -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ReadTimeout("no answer")

    with pytest.raises(ApiUnreachable) as caught:
        asyncio.run(request_kinds()[kind](over(handle, give_up_after=30), 3))  # type: ignore[arg-type]
    assert len(calls) == 3
    assert caught.value.hint is not None and "proxy" in caught.value.hint


@pytest.mark.parametrize("kind", ["v1-page", "v2-burn-blocks"])
def test_a_5xx_is_retried_and_counted_alike_on_either_route(kind: str) -> None:
    answers = [httpx.Response(503), httpx.Response(200, json=BURN_PAGE)]

    def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    source = over(handle, give_up_after=30)
    asyncio.run(request_kinds()[kind](source, None))  # type: ignore[arg-type]
    assert (source.stats.requests, source.stats.retries, source.stats.errors) == (2, 1, 1)
    assert source.stats.pages == 1 and source.in_flight == 0
