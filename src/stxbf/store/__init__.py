"""The DuckDB file: transactions, the window checkpoints that prove them complete, run history."""

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
