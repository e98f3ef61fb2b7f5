"""Placeholder: being written."""

import typer


def status() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
