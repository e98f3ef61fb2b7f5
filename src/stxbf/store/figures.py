"""This module counts what the store holds: transactions, distinct senders, the first and last
times, and the bytes on disk.

What an idle `status`/`health` shows changes only while a run writes. Counting distinct senders
over a year (2M rows) took ~1 s per call, so a run saves its summary in `meta` and readers take
it back while the content stamp still matches.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from stxbf.store.connection import read_meta, write_meta

SUMMARY_KEY = "summary"  # meta: the last saved StoreSummary and the content stamp it matches


@dataclass(frozen=True, slots=True)
class StoreSummary:
    transactions: int
    wallets: int
    earliest_tx_time: int | None
    latest_tx_time: int | None
    db_bytes: int


def file_bytes(path: Path | None) -> int:
    """Return the bytes of the database file and its write-ahead log on disk (0 in memory)."""
    if path is None:
        return 0
    total = 0
    for suffix in ("", ".wal"):
        with contextlib.suppress(OSError):
            total += os.stat(str(path) + suffix).st_size
    return total


def count(con: duckdb.DuckDBPyConnection, path: Path | None, *, wallets: bool) -> StoreSummary:
    row = con.execute(
        "SELECT count(*), min(burn_block_time), max(burn_block_time) FROM transactions"
    ).fetchone()
    transactions, earliest, latest = row if row else (0, None, None)
    wallet_count = 0
    if wallets:
        wallet_row = con.execute(
            "SELECT count(DISTINCT sender_address) FROM transactions"
        ).fetchone()
        wallet_count = int(wallet_row[0]) if wallet_row else 0
    return StoreSummary(
        transactions=int(transactions),
        wallets=wallet_count,
        earliest_tx_time=earliest,
        latest_tx_time=latest,
        db_bytes=file_bytes(path),
    )


def _content_stamp(con: duckdb.DuckDBPyConnection) -> str:
    """Return a stamp that changes whenever a window is committed or forgotten (every stxbf
    version does both), so that a saved summary is known to be stale."""
    windows = con.execute(
        "SELECT count(*), coalesce(max(fetched_at), 0), coalesce(sum(rows_stored), 0) FROM windows"
    ).fetchone()
    rows = con.execute("SELECT count(*) FROM transactions").fetchone()
    count, last_commit, stored = windows if windows else (0, 0, 0)
    return f"{count}:{float(last_commit)!r}:{stored}:{rows[0] if rows else 0}"


def save(con: duckdb.DuckDBPyConnection, summary: StoreSummary) -> None:
    """Keep `summary`, which must include the wallets, with the stamp of what it counted."""
    record = {
        "transactions": summary.transactions,
        "wallets": summary.wallets,
        "earliest_tx_time": summary.earliest_tx_time,
        "latest_tx_time": summary.latest_tx_time,
        "stamp": _content_stamp(con),
    }
    write_meta(con, SUMMARY_KEY, json.dumps(record))


def saved(con: duckdb.DuckDBPyConnection, path: Path | None) -> StoreSummary | None:
    """Return the summary a run saved, or None when there is none or the data changed since."""
    raw = read_meta(con, SUMMARY_KEY)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        if record.get("stamp") != _content_stamp(con):
            return None
        return StoreSummary(
            transactions=int(record["transactions"]),
            wallets=int(record["wallets"]),
            earliest_tx_time=record.get("earliest_tx_time"),
            latest_tx_time=record.get("latest_tx_time"),
            db_bytes=file_bytes(path),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
