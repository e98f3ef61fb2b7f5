"""A backfill run: the only place where fetching and storing meet.

    lock → open store → preflight (chain start, expected total) → passes of the engine
         → each completed window committed (rows + checkpoint, one transaction)
         → progress snapshot published every second → exit code

The engine works on the event loop; DuckDB writes run on one dedicated thread so a commit never
stalls the requests in flight. Memory stays flat: at most a few windows are open, and at most two
completed windows wait for their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from stxbf.errors import ApiRejected, DatabaseBusy, ExitCode, LockHeld, StoreError, StxbfError
from stxbf.fetch.client import ApiClient
from stxbf.fetch.engine import CompletedWindow, Engine, PassResult
from stxbf.fetch.pacer import HIRO_RPM_WITH_KEY, HIRO_RPM_WITHOUT_KEY, Pacer
from stxbf.fetch.pages import FetchStats, PageSource
from stxbf.models import BURN_TIME_INDEX
from stxbf.state import DAY, Counters, ProgressSnapshot, day_coverage, publish
from stxbf.store import Store, WindowRecord

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


@dataclass
class RunReport:
    exit_code: ExitCode
    message: str
    snapshot: ProgressSnapshot | None = None


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
        info = {"pid": os.getpid(), "started_at": time.time(), "host": socket.gethostname()}
        tmp = runner_path.with_name(runner_path.name + ".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, runner_path)
        yield
    finally:
        with contextlib.suppress(OSError):
            runner_path.unlink()
        lock.release()


def read_runner_pid(runner_path: Path) -> int | None:
    try:
        return int(json.loads(runner_path.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
        self.exit_code: ExitCode | None = None
        self._engine: Engine | None = None
        self._pacer: Pacer | None = None
        self._stop_requested = False
        self.run_id: int | None = None  # set once the preflight passed and the run is recorded
        self._audited = False  # the duplicate audit runs once per run
        self._main: asyncio.Task[Any] | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stxbf-db")
        self._store: Store | None = None
        self._source: PageSource | None = None

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
        p = self.params
        store = self._store
        assert store is not None
        await self._load_store_figures()
        rpm = p.rpm or (HIRO_RPM_WITH_KEY if p.api_key else HIRO_RPM_WITHOUT_KEY)
        self._pacer = Pacer(rpm=rpm, fixed=p.rpm is not None)
        client = ApiClient(
            p.api_url,
            api_key=p.api_key,
            timeout=p.request_timeout,
            max_connections=p.concurrency,
            transport=self.transport,
        )
        source = PageSource(client, self._pacer, give_up_after=p.give_up_after, stats=self.stats)
        self._source = source
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
            await self._refresh_summary(wallets=True)
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
        await self._preflight(source)
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
        commits: asyncio.Queue[CompletedWindow | None] = asyncio.Queue(maxsize=2)
        committer = asyncio.create_task(self._commit_loop(commits))

        async def on_window(window: CompletedWindow) -> None:
            # Wait for room in the queue, unless the committer dies meanwhile (a full disk):
            # then its error ends the pass instead of a wait that never ends.
            put = asyncio.ensure_future(commits.put(window))
            await asyncio.wait([put, committer], return_when=asyncio.FIRST_COMPLETED)
            if committer.done():
                put.cancel()
                committer.result()
                raise StoreError("the database writer stopped")  # pragma: no cover

        self._engine = Engine(source, concurrency=p.concurrency, on_window=on_window)
        if self._stop_requested:
            self._engine.stop()
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
                    return self._reached()
                log.info(
                    "iteration %d: %d gap(s) to fetch in %s .. %s",
                    self.iteration,
                    len(gaps),
                    _iso(gaps[0][0]),
                    _iso(gaps[-1][1]),
                )
                result = await self._engine.run_pass(
                    gaps,
                    head_start=self.range_end - HEAD_SETTLE_SECONDS + 1,
                    page_budget=p.max_pages,
                )
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
                    return self._reached()
                if p.max_iterations and self.iteration >= p.max_iterations:
                    return RunReport(
                        ExitCode.INCOMPLETE,
                        f"stopped after {self.iteration} iteration(s) before the target; "
                        "run again to continue",
                    )
                if result.windows_verified == 0:  # the head window alone is no progress
                    return RunReport(
                        ExitCode.INCOMPLETE,
                        "no window could be verified in this iteration; run again later",
                    )
        finally:
            if not committer.done():
                await commits.put(None)
            with contextlib.suppress(asyncio.CancelledError, StxbfError):
                await committer

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
        """Two one-row requests: where the chain's history begins, and how much the range holds."""
        self._plan_range()
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
        record = WindowRecord(start, end, 0, 0, "verified", 0)
        store = self._store
        assert store is not None
        await self._on_db(store.commit_window, record, [])
        self.covered.append((start, end, 0))

    # -- committing --------------------------------------------------------------------------

    async def _commit_loop(self, commits: asyncio.Queue[CompletedWindow | None]) -> None:
        store = self._store
        assert store is not None
        last_wallets = 0.0
        while True:
            window = await commits.get()
            try:
                if window is None:
                    return
                record = WindowRecord(
                    window.start,
                    window.end,
                    window.total,
                    len(window.rows),
                    window.state,
                    window.pages,
                )
                stored = await self._on_db(store.commit_window, record, window.rows)
                self._note_commit(window, stored)
                if self.clock() - last_wallets > WALLETS_INTERVAL:
                    last_wallets = self.clock()
                    await self._refresh_summary(wallets=True)
            finally:
                commits.task_done()

    def _note_commit(self, window: CompletedWindow, stored: int) -> None:
        self.covered = [
            span for span in self.covered if span[1] < window.start or span[0] > window.end
        ]
        state = window.state if stored == window.total else "incomplete"
        if state in ("verified", "open"):
            self.covered.append((window.start, window.end, window.total))
            self.counters.windows_verified += 1
        self.transactions_stored += len(window.rows)  # refreshed exactly from the DB every 30 s
        if window.rows:
            times = [row[BURN_TIME_INDEX] for row in window.rows]
            low, high = min(times), max(times)
            self.earliest = low if self.earliest is None else min(self.earliest, low)
            self.latest = high if self.latest is None else max(self.latest, high)
        log.info(
            "window %s .. %s %s: %d transactions in %d pages",
            _iso(window.start),
            _iso(window.end),
            state,
            stored,
            window.pages,
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

    async def _refresh_summary(self, *, wallets: bool) -> None:
        store = self._store
        assert store is not None
        summary = await self._on_db(lambda: store.summary(wallets=wallets))
        self.transactions_stored = summary.transactions
        if wallets:
            self.wallets = summary.wallets
        self.earliest, self.latest = summary.earliest_tx_time, summary.latest_tx_time
        self.db_bytes = summary.db_bytes

    # -- progress ----------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(PUBLISH_INTERVAL)

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
            last_progress_at=stats.last_page_at,
            consecutive_failures=stats.consecutive_failures,
            eta_seconds=self._eta(rate),
            db_bytes=self.db_bytes,
            exit_code=None if self.exit_code is None else int(self.exit_code),
        )

    def _eta(self, rate_rpm: float) -> float | None:
        if self.expected_total is None or rate_rpm <= 0:
            return None
        done = sum(
            total
            for start, end, total in self.covered
            if end >= self.range_start and start <= self.range_end
        )
        remaining_pages = max(0, self.expected_total - done) / 50
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
