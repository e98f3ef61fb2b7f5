"""Placeholder: being written."""

import typer

app = typer.Typer(help="Not implemented yet.")


@app.command()
def todo() -> None:
    """Not implemented yet."""
