"""Placeholder: being written."""

import typer


def run() -> None:
    """Not implemented yet."""
    raise typer.Exit(1)
