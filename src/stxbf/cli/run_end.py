"""How a foreground run ends: stop signals, a hang-up, and the log's last line for the run.

The first SIGINT/SIGTERM/SIGHUP stops the run cleanly (completed windows are committed); a second
one stops it at once. Whatever the way out, the log ends with the exit code and its reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import Any

from stxbf.cli.common import err_console
from stxbf.cli.views import LiveView, PlainView

log = logging.getLogger("stxbf.cli")


def ending_of(exc: BaseException) -> tuple[int, str]:
    """The exit code and reason main() will report for an exception that ends the run."""
    from stxbf.codes import ExitCode
    from stxbf.errors import LockHeld, StxbfError

    if isinstance(exc, LockHeld):
        return int(exc.exit_code), f"refused: {exc.message}"
    if isinstance(exc, StxbfError):  # the hint too: whoever reads the log has no screen
        return int(exc.exit_code), f"{exc.message}; hint: {exc.hint}" if exc.hint else exc.message
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED), "interrupted"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else int(ExitCode.ERROR)
        return code, "exited"
    if isinstance(exc, Exception):
        log.error("unexpected error", exc_info=True)
        mark_logged(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    return int(ExitCode.ERROR), f"internal error: {type(exc).__name__}: {first}"


def mark_logged(exc: BaseException) -> None:
    """Tell main() this exception's traceback is already in the log (above the run's end line)."""
    with contextlib.suppress(AttributeError):
        exc.stxbf_logged = True  # type: ignore[attr-defined]


def log_run_end(code: int, reason: str, console_handler: logging.Handler | None = None) -> None:
    """The log's last line for this run: exit code and reason, whatever the way out.

    The screen gets its own report (render_report, or main's error line), so the console handler
    is detached first: the end line is for the log file only.
    """
    from stxbf.codes import ExitCode

    if console_handler is not None:
        logging.getLogger("stxbf").removeHandler(console_handler)
    try:
        label = ExitCode(code).name.lower()
    except ValueError:
        label = "unknown"
    level = {0: logging.INFO, 3: logging.INFO, 4: logging.WARNING, 130: logging.WARNING}.get(
        code, logging.ERROR
    )
    log.log(level, "stxbf run (pid %d) ended: exit %d (%s): %s", os.getpid(), code, label, reason)


_signals_seen = 0


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGINT and SIGTERM; and SIGHUP (tmux kill-session, a closed SSH terminal) unless it is
    ignored, as `nohup stxbf run &` asks: then a hang-up must not stop the run."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return signals
    return (*signals, signal.SIGHUP)


def on_signal(runner: Any, name: str) -> None:
    global _signals_seen
    _signals_seen += 1
    if name == "SIGHUP":
        _leave_the_terminal()
    if _signals_seen > 1:
        err_console.print(f"stxbf: second {name}: stopping now (committed windows are safe)")
        log_run_end(130, f"second {name}: stopped at once (committed windows are safe)")
        os._exit(130)
    runner.request_stop(name)


_hung_up = False


def _leave_the_terminal() -> None:
    """After a hang-up the terminal is gone: writing to it would fail (EIO) and turn a clean stop
    into an error. The screen output goes nowhere from now on; the log file keeps everything."""
    global _hung_up
    _hung_up = True
    devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = devnull


def stop_view(view: LiveView | PlainView) -> None:
    try:
        view.stop()
    except OSError:
        if not _hung_up:
            raise
    if _hung_up:  # the live display put the (dead) terminal back as stdout
        _leave_the_terminal()
