"""A backfill run: the only place where fetching and storing meet.

    lock → open store → read every block (damage stops the run) → preflight (chain start,
         expected total) → passes of the engine
         → each completed window committed (rows + checkpoint, one transaction)
         → (--verify) re-count every verified window, fetch again those that changed
         → progress snapshot published every second → exit code

Windows whose end lies within the settle period (`settle_hours`) of the range's end are stored
`open` and fetched again by every run: since Nakamoto a block's burn_block_time is its tenure's
first Bitcoin block time, an extended tenure keeps that time for hours, Bitcoin timestamps are not
monotonic, and a Bitcoin reorg makes Stacks blocks non-canonical (the API's lists and totals then
drop their transactions: stacks-blockchain-api src/datastore/pg-store.ts getTxList counts
`canonical = true` rows only). Older windows are re-counted by `stxbf verify` (`Runner.verify`).

The engine works on the event loop; DuckDB writes run on one dedicated thread so a commit never
stalls the requests in flight. Memory stays flat: at most a few windows are open, and at most two
completed windows wait for their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from stxbf.errors import (
    ApiGone,
    ApiNotStacks,
    ApiRejected,
    DatabaseBusy,
    DatabaseCorrupt,
    ExitCode,
    LockHeld,
    QuotaExhausted,
    StoreError,
    StxbfError,
)
from stxbf.fetch.client import TX_LIST_PATH, ApiClient
from stxbf.fetch.engine import Engine
from stxbf.fetch.pacer import HIRO_RPM_WITH_KEY, HIRO_RPM_WITHOUT_KEY, Pacer
from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.fetch.v3 import BURN_BLOCKS_PATH, V3_TX_PATH, V3Engine, V3Source
from stxbf.fetch.windows import MAX_SPAN, CompletedWindow, PassResult
from stxbf.models import BURN_TIME_INDEX, PAGE_LIMIT
from stxbf.models_v3 import parse_burn_block_page
from stxbf.paths import read_runner_record, remove_record, this_runner, write_runner_record
from stxbf.state import DAY, Counters, ProgressSnapshot, day_coverage, publish
from stxbf.store import Store, WindowCheck, WindowRecord
from stxbf.store.db import damaged_hint

log = logging.getLogger(__name__)

T = TypeVar("T")

HEAD_SETTLE_SECONDS = 2 * 3600  # a tenure can keep adding blocks under one burn time this long
PUBLISH_INTERVAL = 1.0
WALLETS_INTERVAL = 30.0


@dataclass(frozen=True)
class RunParams:
    api_url: str
    api_key: str | None
    db_path: Path
    lock_path: Path
    progress_path: Path
    runner_path: Path
    target_days: int = 365
    max_pages: int = 5000
    max_iterations: int = 0
    concurrency: int = 16
    rpm: float | None = None
    request_timeout: float = 20.0
    give_up_after: float = 600.0
    restarts: int = 0  # times a supervisor started this run again (published in the snapshot)
    settle_hours: float = 24.0
    verify: bool = False
    source: str = "auto"  # auto | v1 | v3 (see `Runner._may_switch`)


ROUTES = {"v1": TX_LIST_PATH, "v3": V3_TX_PATH}
# V3Source: cursor walks in flight per window (V3Engine prepares the next window meanwhile)
V3_WALKS_PER_WINDOW = 8


@dataclass
class ChangedWindow:
    """A verified window whose API answer no longer matches what is stored."""

    start_time: int
    end_time: int
    api_total: int  # the API's total now
    rows_stored: int  # before it was fetched again
    reason: str


@dataclass
class VerifyReport:
    """What `stxbf verify` (or `stxbf run --verify`) found and did."""

    windows_checked: int = 0
    windows_changed: int = 0
    windows_incomplete: int = 0  # changed, but fetching them again did not settle them
    rows_added: int = 0
    rows_removed: int = 0
    requests: int = 0
    changed: list[ChangedWindow] = field(default_factory=list)
    damaged_tables: list[str] = field(default_factory=list)
    damaged_windows: list[tuple[int, int]] = field(default_factory=list)
    exit_code: int = 0
    message: str = ""


@dataclass
class RunReport:
    exit_code: ExitCode
    message: str
    snapshot: ProgressSnapshot | None = None
    verification: VerifyReport | None = None


class ProgressView(Protocol):
    """Where the live snapshot goes besides the progress file (a terminal display, or nothing)."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...


