"""The transactions table: a window's rows replace its whole range, and an audit finds any
tx_id stored twice.

A window's rows travel to DuckDB as one JSON array per column (orjson builds them in ~2 ms for
4,000 rows), which DuckDB parses itself, without the GIL. Binding Python lists as LIST parameters
converted each of a window's ~76,000 values through Python's C API under the GIL: 67 ms against
41 ms per 4,000-row window, and time taken from the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from stxbf.models import TX_COLUMN_NAMES, TX_COLUMNS, Row
from stxbf.store.checkpoints import TimeRange

# HUGEINT values (u128 token amounts) travel as decimal strings: JSON numbers stop at 64 bits.
_AS_TEXT = frozenset(i for i, (_, kind) in enumerate(TX_COLUMNS) if kind == "HUGEINT")
_UNNEST_JSON = ", ".join(
    f"unnest(from_json(?, '[\"VARCHAR\"]'))::{kind}"
    if i in _AS_TEXT
    else f"unnest(from_json(?, '[\"{kind}\"]'))"
    for i, (_, kind) in enumerate(TX_COLUMNS)
)
_INSERT_SQL = "INSERT INTO transactions ({}) SELECT {}".format(
    ", ".join(TX_COLUMN_NAMES), _UNNEST_JSON
)  # built from constants only


@dataclass(frozen=True, slots=True)
class Replaced:
    """The outcome of replacing a window's rows: how many are stored, and what changed."""

    stored: int
    added: int
    removed: int

    @classmethod
    def between(cls, before: set[str], rows: Sequence[Row], stored: int) -> Replaced:
        """Compare the tx_ids before and after in Python: a window fetched again holds a few
        thousand at most."""
        after = {row[0] for row in rows}
        return cls(stored=stored, added=len(after - before), removed=len(before - after))


def _column_payloads(rows: Sequence[Row]) -> list[str]:
    """Return one JSON array per column, in TX_COLUMNS order."""
    payloads = []
    for i, column in enumerate(zip(*rows, strict=True)):
        values: Any = column
        if i in _AS_TEXT:
            values = [None if value is None else str(value) for value in column]
        payloads.append(orjson.dumps(values).decode())
    return payloads


def replace_range(con: duckdb.DuckDBPyConnection, start: int, end: int, rows: Sequence[Row]) -> int:
    """Store exactly `rows` for the `burn_block_time` range; return the tx_ids it now holds.

    Whatever was stored for this range before (an earlier attempt, the head window of an earlier
    run) goes. Call it inside a transaction, with the window's checkpoint.
    """
    con.execute("DELETE FROM transactions WHERE burn_block_time BETWEEN ? AND ?", [start, end])
    if rows:
        con.execute(_INSERT_SQL, _column_payloads(rows))
    stored = con.execute(
        "SELECT count(*) FROM transactions WHERE burn_block_time BETWEEN ? AND ?", [start, end]
    ).fetchone()
    return int(stored[0]) if stored else 0


def tx_ids(
    con: duckdb.DuckDBPyConnection, start_time: int | None = None, end_time: int | None = None
) -> set[str]:
    sql = "SELECT tx_id FROM transactions"
    params: list[Any] = []
    if start_time is not None and end_time is not None:
        sql += " WHERE burn_block_time BETWEEN ? AND ?"
        params = [start_time, end_time]
    return {row[0] for row in con.execute(sql, params).fetchall()}


def duplicated_windows(con: duckdb.DuckDBPyConnection) -> list[TimeRange]:
    """Return the bounds of each window that holds a tx_id stored more than once.

    With no index on tx_id, the write path keeps it unique: a window's rows are keyed by tx_id,
    and each commit replaces its whole burn_block_time range. Only an API that moves a
    transaction to another burn_block_time between two window fetches (a reorg older than the
    head window) could leave a second copy; fetching both windows again settles it. A pass over
    tx_id hashes finds candidates (~0.2 s and a few tens of MB for 2M rows).
    """
    found = con.execute(
        "SELECT count(*) FROM (SELECT hash(tx_id) FROM transactions GROUP BY 1 HAVING count(*) > 1)"
    ).fetchone()
    if not found or not found[0]:
        return []
    rows = con.execute(
        """
        SELECT DISTINCT w.start_time, w.end_time
        FROM windows AS w
        JOIN transactions AS t ON t.burn_block_time BETWEEN w.start_time AND w.end_time
        WHERE t.tx_id IN (SELECT tx_id FROM transactions GROUP BY 1 HAVING count(*) > 1)
        ORDER BY 1
        """
    ).fetchall()
    return [(int(start), int(end)) for start, end in rows]
