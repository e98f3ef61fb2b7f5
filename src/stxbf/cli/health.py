"""Placeholder: being written."""

import typer


def health() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
