"""Backfill Stacks transaction history from the Hiro API into DuckDB (the stxbf package)."""

__version__ = "0.1.0"
