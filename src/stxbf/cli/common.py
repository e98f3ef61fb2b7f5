"""Pieces that several command modules share: the consoles they print to, the help layout, the
standard output a reader may close early, and which tmux session a command is about."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, ConsoleDimensions
from rich.segment import Segment
from typer.core import TyperGroup

if TYPE_CHECKING:
    from stxbf.settings import Settings


# Into a file or a pipe a line is as long as it is: cron mail and logs are read by people and
# grep, not by a terminal of a width nobody set (rich assumes 80).
UNWRAPPED_WIDTH = 1000
TRAILING_SPACES = re.compile(r"[ \t]+(?=\n)")


class OutputConsole(Console):
    """A rich Console that neither wraps nor pads lines when it writes into a file or a pipe."""

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self.is_terminal or self._width is not None:
            return dimensions
        return ConsoleDimensions(UNWRAPPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        rendered = super()._render_buffer(buffer)
        return rendered if self.is_terminal else TRAILING_SPACES.sub("", rendered)


console = OutputConsole(highlight=False, soft_wrap=True)
err_console = OutputConsole(stderr=True, highlight=False, soft_wrap=True)


class WholeSummaries(TyperGroup):
    """A command group whose help lists the whole first sentence of each command, wrapped.

    Click would cut the sentence at the width ("Backfill transactions into DuckDB until the
    range is..."), which leaves the reader guessing.
    """

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [
            (name, command.get_short_help_str(limit=10_000))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


class ReaderMayLeave:
    """Wraps standard output for a reader that may close its end early (`stxbf health | head -1`).

    The first write into a closed pipe points the file descriptor at /dev/null and is dropped,
    so the command still completes and exits with the code it decides (often after its last
    print), and the interpreter's final flush is silent. Loops that only print (`--watch`,
    `--follow`) ask `reader_gone()` and end as on Ctrl+C.
    """

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.wrapped.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.wrapped.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.wrapped.fileno())
        except (OSError, ValueError):  # no real descriptor (a test's capture): dropping will do
            pass
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def reader_gone() -> bool:
    """Return whether the reader of standard output has closed its end (see ReaderMayLeave)."""
    return isinstance(sys.stdout, ReaderMayLeave) and sys.stdout.gone


def session_target(settings: Settings) -> tuple[str, str | None]:
    """Return the (session name, socket name) a command is about: the flags or the environment
    first, else the session record beside the database, else the defaults."""
    from stxbf.session.backfill import locate_session

    return locate_session(
        settings.paths,
        session_name=settings.session_name,
        socket_name=settings.tmux_socket,
        name_given="session_name" in settings.model_fields_set,
        socket_given="tmux_socket" in settings.model_fields_set,
    )
