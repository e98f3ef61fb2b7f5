"""The DuckDB file: transactions, the window checkpoints that prove them complete, run history."""

from stxbf.store.db import Store, StoreSummary, WindowRecord

__all__ = ["Store", "StoreSummary", "WindowRecord"]
