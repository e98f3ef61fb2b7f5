"""`stxbf logs`: the runner's recent log lines, level-coloured on a terminal; `--follow` tails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from stxbf.cli.common import console, err_console, reader_gone
from stxbf.cli.options import Home, LogLevelChoice
from stxbf.logs import LEVEL_STYLES, follow, line_level, log_size, tail


def logs(
    lines: int = typer.Option(50, "-n", "--lines", min=0, help="How many recent records to show."),
    follow_: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines (across log rotation) until Ctrl+C."
    ),
    level: LogLevelChoice | None = typer.Option(
        None, "--level", case_sensitive=False, help="Only records at this level or above."
    ),
    home: Path | None = Home,
) -> None:
    """Show the end of the runner's log (<home>/logs/stxbf.log)."""
    from stxbf.settings import load_settings

    settings = load_settings(home=home)
    path = settings.log_path
    if not path.exists() and not follow_:
        err_console.print(
            f"no log yet at {path} (has a backfill run here?)", soft_wrap=True, markup=False
        )
        raise typer.Exit(1)
    offset = log_size(path)
    current = "INFO"
    for line in tail(path, lines, level=level):
        current = _print(line, current)
    if not follow_:
        return
    try:
        for line in follow(path, level=level, offset=offset, stop=reader_gone):
            current = _print(line, current)
    except KeyboardInterrupt:
        pass


def _print(line: str, current: str) -> str:
    """Print one line in its record's colour; a continuation line keeps the record's level."""
    level = line_level(line) or current
    console.print(Text(line, style=LEVEL_STYLES.get(level, "")), soft_wrap=True)
    return level