@contextlib.contextmanager
def run_lock(lock_path: Path, runner_path: Path, db_path: Path) -> Iterator[None]:
    """Hold the one-writer lock; a second run fails at once, naming the holder's pid."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = FileLock(str(lock_path), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = read_runner_pid(runner_path)
        holder = f" (pid {pid})" if pid else ""
        raise LockHeld(
            f"another stxbf run{holder} is already backfilling into {db_path}; "
            "watch it with `stxbf status`",
            pid=pid,
        ) from None
    try:
        write_runner_record(runner_path, this_runner(socket.gethostname()))
        yield
    finally:
        remove_record(runner_path)
        lock.release()


def read_runner_pid(runner_path: Path) -> int | None:
    record = read_runner_record(runner_path)
    return record.pid if record is not None else None


def gaps_between(
    range_start: int, range_end: int, covered: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The parts of [range_start, range_end] not inside any covered (inclusive) interval."""
    gaps: list[tuple[int, int]] = []
    cursor = range_start
    for start, end in sorted(covered):
        if end < cursor:
            continue
        if start > range_end:
            break
        if start > cursor:
            gaps.append((cursor, min(start - 1, range_end)))
        cursor = max(cursor, end + 1)
    if cursor <= range_end:
        gaps.append((cursor, range_end))
    return gaps


