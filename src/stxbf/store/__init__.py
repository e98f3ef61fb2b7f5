"""The DuckDB file: transactions, the window checkpoints that prove them complete, run history."""

from stxbf.store.db import (
    Replaced,
    Store,
    StoreSummary,
    WindowCheck,
    WindowRecord,
    damaged_hint,
)

__all__ = ["Replaced", "Store", "StoreSummary", "WindowCheck", "WindowRecord", "damaged_hint"]
