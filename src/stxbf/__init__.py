"""stxbf: backfill Stacks transaction history from the Hiro API into DuckDB."""

__version__ = "0.1.0"
