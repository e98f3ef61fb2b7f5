"""This module re-counts stored windows against the API, and reads every block of the file.

Each verified window costs one `limit=1` request, whose `total` and first row are compared with
the stored ones. Windows whose
total or first row changed are fetched again, replacing their rows in one transaction each. A
reorg that swaps rows while keeping both the count and the first row goes unseen by this check;
the settle period covers the part of the chain where that happens (a reorg deeper than
`settle_hours` is not expected on Bitcoin). So `stxbf verify` fetches the `open` windows (the
settle period and the head) and any `incomplete` one again whole, as the next run would: after it,
every stored window equals the API's canonical list (the API lists canonical rows only:
stacks-blockchain-api src/datastore/pg-store.ts getTxList filters `canonical = true`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from stxbf.codes import ExitCode, Phase, WindowState
from stxbf.errors import ApiGone, ApiNotStacks, DatabaseCorrupt
from stxbf.fetch.pages import FetchStats
from stxbf.fetch.windows import MAX_SPAN, CompletedWindow
from stxbf.runner.commits import window_record
from stxbf.runner.coverage import gaps_between
from stxbf.runner.params import ChangedWindow, RunParams, VerifyReport
from stxbf.runner.request_path import RequestPath
from stxbf.runner.state import RunState, StopSignal
from stxbf.runner.storethread import StoreThread
from stxbf.store import Store, WindowCheck, damaged_hint
from stxbf.words import plural, utc_iso

log = logging.getLogger(__name__)


def _tables(tables: list[str]) -> str:
    return ("table " if len(tables) == 1 else "tables ") + ", ".join(tables)


def find_damage(store: Store) -> VerifyReport | None:
    """Read every block of the file, and report the damage found, or None when there is none.

    DuckDB checks each block's checksum as it loads it.
    """
    tables = store.read_every_block()
    if not tables:
        return None
    windows = store.damaged_windows() if "transactions" in tables else []
    shown = ", ".join(f"{utc_iso(a)} .. {utc_iso(b)}" for a, b in windows[:3])
    more = f" and {len(windows) - 3} more" if len(windows) > 3 else ""
    where = f"; windows to fetch again: {shown}{more}" if windows else ""
    log.error(
        "database %s is damaged: %s fail their checksums%s",
        store.path,
        _tables(tables),
        where,
    )
    return VerifyReport(
        damaged_tables=tables,
        damaged_windows=windows,
        exit_code=int(DatabaseCorrupt.exit_code),
        message=f"database damaged: {_tables(tables)} fail their checksums"
        + (f" in {plural(len(windows), 'window')}" if windows else ""),
    )


async def refuse_damaged_file(db: StoreThread, db_path: Path) -> None:
    """Raise `DatabaseCorrupt` when the file is damaged, so that `run` never builds on it.

    The full scan takes ~2 s on a year (2.2M rows).
    """
    damage = await db.call(find_damage)
    if damage is None:
        return
    raise DatabaseCorrupt(
        f"{damage.message}; nothing was fetched",
        hint=f"{damaged_hint(db_path)} (`stxbf verify` lists the damaged windows)",
    )


class Verifier:
    """Re-counts every verified window once and fetches again the ones that changed."""

    def __init__(
        self,
        params: RunParams,
        request_path: RequestPath,
        db: StoreThread,
        state: RunState,
        stop: StopSignal,
        *,
        stats: FetchStats,
        clock: Callable[[], float],
    ) -> None:
        self.params = params
        self.request_path = request_path
        self.db = db
        self.state = state
        self.stop = stop
        self.stats = stats
        self.clock = clock

    async def run(self, *, reopen: bool = False) -> VerifyReport:
        """Re-count the verified windows, and fetch again those that changed.

        With `reopen` (`stxbf verify`) the open and incomplete windows are fetched again too;
        `run --verify` has just fetched them.
        """
        report = VerifyReport()
        self.state.phase = Phase.VERIFYING
        checks = await self.db.call(Store.window_checks)
        unproven = await self.db.call(_unproven_windows) if reopen else []
        requests_before = self.stats.requests
        log.info("verify: re-counting %s", plural(len(checks), "verified window"))
        checked_at = self.clock()
        try:
            outcomes = await self._recount_all(checks)
        except (ApiGone, ApiNotStacks) as exc:
            if not self.request_path.may_switch(exc):
                raise
            self.request_path.switch_to_v3(exc)
            outcomes = await self._recount_all(checks)
        if self.stop.requested:
            report.exit_code = int(ExitCode.INTERRUPTED)
            report.message = "interrupted while re-counting windows; nothing was changed"
            return report
        report.windows_checked = len(checks)
        report.changed = [outcome for outcome in outcomes if outcome is not None]
        report.windows_changed = len(report.changed)
        changed_bounds = {(c.start_time, c.end_time) for c in report.changed}
        unchanged = [
            (c.start_time, c.end_time)
            for c in checks
            if (c.start_time, c.end_time) not in changed_bounds
        ]
        await self.db.call(Store.mark_checked, unchanged, checked_at)
        for change in report.changed:
            log.warning(
                "verify: window %s .. %s changed (%s): fetching it again",
                utc_iso(change.start_time),
                utc_iso(change.end_time),
                change.reason,
            )
        if unproven:
            log.info(
                "verify: fetching again %s (the head and the %g h settle period, where a reorg "
                "changes rows without changing counts)",
                plural(len(unproven), "open or incomplete window"),
                self.state.plan.settle_hours,
            )
            report.windows_reopened = len(unproven)
        if report.changed or unproven:
            await self._refetch(report, sorted(changed_bounds | set(unproven)))
        if reopen:
            report.not_stored = await self.db.call(not_stored, int(self.clock()))
        report.requests = self.stats.requests - requests_before
        self._conclude(report)
        self.state.phase = Phase.FETCHING
        return report

    def _conclude(self, report: VerifyReport) -> None:
        if self.stop.requested:
            report.exit_code = int(ExitCode.INTERRUPTED)
            report.message = (
                f"interrupted: {plural(report.windows_changed, 'changed window')} found; those "
                "fetched again so far are committed, `stxbf verify` finds the rest"
            )
            return
        reopened = (
            f", {plural(report.windows_reopened, 'open or incomplete window')} fetched again"
            if report.windows_reopened
            else ""
        )
        report.message = (
            f"verified {plural(report.windows_checked, 'window')}: {report.windows_changed} changed"
            f"{reopened}, {plural(report.rows_added, 'row')} added, {report.rows_removed} removed"
        )
        if report.windows_incomplete:
            report.message += f", {report.windows_incomplete} still inconsistent"
            report.exit_code = int(ExitCode.INCOMPLETE)
        if report.not_stored:
            start, end = report.not_stored[-1]
            report.message += (
                "; not stored yet, left to `stxbf run`: "
                f"{plural(len(report.not_stored), 'stretch', 'stretches')} of the range, "
                f"the newest {utc_iso(start)} .. {utc_iso(end)}"
            )
        log.info("verify: %s (%d requests)", report.message, report.requests)

    async def _recount_all(self, checks: list[WindowCheck]) -> list[ChangedWindow | None]:
        # newest first: the v3 source reads the burn-block list downwards once
        # the page source's in-flight limit sizes the re-counts; this only bounds the tasks
        slots = asyncio.Semaphore(self.params.concurrency)
        ordered = sorted(checks, key=lambda c: -c.start_time)
        tasks = [asyncio.ensure_future(self._recount(check, slots)) for check in ordered]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # a fatal answer or a cancel: no request outlives the check
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _recount(self, check: WindowCheck, slots: asyncio.Semaphore) -> ChangedWindow | None:
        async with slots:
            if self.stop.requested:
                return None  # not checked: its checked_at stays as it was
            if self.request_path.source == "v3":
                # v3 has no time filter: the window's burn blocks give its count; no first row
                # to compare (a reorg that keeps the count goes unseen, as on v1 when it also
                # keeps the first row; the settle period covers it)
                v3 = self.request_path.v3()
                total = await v3.window_total(check.start_time, check.end_time)
                first = check.first_tx_id
            else:
                page = await self.request_path.pages.page(
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

    async def _refetch(self, report: VerifyReport, windows: list[tuple[int, int]]) -> None:
        """Fetch these windows again whole, replacing their rows.

        Those still inside the settle period (or the head) stay `open`, as a run stores them.
        """

        async def replace(window: CompletedWindow) -> None:
            record = window_record(window, self.request_path.source)
            replaced = await self.db.call(Store.replace_window, record, window.rows)
            report.rows_added += replaced.added
            report.rows_removed += replaced.removed
            if window.state == WindowState.INCOMPLETE or replaced.stored != window.total:
                report.windows_incomplete += 1
            self.state.windows_refetched += 1

        # One window per changed window where its density allows (the engine splits larger ones).
        widest = max(end - start + 1 for start, end in windows)
        engine = self.request_path.engine(replace, initial_span=min(widest, MAX_SPAN))
        # Windows ending in the settle period or the head's last hours stay `open`; they are
        # not cut at the head's start (a stored window keeps its bounds where its density allows).
        plan = dataclasses.replace(self.state.plan)  # the run's plan stays as it is
        plan.advance(self.clock())
        settle_start = min(plan.head_start, plan.settle_start or plan.head_start)
        with self.stop.watching(engine):
            result = await engine.run_pass(
                windows,
                head_start=None,
                page_budget=max(self.params.max_pages, 1),
                settle_start=settle_start,
            )
        if not result.finished and not result.stopped:
            report.windows_incomplete += max(1, result.windows_incomplete)


def _unproven_windows(store: Store) -> list[tuple[int, int]]:
    """Return the windows a run would fetch again: open (head, settle period) and incomplete."""
    unproven = (WindowState.OPEN, WindowState.INCOMPLETE)
    return [(w.start_time, w.end_time) for w in store.windows() if w.state in unproven]


def not_stored(store: Store, now: int) -> list[tuple[int, int]]:
    """Return what no window holds between the last run's range start (or the chain's) and now."""
    range_start, chain_start = store.get_meta("range_start"), store.get_meta("chain_start")
    if range_start is None:
        return []
    start = max(int(range_start), int(chain_start) if chain_start else 0)
    return gaps_between(
        start,
        now,
        [(w.start_time, w.end_time) for w in store.windows() if w.state != WindowState.INCOMPLETE],
    )
