"""The DuckDB file: it holds the transactions, the window checkpoints that prove them complete,
and the history of runs. `Store` (db.py) is the one object the rest of stxbf uses to reach it.
"""

from stxbf.store.db import (
    Replaced,
    Store,
    StoreSummary,
    WindowCheck,
    WindowRecord,
    damaged_hint,
)
from stxbf.store.export import ExportReport, export_parquet

__all__ = [
    "ExportReport",
    "Replaced",
    "Store",
    "StoreSummary",
    "WindowCheck",
    "WindowRecord",
    "damaged_hint",
    "export_parquet",
]