class Runner:
    def __init__(
        self,
        params: RunParams,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        view: ProgressView | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.transport = transport
        self.view = view
        self.clock = clock
        self.started_at = clock()
        self.stats = FetchStats()
        self.counters = Counters()
        self.phase = "starting"
        self.iteration = 0
        self.range_start = self.range_end = int(clock())
        self.chain_start: int | None = None
        self.expected_total: int | None = None
        self.covered: list[tuple[int, int, int]] = []  # (start, end, api_total) verified or open
        self.transactions_stored = 0
        self.wallets: int | None = None
        self.earliest: int | None = None
        self.latest: int | None = None
        self.db_bytes = 0
        self.last_commit_at: float | None = None
        self.quota: QuotaExhausted | None = None  # the quota that ended the run, if one did
        self._quota_warned = False
        self.exit_code: ExitCode | None = None
        self._engine: Engine | V3Engine | None = None
        self._pacer: Pacer | None = None
        self._stop_requested = False
        self.run_id: int | None = None  # set once the preflight passed and the run is recorded
        self._audited = False  # the duplicate audit runs once per run
        self._verified = False  # `--verify` re-counts once per run
        self.verification: VerifyReport | None = None
        self._main: asyncio.Task[Any] | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stxbf-db")
        self._store: Store | None = None
        self._source: PageSource | None = None  # the one request path of both sources
        self._v3: V3Source | None = None
        self.source_name: str | None = None  # the route fetched from now: v1 | v3
        self.window_sources: dict[str, int] = {}  # committed windows by route (the database's)

    # -- control -----------------------------------------------------------------------------

    def request_stop(self, reason: str = "signal") -> None:
        """Stop scheduling, commit what is complete, and return INTERRUPTED (signal-safe)."""
        if self._stop_requested:
            return
        self._stop_requested = True
        log.warning("stopping (%s): committing completed windows", reason)
        if self._engine is not None:
            self._engine.stop()
        elif self._main is not None:
            self._main.cancel()

    async def run(self) -> RunReport:
        p = self.params
        with run_lock(p.lock_path, p.runner_path, p.db_path):
            self._store = await self._on_db(_open_store, p.db_path)
            try:
                self._main = asyncio.current_task()
                return await self._run_locked()
            finally:
                await self._on_db(self._close_store)
                self._db.shutdown(wait=True)

    def _close_store(self) -> None:
        if self._store is not None:
            if self.run_id is not None:  # nothing was written otherwise: leave the file as it was
                self._store.checkpoint()
            self._store.close()

    async def _on_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # -- the run -----------------------------------------------------------------------------

    async def _run_locked(self) -> RunReport:
        store = self._store
        assert store is not None
        await self._refuse_damaged_file()
        await self._load_store_figures()
        source = self._open_requests()
        client = source.client
        publisher = asyncio.create_task(self._publish_loop())
        report: RunReport
        try:
            report = await self._passes(source)
        except asyncio.CancelledError:
            report = RunReport(ExitCode.INTERRUPTED, "interrupted before the backfill started")
        except StxbfError as exc:
            self.stats.last_error = exc.message
            self.stats.last_error_at = self.clock()
            self.phase = "failed"
            if isinstance(exc, QuotaExhausted):
                self.quota = exc
            self.exit_code = exc.exit_code
            await self._finish(publisher, client)
            raise
        self.exit_code = report.exit_code
        self.phase = {
            ExitCode.OK: "finished",
            ExitCode.INTERRUPTED: "interrupted",
        }.get(report.exit_code, "stopped")
        await self._finish(publisher, client)
        report.snapshot = self.snapshot()
        return report

    async def _finish(self, publisher: asyncio.Task[None], client: ApiClient) -> None:
        if self._source is not None:  # retries still being counted are logged before the end
            self._source.flush_retry_log()
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await client.aclose()
        store = self._store
        assert store is not None
        run_id = self.run_id
        if run_id is None:  # the API failed before anything was written: the file is untouched
            self._publish()
            return
        with contextlib.suppress(Exception):  # the error that ended the run stays the one
            await self._refresh_summary(wallets=True, save=True)
        with contextlib.suppress(Exception):
            await self._on_db(
                lambda: store.end_run(
                    run_id,
                    ended_at=self.clock(),
                    range_start=self.range_start,
                    range_end=self.range_end,
                    requests=self.stats.requests,
                    pages=self.stats.pages,
                    transactions_fetched=self.stats.transactions,
                    exit_code=int(self.exit_code if self.exit_code is not None else 1),
                )
            )
        self._publish()

    async def _passes(self, source: PageSource) -> RunReport:
        p = self.params
        store = self._store
        assert store is not None
        self.source_name = "v3" if p.source == "v3" else "v1"
        log.info(
            "source: %s (%s), setting %s", self.source_name, ROUTES[self.source_name], p.source
        )
        await self._preflight(source)
        self._warn_if_quota_short()
        self.run_id = await self._on_db(
            lambda: store.start_run(
                pid=os.getpid(),
                started_at=self.started_at,
                api_url=p.api_url,
                target_days=p.target_days,
            )
        )
        if self.chain_start is not None:
            await self._record_before_chain_start()
        commits: asyncio.Queue[tuple[CompletedWindow, str] | None] = asyncio.Queue(maxsize=2)
        committer = asyncio.create_task(self._commit_loop(commits))

        def on_window_from(route: str) -> Callable[[CompletedWindow], Awaitable[None]]:
            async def on_window(window: CompletedWindow) -> None:
                # Wait for room in the queue, unless the committer dies meanwhile (a full
                # disk): then its error ends the pass instead of a wait that never ends.
                put = asyncio.ensure_future(commits.put((window, route)))
                await asyncio.wait([put, committer], return_when=asyncio.FIRST_COMPLETED)
                if committer.done():
                    put.cancel()
                    committer.result()
                    raise StoreError("the database writer stopped")  # pragma: no cover

            return on_window

        assert self.source_name is not None
        self._engine = self._new_engine(on_window_from(self.source_name))
        self.phase = "fetching"
        try:
            while True:
                self.iteration += 1
                self._plan_range()
                await self._on_db(self._save_range)
                gaps = gaps_between(self._effective_start(), self.range_end, self._covered_spans())
                if not gaps:
                    if await self._refetch_duplicated():
                        continue
                    return await self._verify_then_reach(source)
                log.info(
                    "iteration %d: %d gap(s) to fetch in %s .. %s from %s (%s)",
                    self.iteration,
                    len(gaps),
                    _iso(gaps[0][0]),
                    _iso(gaps[-1][1]),
                    self.source_name,
                    ROUTES[self.source_name],
                )
                try:
                    result = await self._engine.run_pass(
                        gaps,
                        head_start=self.range_end - HEAD_SETTLE_SECONDS + 1,
                        page_budget=p.max_pages,
                        settle_start=self._settle_start(),
                    )
                except (ApiGone, ApiNotStacks) as exc:
                    if not self._may_switch(exc):
                        raise
                    # the windows completed so far are committed; the gaps are planned again
                    # from the checkpoints, so no verified window is fetched twice
                    await _drain(commits, committer)
                    self._switch_to_v3(exc)
                    self._engine = self._new_engine(on_window_from(self.source_name))
                    continue
                await _drain(commits, committer)
                self._log_pass(result)
                if result.stopped:
                    return RunReport(
                        ExitCode.INTERRUPTED,
                        "interrupted: completed windows are committed; `stxbf run` resumes",
                    )
                if result.finished:
                    if await self._refetch_duplicated():
                        continue
                    return await self._verify_then_reach(source)
                if p.max_iterations and self.iteration >= p.max_iterations:
                    return RunReport(
                        ExitCode.INCOMPLETE,
                        f"stopped after {self.iteration} iteration(s) before the target; "
                        "run again to continue",
                    )
                if result.windows_verified + result.windows_settling == 0:
                    # the head window alone is no progress
                    return RunReport(
                        ExitCode.INCOMPLETE,
                        "no window could be verified in this iteration; run again later",
                    )
        finally:
            if not committer.done():
                await commits.put(None)
            with contextlib.suppress(asyncio.CancelledError, StxbfError):
                await committer

    # -- the source seam ---------------------------------------------------------------------

    def _open_requests(self) -> PageSource:
        """The run's one request path: the pacer (the API's stated rate, or `--rpm`), the
        client and the retrying page source every route goes through."""
        p = self.params
        rpm = p.rpm or (HIRO_RPM_WITH_KEY if p.api_key else HIRO_RPM_WITHOUT_KEY)
        self._pacer = Pacer(rpm=rpm, fixed=p.rpm is not None)
        client = ApiClient(
            p.api_url,
            api_key=p.api_key,
            timeout=p.request_timeout,
            max_connections=p.concurrency,
            transport=self.transport,
        )
        self._source = PageSource(
            client, self._pacer, give_up_after=p.give_up_after, stats=self.stats
        )
        return self._source

    def _new_engine(
        self, on_window: Callable[[CompletedWindow], Awaitable[None]]
    ) -> Engine | V3Engine:
        """The current source's engine: both take gaps and hand back `CompletedWindow`s that
        are committed alike, so planning, checkpoints and commits do not know the route."""
        assert self._source is not None
        engine: Engine | V3Engine
        if self.source_name == "v3":
            engine = V3Engine(self._v3_source(), on_window=on_window)
        else:
            engine = Engine(self._source, concurrency=self.params.concurrency, on_window=on_window)
        if self._stop_requested:
            engine.stop()
        return engine

    def _v3_source(self) -> V3Source:
        """The v3 source, on the same request path (pacer, retries, quota, counters) as v1."""
        if self._v3 is None:
            assert self._source is not None
            self._v3 = V3Source(
                self._source.client,
                self._source.pacer,
                give_up_after=self.params.give_up_after,
                concurrency=min(V3_WALKS_PER_WINDOW, self.params.concurrency),
                stats=self.stats,
                requests=self._source,
            )
        return self._v3

    def _may_switch(self, exc: BaseException) -> bool:
        """`auto` leaves v1 for good when its route is switched off (410, the deprecation
        plugin of stacks-blockchain-api src/api/deprecation-plugin.ts) or missing (a 404 on
        /extended/v1/tx: an API without the v1 routes)."""
        if self.params.source != "auto" or self.source_name != "v1":
            return False
        if isinstance(exc, ApiGone):
            return True
        return isinstance(exc, ApiNotStacks) and exc.missing_route == TX_LIST_PATH

    def _switch_to_v3(self, exc: StxbfError) -> None:
        why = (
            "answered 410 Gone (switched off)"
            if isinstance(exc, ApiGone)
            else "answered 404 (the route does not exist)"
        )
        log.warning(
            "%s %s: switching to %s for the rest of this run; committed windows stay, the gaps "
            "are planned again from the checkpoints",
            TX_LIST_PATH,
            why,
            V3_TX_PATH,
        )
        self.source_name = "v3"

    async def _refetch_duplicated(self) -> bool:
        """Once a run, before it reports the target reached: windows that share a tx_id with
        another (see `Store.duplicated_windows`) lose their checkpoint and are fetched again."""
        if self._audited:
            return False
        self._audited = True
        store = self._store
        assert store is not None
        spans = await self._on_db(store.duplicated_windows)
        if not spans:
            return False
        log.warning(
            "%d window(s) hold transactions also stored in another window (moved by the API "
            "since they were fetched): fetching them again",
            len(spans),
        )
        await self._on_db(store.forget_windows, spans)
        forgotten = set(spans)
        self.covered = [span for span in self.covered if (span[0], span[1]) not in forgotten]
        return True

    def _settle_start(self) -> int | None:
        """Windows ending at or after this time stay `open` (fetched again by the next run)."""
        settle = int(self.params.settle_hours * 3600)
        return self.range_end - settle + 1 if settle > 0 else None

    async def _verify_then_reach(self, source: PageSource) -> RunReport:
        p = self.params
        if p.verify and not self._verified:
            self._verified = True
            report = await self._verify_windows(source)
            self.verification = report
            if report.exit_code == ExitCode.INTERRUPTED:
                return RunReport(ExitCode.INTERRUPTED, report.message, verification=report)
            if report.windows_incomplete:
                return RunReport(
                    ExitCode.INCOMPLETE,
                    f"{report.message}; run again to settle them",
                    verification=report,
                )
            reached = self._reached()
            reached.message = f"{reached.message}; {report.message}"
            reached.verification = report
            return reached
        return self._reached()

    def _reached(self) -> RunReport:
        if self.chain_start is not None:
            return RunReport(
                ExitCode.OK,
                f"target reached at the chain's start ({_iso(self.chain_start)}): "
                "the API has no older transactions",
            )
        return RunReport(ExitCode.OK, f"target reached: {self.params.target_days} days verified")

    def _plan_range(self) -> None:
        self.range_end = int(self.clock())
        self.range_start = self.range_end - self.params.target_days * DAY + 1

    def _effective_start(self) -> int:
        if self.chain_start is not None and self.chain_start > self.range_start:
            return self.chain_start
        return self.range_start

    def _covered_spans(self) -> list[tuple[int, int]]:
        return [(start, end) for start, end, _ in self.covered]

    def _save_range(self) -> None:
        store = self._store
        assert store is not None
        store.set_meta("range_start", self.range_start)
        store.set_meta("range_end", self.range_end)
        store.set_meta("target_days", self.params.target_days)
        store.set_meta("api_url", self.params.api_url)
        store.set_meta("chain_start", self.chain_start)
        store.set_meta("expected_total", self.expected_total)

    async def _preflight(self, source: PageSource) -> None:
        """Where the chain's history begins, and (v1) how much the range holds."""
        self._plan_range()
        if self.source_name == "v1":
            try:
                await self._preflight_v1(source)
                return
            except (ApiGone, ApiNotStacks) as exc:
                if not self._may_switch(exc):
                    raise
                self._switch_to_v3(exc)
        await self._preflight_v3(source)

    async def _preflight_v3(self, source: PageSource) -> None:
        """The chain's start from the bottom of the burn-block list (no v1 needed).

        The range's total stays unknown (no ETA): v3's `total` is the chain's, and summing the
        burn blocks' `total_tx_count` over a year would take ~1,750 requests before the first
        window; each window is still proven by its own count.
        """
        # The first contact, with v1's fail-fast rule: a wrong URL ends the run in seconds.
        await source.fetch(
            BURN_BLOCKS_PATH,
            {"limit": 1},
            parse_burn_block_page,
            give_up_after=self.params.give_up_after,
            connect_attempts=3,
        )
        first = await self._v3_source().oldest_transaction_time()
        if first is None:
            log.warning("the API reports no transactions at all")
            first = self.range_end + 1
        if first > self.range_start:
            self.chain_start = first
            log.warning(
                "the chain's history begins at %s: no data older than that, so the target "
                "is reached at the chain's start",
                _iso(first),
            )
        log.info(
            "range %s .. %s: its total is not asked up front on v3 (each window is proven by "
            "the burn blocks' counts)",
            _iso(self.range_start),
            _iso(self.range_end),
        )

    async def _preflight_v1(self, source: PageSource) -> None:
        """Two one-row requests: where the chain's history begins, and how much the range holds."""
        first = await self._oldest_transaction_time(source)
        if first is not None and first > self.range_start:
            self.chain_start = first
            log.warning(
                "the chain's history begins at %s: no data older than that, so the target "
                "is reached at the chain's start",
                _iso(first),
            )
        sized = await source.page(
            start_time=self._effective_start(),
            end_time=self.range_end,
            limit=1,
            give_up_after=self.params.give_up_after,
        )
        self.expected_total = sized.total
        log.info(
            "range %s .. %s holds %d transactions (API total)",
            _iso(self.range_start),
            _iso(self.range_end),
            sized.total,
        )

    async def _oldest_transaction_time(self, source: PageSource) -> int | None:
        """burn_block_time of the API's oldest transaction (past the range's end if it has none).

        This first request also proves the API answers: nothing listening fails fast here.
        """
        try:
            oldest = await source.page(
                start_time=None,
                end_time=None,
                limit=1,
                order="asc",
                sort_by="burn_block_time",
                give_up_after=self.params.give_up_after,
                connect_attempts=3,
            )
        except ApiRejected as exc:
            if exc.status != 400:
                raise
            # Only naming the chain's start depends on this query: windows before the chain's
            # first transaction verify as empty all the same.
            log.warning("the API cannot list its oldest transaction (%s); going on", exc.message)
            return None
        if not oldest.rows:
            log.warning("the API reports no transactions at all")
            return self.range_end + 1
        first = int(oldest.rows[0][BURN_TIME_INDEX])
        if first > self.range_start:
            # Trust, but count: nothing may exist between the range's start and that row, or the
            # API did not sort as asked and there is no chain start inside the range.
            before = await source.page(
                start_time=self.range_start, end_time=first - 1, limit=1, give_up_after=None
            )
            if before.total:
                log.warning("the API's oldest-first answer is not the oldest; not a chain start")
                return None
        return first

    async def _record_before_chain_start(self) -> None:
        """The stretch before the chain's first transaction is empty, and provably so."""
        assert self.chain_start is not None
        start, end = self.range_start, min(self.chain_start - 1, self.range_end)
        if start > end or not gaps_between(start, end, self._covered_spans()):
            return
        record = WindowRecord(start, end, 0, 0, "verified", 0, source=self.source_name or "v1")
        store = self._store
        assert store is not None
        await self._on_db(store.commit_window, record, [])
        self.covered.append((start, end, 0))

    # -- verification ------------------------------------------------------------------------

    async def verify(self) -> VerifyReport:
        """`stxbf verify`: read every stored block, then re-count every verified window.

        Holds the run lock (it rewrites the windows that changed). A damaged file is reported,
        with the windows to fetch again, and nothing is requested.
        """
        p = self.params
        if not p.db_path.is_file():
            raise StoreError(f"no database at {p.db_path} yet (no backfill has run)")
        with run_lock(p.lock_path, p.runner_path, p.db_path):
            self._store = await self._on_db(_open_store, p.db_path)
            client: ApiClient | None = None
            damage: VerifyReport | None = None
            try:
                self._main = asyncio.current_task()
                damage = await self._on_db(self._find_damage)
                if damage is not None:
                    return damage
                source = self._open_requests()
                client = source.client
                self.source_name = "v3" if p.source == "v3" else "v1"
                try:
                    return await self._verify_windows(source)
                except asyncio.CancelledError:
                    report = VerifyReport(exit_code=int(ExitCode.INTERRUPTED))
                    report.message = "interrupted: windows re-fetched so far are committed"
                    return report
            finally:
                if client is not None:
                    await client.aclose()
                await self._on_db(self._close_verified_store, damage is None)
                self._db.shutdown(wait=True)

    def _close_verified_store(self, intact: bool) -> None:
        if self._store is not None:
            if intact:  # a damaged file is left exactly as it was found
                self._store.checkpoint()
            self._store.close()

    def _find_damage(self) -> VerifyReport | None:
        """Read every block of the file (DuckDB checks each one's checksum as it loads it)."""
        store = self._store
        assert store is not None
        tables = store.read_every_block()
        if not tables:
            return None
        windows = store.damaged_windows() if "transactions" in tables else []
        shown = ", ".join(f"{_iso(a)} .. {_iso(b)}" for a, b in windows[:3])
        more = f" and {len(windows) - 3} more" if len(windows) > 3 else ""
        where = f"; windows to fetch again: {shown}{more}" if windows else ""
        log.error(
            "database %s is damaged: table(s) %s fail their checksums%s",
            store.path,
            ", ".join(tables),
            where,
        )
        return VerifyReport(
            damaged_tables=tables,
            damaged_windows=windows,
            exit_code=int(DatabaseCorrupt.exit_code),
            message=f"database damaged: table(s) {', '.join(tables)} fail their checksums"
            f"{f' in {len(windows)} window(s)' if windows else ''}",
        )

    async def _refuse_damaged_file(self) -> None:
        """`run` never builds on a damaged file: one full scan first (~2 s on a year, 2.2M rows)."""
        damage = await self._on_db(self._find_damage)
        if damage is None:
            return
        raise DatabaseCorrupt(
            f"{damage.message}; nothing was fetched",
            hint=f"{damaged_hint(self.params.db_path)} (`stxbf verify` lists the damaged windows)",
        )

    async def _verify_windows(self, source: PageSource) -> VerifyReport:
        """One `limit=1` request per verified window: its `total` and first row against ours.

        Windows whose total or first row changed are fetched again, replacing their rows in one
        transaction each. A reorg that swaps rows while keeping both the count and the first row
        goes unseen by this check; the settle period covers the part of the chain where that
        happens (a reorg deeper than `settle_hours` is not expected on Bitcoin).
        """
        p = self.params
        store = self._store
        assert store is not None
        report = VerifyReport()
        self.phase = "verifying"
        checks = await self._on_db(store.window_checks)
        requests_before = self.stats.requests
        slots = asyncio.Semaphore(p.concurrency)
        log.info("verify: re-counting %d verified window(s)", len(checks))

        async def recount(check: WindowCheck) -> ChangedWindow | None:
            async with slots:
                if self._stop_requested:
                    return None  # not checked: its checked_at stays as it was
                if self.source_name == "v3":
                    # v3 has no time filter: the window's burn blocks give its count; no
                    # first row to compare (a reorg that keeps the count goes unseen, as on v1
                    # when it also keeps the first row; the settle period covers it)
                    total = await self._v3_source().window_total(check.start_time, check.end_time)
                    first = check.first_tx_id
                else:
                    page = await source.page(
                        start_time=check.start_time, end_time=check.end_time, limit=1
                    )
                    total, first = page.total, (page.rows[0][0] if page.rows else None)
            if total != check.api_total or total != check.rows_stored:
                reason = f"total {check.rows_stored} stored, {total} now"
            elif first != check.first_tx_id:
                reason = "its first transaction changed"
            else:
                return None
            return ChangedWindow(check.start_time, check.end_time, total, check.rows_stored, reason)

        async def recount_all() -> list[ChangedWindow | None]:
            # newest first: the v3 source reads the burn-block list downwards once
            ordered = sorted(checks, key=lambda c: -c.start_time)
            tasks = [asyncio.ensure_future(recount(check)) for check in ordered]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:  # a fatal answer or a cancel: no request outlives the check
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        checked_at = self.clock()
        try:
            outcomes = await recount_all()
        except (ApiGone, ApiNotStacks) as exc:
            if not self._may_switch(exc):
                raise
            self._switch_to_v3(exc)
            outcomes = await recount_all()
        if self._stop_requested:
            report.exit_code = int(ExitCode.INTERRUPTED)
            report.message = "interrupted while re-counting windows; nothing was changed"
            return report
        report.windows_checked = len(checks)
        report.changed = [outcome for outcome in outcomes if outcome is not None]
        report.windows_changed = len(report.changed)
        changed_spans = {(c.start_time, c.end_time) for c in report.changed}
        unchanged = [
            (c.start_time, c.end_time)
            for c in checks
            if (c.start_time, c.end_time) not in changed_spans
        ]
        await self._on_db(store.mark_checked, unchanged, checked_at)
        for change in report.changed:
            log.warning(
                "verify: window %s .. %s changed (%s): fetching it again",
                _iso(change.start_time),
                _iso(change.end_time),
                change.reason,
            )
        if report.changed:
            await self._refetch_changed(source, sorted(changed_spans), report)
        report.requests = self.stats.requests - requests_before
        if self._stop_requested:
            report.exit_code = int(ExitCode.INTERRUPTED)
            report.message = (
                f"interrupted: {report.windows_changed} changed window(s) found; those fetched "
                "again so far are committed, `stxbf verify` finds the rest"
            )
            return report
        report.message = (
            f"verified {report.windows_checked} window(s): {report.windows_changed} changed, "
            f"{report.rows_added} row(s) added, {report.rows_removed} removed"
        )
        if report.windows_incomplete:
            report.message += f", {report.windows_incomplete} still inconsistent"
            report.exit_code = int(ExitCode.INCOMPLETE)
        log.info("verify: %s (%d requests)", report.message, report.requests)
        self.phase = "fetching"
        return report

    async def _refetch_changed(
        self, source: PageSource, spans: list[tuple[int, int]], report: VerifyReport
    ) -> None:
        store = self._store
        assert store is not None

        async def replace(window: CompletedWindow) -> None:
            record = WindowRecord(
                window.start,
                window.end,
                window.total,
                len(window.rows),
                window.state,
                window.pages,
                source=self.source_name or "v1",
            )
            replaced = await self._on_db(store.replace_window, record, window.rows)
            report.rows_added += replaced.added
            report.rows_removed += replaced.removed
            if window.state == "incomplete" or replaced.stored != window.total:
                report.windows_incomplete += 1
            self.counters.windows_refetched += 1

        # One window per changed window where its density allows (the engine splits larger ones).
        widest = max(end - start + 1 for start, end in spans)
        engine: Engine | V3Engine
        if self.source_name == "v3":
            engine = V3Engine(
                self._v3_source(), on_window=replace, initial_span=min(widest, MAX_SPAN)
            )
        else:
            engine = Engine(
                source,
                concurrency=self.params.concurrency,
                on_window=replace,
                initial_span=min(widest, MAX_SPAN),
            )
        if self._stop_requested:
            engine.stop()
        outer, self._engine = self._engine, engine
        try:
            result = await engine.run_pass(
                spans, head_start=None, page_budget=max(self.params.max_pages, 1)
            )
        finally:
            self._engine = outer
        if not result.finished and not result.stopped:
            report.windows_incomplete += max(1, result.windows_incomplete)

    # -- committing --------------------------------------------------------------------------

    async def _commit_loop(
        self, commits: asyncio.Queue[tuple[CompletedWindow, str] | None]
    ) -> None:
        store = self._store
        assert store is not None
        last_wallets = 0.0
        while True:
            item = await commits.get()
            try:
                if item is None:
                    return
                window, route = item
                record = WindowRecord(
                    window.start,
                    window.end,
                    window.total,
                    len(window.rows),
                    window.state,
                    window.pages,
                    source=route,
                )
                stored = await self._on_db(store.commit_window, record, window.rows)
                self._note_commit(window, stored, route)
                self.window_sources = await self._on_db(store.window_sources)
                if self.clock() - last_wallets > WALLETS_INTERVAL:
                    last_wallets = self.clock()
                    await self._refresh_summary(wallets=True)
            finally:
                commits.task_done()

    def _note_commit(self, window: CompletedWindow, stored: int, route: str = "v1") -> None:
        self.last_commit_at = self.clock()
        self.covered = [
            span for span in self.covered if span[1] < window.start or span[0] > window.end
        ]
        state = window.state if stored == window.total else "incomplete"
        if state in ("verified", "open"):
            self.covered.append((window.start, window.end, window.total))
        # final windows only: an `open` one (the head, the settle period) is fetched again
        self.counters.windows_verified += state == "verified"
        self.transactions_stored += len(window.rows)  # refreshed exactly from the DB every 30 s
        if window.rows:
            times = [row[BURN_TIME_INDEX] for row in window.rows]
            low, high = min(times), max(times)
            self.earliest = low if self.earliest is None else min(self.earliest, low)
            self.latest = high if self.latest is None else max(self.latest, high)
        log.info(
            "window %s .. %s %s: %d transactions in %d pages (%s)",
            _iso(window.start),
            _iso(window.end),
            state,
            stored,
            window.pages,
            route,
        )

    async def _load_store_figures(self) -> None:
        store = self._store
        assert store is not None
        records = await self._on_db(store.windows)
        self.covered = [
            (r.start_time, r.end_time, r.api_total) for r in records if r.state == "verified"
        ]
        chain_start = await self._on_db(store.get_meta, "chain_start")
        if chain_start:
            self.chain_start = int(chain_start)
        await self._refresh_summary(wallets=True)

    async def _refresh_summary(self, *, wallets: bool, save: bool = False) -> None:
        store = self._store
        assert store is not None
        summary = await self._on_db(  # saved: idle status/health read it back instead of counting
            lambda: store.save_summary() if save else store.summary(wallets=wallets)
        )
        self.transactions_stored = summary.transactions
        self.window_sources = await self._on_db(store.window_sources)
        if wallets:
            self.wallets = summary.wallets
        self.earliest, self.latest = summary.earliest_tx_time, summary.latest_tx_time
        self.db_bytes = summary.db_bytes

    # -- progress ----------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            self._publish()
            self._warn_if_quota_short()
            await asyncio.sleep(PUBLISH_INTERVAL)

    def _warn_if_quota_short(self) -> None:
        """Once a run: the monthly quota left is smaller than what the rest of the range needs."""
        pacer = self._pacer
        if self._quota_warned or pacer is None or pacer.month_remaining is None:
            return
        needed = self._remaining_pages()
        if needed is None:
            return
        needed_units = needed * pacer.cost
        if pacer.month_remaining < needed_units:
            self._quota_warned = True
            log.warning(
                "the API's monthly quota has %d request units left, and the rest of the range "
                "needs about %d: the run will stop when the quota runs out",
                int(pacer.month_remaining),
                int(needed_units),
            )

    def _publish(self) -> None:
        snapshot = self.snapshot()
        try:
            publish(self.params.progress_path, snapshot)
        except OSError as exc:
            log.debug("cannot publish progress: %s", exc)
        if self.view is not None:
            self.view.update(snapshot)

    def snapshot(self) -> ProgressSnapshot:
        pacer = self._pacer
        stats = self.stats
        counters = Counters(
            requests=stats.requests,
            pages=stats.pages,
            transactions_fetched=stats.transactions,
            responses_429=stats.responses_429,
            errors=stats.errors,
            retries=stats.retries,
            windows_verified=self.counters.windows_verified,
            windows_refetched=self.counters.windows_refetched,
        )
        backoff_until = stats.backoff_until
        limited_until, limited_reason = self._rate_limited()
        if pacer is not None and pacer.gate_remaining() > 0:
            gate = self.clock() + pacer.gate_remaining()
            backoff_until = max(backoff_until or 0.0, gate)
        phase = self.phase
        if phase == "fetching" and backoff_until and backoff_until > self.clock():
            phase = "backing_off"
        rate = pacer.achieved_rpm() if pacer is not None else 0.0
        return ProgressSnapshot(
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self.clock(),
            phase=phase,
            api_url=self.params.api_url,
            target_days=self.params.target_days,
            range_start=self.range_start,
            range_end=self.range_end,
            chain_start=self.chain_start,
            iteration=self.iteration,
            counters=counters,
            coverage=day_coverage(self._covered_spans(), self.range_start, self.range_end),
            transactions_stored=self.transactions_stored,
            wallets=self.wallets,
            earliest_tx_time=self.earliest,
            latest_tx_time=self.latest,
            expected_total=self.expected_total,
            rate_rpm=round(rate, 1),
            limit_rpm=None
            if pacer is None or pacer.limit_rpm is None
            else round(pacer.limit_rpm, 1),
            backoff_until=backoff_until,
            last_error=stats.last_error,
            last_error_at=stats.last_error_at,
            last_progress_at=max(
                (t for t in (stats.last_page_at, self.last_commit_at) if t is not None),
                default=None,
            ),
            consecutive_failures=stats.consecutive_failures,
            rate_limited_until=limited_until,
            rate_limited_reason=limited_reason,
            eta_seconds=self._eta(rate),
            db_bytes=self.db_bytes,
            restarts=self.params.restarts,
            exit_code=None if self.exit_code is None else int(self.exit_code),
            source=self.source_name,
            window_sources=dict(sorted(self.window_sources.items())),
        )

    def _rate_limited(self) -> tuple[float | None, str | None]:
        """Until when, and why, the run waits out a limit the API stated (not a stall)."""
        if self.quota is not None:
            return self.quota.resets_at, self.quota.message
        pacer = self._pacer
        if pacer is None or pacer.gate_remaining() <= 0 or pacer.gate_reason is None:
            return None, None
        return self.clock() + pacer.gate_remaining(), pacer.gate_reason

    def _remaining_pages(self) -> float | None:
        if self.expected_total is None:
            return None
        done = sum(
            total
            for start, end, total in self.covered
            if end >= self.range_start and start <= self.range_end
        )
        return max(0, self.expected_total - done) / PAGE_LIMIT

    def _eta(self, rate_rpm: float) -> float | None:
        remaining_pages = self._remaining_pages()
        if remaining_pages is None or rate_rpm <= 0:
            return None
        return remaining_pages / (rate_rpm / 60.0)

    def _log_pass(self, result: PassResult) -> None:
        log.info(
            "iteration %d: %d windows done, %d incomplete, %d pages%s",
            self.iteration,
            result.windows_done,
            result.windows_incomplete,
            result.pages,
            " (page budget reached)" if result.budget_exhausted else "",
        )


def _open_store(path: Path, patience: float = 5.0) -> Store:
    """Open for writing; a reader (`status` with no run alive) may hold the file for a moment."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return Store.open(path)
        except DatabaseBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def _drain(queue: asyncio.Queue[Any], consumer: asyncio.Task[None]) -> None:
    """Wait until every queued item is processed; re-raise if the consumer died instead."""
    joined = asyncio.ensure_future(queue.join())
    await asyncio.wait([joined, consumer], return_when=asyncio.FIRST_COMPLETED)
    joined.cancel()
    if consumer.done():
        consumer.result()


def _iso(ts: int | float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))
