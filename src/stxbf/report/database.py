"""What the database says about a backfill, read only when no runner holds it, and cached.

DuckDB's import and a read-only open cost ~0.1 s, and the data changes only while a run holds
the file. So the facts `status` and `health` need (the last run's range, each window's span and
state, the run's saved summary) are kept beside the database in `<db>.summary.json`, keyed by the
database file's size, mtime and inode (and its WAL's): an idle call whose key matches reads that
small file and never imports DuckDB. Any write, including damage, changes the key. The summary
itself comes from `Store.saved_summary` (saved by the run), computed only for older files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stxbf.codes import COVERING_STATES, WindowState
from stxbf.errors import DatabaseEmpty
from stxbf.paths import file_key

CACHE_SCHEMA = 1


@dataclass
class StoredFacts:
    """Hold everything that status needs from a database, in a form that fits in JSON."""

    target_days: int | None = None
    range_start: int | None = None
    range_end: int | None = None
    chain_start: int | None = None
    windows: list[tuple[int, int, str]] = field(default_factory=list)  # start, end, state
    transactions: int = 0
    wallets: int = 0
    earliest_tx_time: int | None = None
    latest_tx_time: int | None = None
    db_bytes: int = 0
    last_run: dict[str, Any] | None = None
    oldest_check_at: float | None = None  # the least recently re-counted verified window
    # verified and open windows by the route that filled them ({"v1": n, "v3": m})
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        """Tell whether the database holds any of a backfill yet (a window or a transaction)."""
        return bool(self.windows) or self.transactions > 0


def _int_or_none(value: str | None) -> int | None:
    """Read a stored meta value as an int, or None when it is missing or not a number."""
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def read_facts(db_path: Path) -> StoredFacts | None:
    """Open the database read-only and read its facts, or return None if it holds no backfill.

    It raises StoreError (DatabaseCorrupt with a hint, DatabaseBusy, SchemaTooNew) as the store
    does.
    """
    if not db_path.exists():
        return None
    from stxbf.store import Store  # duckdb is heavy: only when the database is read

    try:
        store = Store.open(db_path, read_only=True)
    except DatabaseEmpty:
        return None
    with store:
        summary = store.saved_summary() or store.summary(wallets=True)
        last_run = store.last_run()
        windows = store.windows()
        checks = [w.checked_at for w in windows if w.state == WindowState.VERIFIED and w.checked_at]
        facts = StoredFacts(
            target_days=_int_or_none(store.get_meta("target_days")),
            range_start=_int_or_none(store.get_meta("range_start")),
            range_end=_int_or_none(store.get_meta("range_end")),
            chain_start=_int_or_none(store.get_meta("chain_start")),
            windows=[(w.start_time, w.end_time, w.state) for w in windows],
            transactions=summary.transactions,
            wallets=summary.wallets,
            earliest_tx_time=summary.earliest_tx_time,
            latest_tx_time=summary.latest_tx_time,
            db_bytes=summary.db_bytes,
            last_run=None
            if last_run is None
            else {k: v for k, v in last_run.items() if isinstance(v, (int, float, str))},
            oldest_check_at=min(checks) if checks else None,
            sources=dict(
                sorted(Counter(w.source for w in windows if w.state in COVERING_STATES).items())
            ),
        )
    return facts


@dataclass
class DatabaseCache:
    """Keep the last database read in memory (the monitor), and in a file too (the idle commands).

    Each read-only open is a moment in which a runner that is starting up could not open the
    database, so a screen that refreshes every few seconds must not open it when nothing can have
    changed.
    """

    path: Path | None = None  # <db>.summary.json; None keeps the cache in memory only
    key: list[Any] | None = None
    facts: StoredFacts | None = None

    def load(self, key: list[Any]) -> tuple[bool, StoredFacts | None]:
        """Return (hit, facts) for `key`, from memory or else from the file."""
        if self.key == key:
            return True, self.facts
        if self.path is None:
            return False, None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("schema") != CACHE_SCHEMA or data.get("key") != key:
                return False, None
            raw = data.get("facts")
            facts = None if raw is None else StoredFacts(**raw)
            if facts is not None:
                facts.windows = [(int(a), int(b), str(c)) for a, b, c in facts.windows]
        except (OSError, ValueError, TypeError, AttributeError):
            return False, None
        self.key, self.facts = key, facts
        return True, facts

    def save(self, key: list[Any], facts: StoredFacts | None) -> None:
        """Keep `facts` under `key`, in memory and, where we may write it, in the file."""
        self.key, self.facts = key, facts
        if self.path is None:
            return
        record = {
            "schema": CACHE_SCHEMA,
            "key": key,
            "facts": None if facts is None else asdict(facts),
        }
        # Best effort: a data directory we may not write to (another user's) only costs speed.
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(
                prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent
            )
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(record, handle, separators=(",", ":"))
                os.replace(tmp, self.path)
            finally:
                Path(tmp).unlink(missing_ok=True)


def read_facts_cached(db_path: Path, cache: DatabaseCache | None) -> StoredFacts | None:
    """Read the database's facts, from the cache while the database file has not changed."""
    if cache is None or not db_path.exists():  # nothing to keep: leave no file behind
        return read_facts(db_path)
    key = file_key(db_path)
    hit, facts = cache.load(key)
    if hit:
        return facts
    facts = read_facts(db_path)
    if file_key(db_path) == key:  # a run that began meanwhile would make the facts stale
        cache.save(key, facts)
    return facts
