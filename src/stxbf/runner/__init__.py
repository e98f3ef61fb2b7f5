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

The modules: `core` (`Runner`, the lifecycle, and the one-writer lock), `plan` (the range),
`preflight`, `request_path` (the one request path, and the source v1 or v3 it asks), `commits`
(the database writer), `coverage` (what is proven), `verify`, `state` (what the run's parts
share, and the stop signal), `publisher` (the snapshot published every second), `storethread`
(the thread every database call runs on), `params` (what a run is asked and answers).

Memory stays flat: at most a few windows are open, and at most two completed windows wait for
their commit.
"""

from stxbf.runner.core import Runner, run_lock
from stxbf.runner.coverage import Span, gaps_between
from stxbf.runner.params import ChangedWindow, ProgressView, RunParams, RunReport, VerifyReport

__all__ = [
    "ChangedWindow",
    "ProgressView",
    "RunParams",
    "RunReport",
    "Runner",
    "Span",
    "VerifyReport",
    "gaps_between",
    "run_lock",
]
