"""Placeholder: being written."""

import typer


def logs() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
