"""`Runner` drives a run through its lifecycle: lock, open, check, plan, passes, verify, end.

Each step's work lives in its own module; this one orders the steps, holds the one-writer lock
(`run_lock`), and turns their outcome into an exit code and a closing snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from stxbf.codes import ExitCode, Phase
from stxbf.errors import (
    ApiGone,
    ApiNotStacks,
    LockHeld,
    QuotaExhausted,
    RequestBudgetSpent,
    StoreError,
    StxbfError,
)
from stxbf.fetch.pages import FetchStats
from stxbf.fetch.windows import PassResult
from stxbf.paths import (
    DataPaths,
    read_runner_record,
    remove_record,
    this_runner,
    write_runner_record,
)
from stxbf.runner.commits import (
    Committer,
    forget_duplicated,
    load_coverage,
    record_before_chain_start,
)
from stxbf.runner.params import ProgressView, RunParams, RunReport, VerifyReport
from stxbf.runner.plan import RangePlan
from stxbf.runner.preflight import preflight
from stxbf.runner.publisher import SnapshotPublisher
from stxbf.runner.request_path import RequestPath
from stxbf.runner.state import RunState, StopSignal
from stxbf.runner.storethread import StoreThread
from stxbf.runner.verify import Verifier, find_damage, refuse_damaged_file
from stxbf.store import Store
from stxbf.words import plural, utc_iso

log = logging.getLogger(__name__)

END_PHASES = {ExitCode.OK: Phase.FINISHED, ExitCode.INTERRUPTED: Phase.INTERRUPTED}


class Runner:
    """Runs one `stxbf run` (`run()`) or one `stxbf verify` (`verify()`) over one database."""

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
        self.clock = clock
        self.stats = FetchStats()
        self.state = RunState(plan=RangePlan.of(params, clock()))
        self.publisher = SnapshotPublisher(params, self.state, self.stats, clock=clock, view=view)
        self.stop = StopSignal()
        self.run_id: int | None = None  # set once the preflight passed and the run is recorded
        self._audited = False  # the duplicate audit runs once per run
        self._verified = False  # `--verify` re-counts once per run

    def request_stop(self, reason: str = "signal") -> None:
        """Stop scheduling, commit what is complete, and return INTERRUPTED (signal-safe)."""
        self.stop.request(reason)

    # -- run ---------------------------------------------------------------------------------

    async def run(self) -> RunReport:
        p = self.params
        with run_lock(p.paths):
            db = await StoreThread.open(p.db_path)
            try:
                self.stop.task = asyncio.current_task()
                return await self._run_locked(db)
            finally:
                # nothing was written when no run was recorded: leave the file as it was
                await db.close(checkpoint=self.run_id is not None)

    async def _run_locked(self, db: StoreThread) -> RunReport:
        try:
            await refuse_damaged_file(db, self.params.db_path)
            await load_coverage(db, self.state)
            await self.state.figures.refresh(db, wallets=True)
        except asyncio.CancelledError:
            if not self.stop.requested:
                raise
            return self._stopped_before_start()
        request_path = self._open_request_path()
        publisher = asyncio.create_task(self.publisher.publish_loop())
        state = self.state
        try:
            report = await self._passes(db, request_path)
        except asyncio.CancelledError:
            report = RunReport(ExitCode.INTERRUPTED, "interrupted before the backfill started")
        except StxbfError as exc:
            self.stats.last_error = exc.message
            self.stats.last_error_at = self.clock()
            state.phase = Phase.FAILED
            if isinstance(exc, QuotaExhausted):
                state.quota = exc
            state.exit_code = exc.exit_code
            await self._finish(db, request_path, publisher)
            raise
        state.exit_code = report.exit_code
        state.phase = END_PHASES.get(report.exit_code, Phase.STOPPED)
        await self._finish(db, request_path, publisher)
        report.snapshot = self.publisher.snapshot()
        return report

    def _stopped_before_start(self) -> RunReport:
        """Report a stop that came while the database was read, before any request was sent.

        Nothing was written, so the run is not recorded; the snapshot says how it ended.
        """
        report = RunReport(ExitCode.INTERRUPTED, "interrupted before the backfill started")
        self.state.exit_code = report.exit_code
        self.state.phase = END_PHASES.get(report.exit_code, Phase.STOPPED)
        self.publisher.publish()
        report.snapshot = self.publisher.snapshot()
        return report

    async def _finish(
        self, db: StoreThread, request_path: RequestPath, publisher: asyncio.Task[None]
    ) -> None:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await request_path.aclose()
        run_id = self.run_id
        if run_id is not None:  # else the API failed before anything was written
            with contextlib.suppress(Exception):  # the error that ended the run stays the one
                await self.state.figures.refresh(db, wallets=True, save=True)
            with contextlib.suppress(Exception):
                await db.call(lambda store: store.end_run(run_id, **self._run_figures()))
        self.publisher.publish()

    def _run_figures(self) -> dict[str, Any]:
        """Return what the runs table records of this run when it ends."""
        state, stats = self.state, self.stats
        return {
            "ended_at": self.clock(),
            "range_start": state.plan.range_start,
            "range_end": state.plan.range_end,
            "requests": stats.requests,
            "pages": stats.pages,
            "transactions_fetched": stats.transactions,
            "exit_code": int(state.exit_code if state.exit_code is not None else 1),
        }

    async def _passes(self, db: StoreThread, request_path: RequestPath) -> RunReport:
        p, state = self.params, self.state
        log.info("source: %s (%s), setting %s", request_path.source, request_path.route, p.source)
        state.plan.advance(self.clock())
        await preflight(request_path, state.plan)
        self.publisher.log_plan()
        self.publisher.warn_if_quota_short()
        self.run_id = await db.call(
            lambda store: store.start_run(
                pid=os.getpid(),
                started_at=self.publisher.started_at,
                api_url=p.api_url,
                target_days=state.plan.target_days,
            )
        )
        await record_before_chain_start(db, state, request_path.source)
        committer = Committer(db, state, self.clock)
        try:
            return await self._iterate(db, request_path, committer)
        except RequestBudgetSpent as exc:
            # the windows in flight are given up; every completed one is committed
            await committer.drain()
            return self._budget_spent(exc.message)
        finally:
            await committer.close()

    async def _iterate(
        self, db: StoreThread, request_path: RequestPath, committer: Committer
    ) -> RunReport:
        """Plan the gaps and run a pass over them, until the range is covered or a limit stops
        the run."""
        state, plan = self.state, self.state.plan
        engine = request_path.engine(committer.on_window(request_path.source))
        with contextlib.ExitStack() as watched:
            watched.enter_context(self.stop.watching(engine))
            state.phase = Phase.FETCHING
            while True:
                state.iteration += 1
                plan.advance(self.clock())
                await db.call(_save_meta, plan.meta(self.params.api_url))
                gaps = state.coverage.gaps(plan.effective_start, plan.range_end)
                if not gaps:
                    if await self._forget_duplicated_once(db):
                        continue
                    return await self._verify_then_reach(db, request_path)
                budget = self._page_budget()
                if budget <= 0:
                    return self._budget_spent(None)
                self._log_iteration(gaps, request_path)
                try:
                    result = await engine.run_pass(
                        gaps,
                        head_start=plan.head_start,
                        page_budget=budget,
                        settle_start=plan.settle_start,
                    )
                except (ApiGone, ApiNotStacks) as exc:
                    if not request_path.may_switch(exc):
                        raise
                    # the windows completed so far are committed; the gaps are planned again
                    # from the checkpoints, so no verified window is fetched twice
                    await committer.drain()
                    request_path.switch_to_v3(exc)
                    engine = request_path.engine(committer.on_window(request_path.source))
                    watched.enter_context(self.stop.watching(engine))
                    continue
                await committer.drain()
                self._log_pass(result)
                report = await self._after_pass(db, request_path, result)
                if report is not None:
                    return report

    async def _after_pass(
        self, db: StoreThread, request_path: RequestPath, result: PassResult
    ) -> RunReport | None:
        """Decide how the run goes on after a pass: None for another iteration, else its report."""
        if result.stopped:
            return RunReport(
                ExitCode.INTERRUPTED,
                "interrupted: completed windows are committed; `stxbf run` resumes",
            )
        if result.finished:
            if await self._forget_duplicated_once(db):
                return None
            return await self._verify_then_reach(db, request_path)
        if self._page_budget() <= 0:
            return self._budget_spent(None)
        max_iterations = self.params.max_iterations
        if max_iterations and self.state.iteration >= max_iterations:
            return RunReport(
                ExitCode.INCOMPLETE,
                f"stopped after {plural(self.state.iteration, 'iteration')} before the target; "
                "run again to continue",
            )
        if result.windows_verified + result.windows_settling == 0:
            # the head window alone is no progress
            return RunReport(
                ExitCode.INCOMPLETE,
                "no window could be verified in this iteration; run again later",
            )
        return None

    def _page_budget(self) -> int:
        """Return the pages the next pass may ask for: `--max-pages`, or less when `--max-requests`
        leaves less (no new window is opened past it, so the open ones can finish within it)."""
        budget = self.params.max_requests
        if budget is None:
            return self.params.max_pages
        return min(self.params.max_pages, budget - self.stats.requests)

    def _budget_spent(self, message: str | None) -> RunReport:
        budget = self.params.max_requests
        if message is None:
            message = (
                f"request budget spent: {self.stats.requests:,} requests sent "
                f"(--max-requests {budget:,})"
            )
        return RunReport(
            ExitCode.INCOMPLETE,
            f"{message}; completed windows are committed, `stxbf run` continues from them",
        )

    async def _forget_duplicated_once(self, db: StoreThread) -> bool:
        """Audit the table for duplicates once a run, before it reports the target reached."""
        if self._audited:
            return False
        self._audited = True
        return await forget_duplicated(db, self.state)

    async def _verify_then_reach(self, db: StoreThread, request_path: RequestPath) -> RunReport:
        if not self.params.verify or self._verified:
            return self._reached()
        self._verified = True
        report = await self._verifier(db, request_path).run()
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

    def _reached(self) -> RunReport:
        chain_start = self.state.plan.chain_start
        if chain_start is not None:
            return RunReport(
                ExitCode.OK,
                f"target reached at the chain's start ({utc_iso(chain_start)}): "
                "the API has no older transactions",
            )
        days = plural(self.state.plan.target_days, "day")
        return RunReport(ExitCode.OK, f"target reached: {days} verified")

    # -- verify ------------------------------------------------------------------------------

    async def verify(self) -> VerifyReport:
        """Run `stxbf verify`: read every stored block, then re-count every verified window.

        Holds the run lock (it rewrites the windows that changed). A damaged file is reported,
        with the windows to fetch again, and nothing is requested.
        """
        p = self.params
        if not p.db_path.is_file():
            raise StoreError(f"no database at {p.db_path} yet (no backfill has run)")
        with run_lock(p.paths):
            db = await StoreThread.open(p.db_path)
            request_path: RequestPath | None = None
            found_sound = False  # every block was read and none was damaged
            try:
                self.stop.task = asyncio.current_task()
                damage = await db.call(find_damage)
                if damage is not None:
                    return damage
                found_sound = True
                request_path = self._open_request_path()
                return await self._verifier(db, request_path).run(reopen=True)
            except asyncio.CancelledError:
                if not self.stop.requested:
                    raise
                report = VerifyReport(exit_code=int(ExitCode.INTERRUPTED))
                report.message = "interrupted: windows re-fetched so far are committed"
                return report
            finally:
                if request_path is not None:
                    await request_path.aclose()
                # a damaged file, or one not yet read through, is left exactly as it was found
                await db.close(checkpoint=found_sound)

    # -- parts -------------------------------------------------------------------------------

    def _open_request_path(self) -> RequestPath:
        request_path = RequestPath(self.params, self.stats, self.transport)
        self.publisher.request_path = request_path
        return request_path

    def _verifier(self, db: StoreThread, request_path: RequestPath) -> Verifier:
        return Verifier(
            self.params, request_path, db, self.state, self.stop, stats=self.stats, clock=self.clock
        )

    def _log_iteration(self, gaps: list[tuple[int, int]], request_path: RequestPath) -> None:
        log.info(
            "iteration %d: %s to fetch in %s .. %s from %s (%s)",
            self.state.iteration,
            plural(len(gaps), "gap"),
            utc_iso(gaps[0][0]),
            utc_iso(gaps[-1][1]),
            request_path.source,
            request_path.route,
        )

    def _log_pass(self, result: PassResult) -> None:
        log.info(
            "iteration %d: %s done, %d incomplete, %s%s",
            self.state.iteration,
            plural(result.windows_done, "window"),
            result.windows_incomplete,
            plural(result.pages, "page"),
            " (page budget reached)" if result.budget_exhausted else "",
        )


@contextlib.contextmanager
def run_lock(paths: DataPaths) -> Iterator[None]:
    """Hold the one-writer lock on a database, and the record that names its holder.

    A second run fails at once with `LockHeld`, naming the holder's pid.
    """
    from filelock import FileLock, Timeout

    paths.lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = FileLock(str(paths.lock), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        record = read_runner_record(paths.runner_record)
        pid = record.pid if record is not None else None
        holder = f" (pid {pid})" if pid else ""
        raise LockHeld(
            f"another stxbf run{holder} is already backfilling into {paths.db}; "
            "watch it with `stxbf status`",
            pid=pid,
        ) from None
    try:
        write_runner_record(paths.runner_record, this_runner(socket.gethostname()))
        yield
    finally:
        remove_record(paths.runner_record)
        lock.release()


def _save_meta(store: Store, meta: dict[str, Any]) -> None:
    for key, value in meta.items():
        store.set_meta(key, value)
