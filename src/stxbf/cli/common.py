"""Shared pieces of the command modules: the consoles, and which tmux session a command is about."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

if TYPE_CHECKING:
    from stxbf.settings import Settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


class ReaderMayLeave:
    """Standard output for a reader that may close its end early (`stxbf health | head -1`).

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
    """Whether the reader of standard output has closed its end (see ReaderMayLeave)."""
    return isinstance(sys.stdout, ReaderMayLeave) and sys.stdout.gone


def session_target(settings: Settings) -> tuple[str, str | None]:
    """(session name, socket name): flags or env first, else the session record, else defaults."""
    from stxbf.ops.session import locate_session

    return locate_session(
        settings.paths,
        session_name=settings.session_name,
        socket_name=settings.tmux_socket,
        name_given="session_name" in settings.model_fields_set,
        socket_given="tmux_socket" in settings.model_fields_set,
    )
