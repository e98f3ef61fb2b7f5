"""The one driver of `stxbf run` and `stxbf verify`, the two commands that work on the database in
the foreground.

Both build the runner's parameters from the settings, make the data directory the user's alone,
log to its log file, and run the `Runner` on a fresh event loop. The first SIGINT, SIGTERM or
SIGHUP stops the work cleanly (completed windows are committed) and a second one ends the process
at once. Whatever the way out, the log's last line for the command names the exit code and why:
`stxbf run (pid N) ended: exit C (name): reason`, and the same for `stxbf verify`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from stxbf.cli.common import err_console

if TYPE_CHECKING:
    from stxbf.runner import Runner, RunParams
    from stxbf.settings import Settings
    from stxbf.snapshot import ProgressSnapshot

log = logging.getLogger("stxbf.cli")


class Report(Protocol):
    """What the driver reads of the report a command's work returns, to log how it ended."""

    @property
    def exit_code(self) -> int: ...

    @property
    def message(self) -> str: ...


R = TypeVar("R", bound=Report)


class View(Protocol):
    """What a command shows while it works: `stxbf run`'s live panel or its plain line."""

    def log_handler(self) -> logging.Handler: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def update(self, snap: ProgressSnapshot) -> None: ...


def params_from(settings: Settings, *, verify: bool = False) -> RunParams:
    """Translate the settings into the runner's parameters, refusing a key bound for plain HTTP."""
    from stxbf.runner import RunParams
    from stxbf.settings import check_key_transport

    check_key_transport(settings)
    return RunParams(
        api_url=settings.api_url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        paths=settings.paths,
        target_days=settings.target_days,
        max_pages=settings.max_pages,
        max_iterations=settings.max_iterations,
        max_requests=settings.max_requests,
        concurrency=settings.concurrency,
        rpm=settings.rpm,
        request_timeout=settings.request_timeout,
        give_up_after=settings.give_up_after,
        restarts=supervisor_restarts(),
        settle_hours=settings.settle_hours,
        source=settings.source,
        verify=verify,
    )


def supervisor_restarts() -> int:
    """Return how many times the supervisor has started this run again (0 when unsupervised)."""
    from stxbf.session.supervise import RESTARTS_ENV

    try:
        return max(0, int(os.environ.get(RESTARTS_ENV, "0")))
    except ValueError:
        return 0


def stop_signals() -> tuple[signal.Signals, ...]:
    """Return the signals that stop the work: SIGINT, SIGTERM, and SIGHUP (what `tmux
    kill-session` and a closed SSH terminal send) unless it is ignored, as `nohup` asks."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return signals
    return (*signals, signal.SIGHUP)


class Driver:
    """Runs one command's work on the `Runner` in the foreground and logs how it ended.

    `command` names the command in the log's start and end lines (`run`, `verify`). `view` draws
    the run's progress on the screen and gives the log a console handler; without one (`verify`),
    only the log file gets the records.
    """

    def __init__(self, command: str, view: View | None = None) -> None:
        self.command = command
        self.view = view
        self.console_handler: logging.Handler | None = None
        self.signals_seen = 0
        self.hung_up = False

    def drive(
        self,
        settings: Settings,
        params: RunParams,
        work: Callable[[Runner], Awaitable[R]],
        *,
        started: str,
        transport: Any = None,
    ) -> R:
        """Set up the data directory, the log and the signals, then await `work(runner)` on a
        fresh event loop. `started` completes the log's start line (what and where from)."""
        import asyncio

        from stxbf.logs import configure_logging
        from stxbf.paths import prepare_home
        from stxbf.runner import Runner

        os.umask(0o077)  # everything stxbf creates in its data dir is the user's alone
        prepare_home(settings.home)
        secret = [params.api_key] if params.api_key else []
        self.console_handler = self.view.log_handler() if self.view is not None else None
        handler = self.console_handler
        configure_logging(
            settings.log_path, level=settings.log_level, console=handler, secrets=secret
        )
        log.info("stxbf %s (pid %d) started: %s", self.command, os.getpid(), started)
        try:
            runner = Runner(params, transport=transport, view=self.view)

            async def main() -> R:
                loop = asyncio.get_running_loop()
                signals = stop_signals()
                for signum in signals:
                    name = signal.Signals(signum).name
                    loop.add_signal_handler(signum, self.on_signal, runner, name)
                try:
                    return await work(runner)
                finally:
                    for signum in signals:
                        loop.remove_signal_handler(signum)

            if self.view is not None:
                self.view.start()
            try:
                report = asyncio.run(main())
            finally:
                self._stop_view()
        except BaseException as exc:
            self.log_end(*ending_of(exc))
            raise
        self.log_end(int(report.exit_code), report.message)
        return report

    def on_signal(self, runner: Any, name: str) -> None:
        """Ask the runner to stop on the first signal; end the process at once on the second."""
        self.signals_seen += 1
        if name == "SIGHUP":
            self._leave_the_terminal()
        if self.signals_seen > 1:
            err_console.print(f"stxbf: second {name}: stopping now (committed windows are safe)")
            self.log_end(130, f"second {name}: stopped at once (committed windows are safe)")
            os._exit(130)
        runner.request_stop(name)

    def log_end(self, code: int, reason: str) -> None:
        """Write the log's last line for this command: its exit code and reason.

        The screen gets its own report (the command's, or main's error line), so the console
        handler is detached first and the end line goes to the log file only.
        """
        from stxbf.codes import ExitCode

        if self.console_handler is not None:
            logging.getLogger("stxbf").removeHandler(self.console_handler)
        try:
            label = ExitCode(code).name.lower()
        except ValueError:
            label = "unknown"
        level = {0: logging.INFO, 3: logging.INFO, 4: logging.WARNING, 130: logging.WARNING}.get(
            code, logging.ERROR
        )
        log.log(
            level,
            "stxbf %s (pid %d) ended: exit %d (%s): %s",
            self.command,
            os.getpid(),
            code,
            label,
            reason,
        )

    def _leave_the_terminal(self) -> None:
        """Send the screen output nowhere from now on, because after a hang-up the terminal is
        gone: writing to it would fail (EIO) and turn a clean stop into an error. The log file
        keeps everything."""
        self.hung_up = True
        devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - open until the end
        sys.stdout = sys.stderr = devnull

    def _stop_view(self) -> None:
        if self.view is None:
            return
        try:
            self.view.stop()
        except OSError:
            if not self.hung_up:
                raise
        if self.hung_up:  # the live display put the (dead) terminal back as stdout
            self._leave_the_terminal()


def ending_of(exc: BaseException) -> tuple[int, str]:
    """Return the exit code and reason that main() will report for an exception that ends the
    command, so that the log's end line agrees with the screen."""
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
    """Tell main() that this exception's traceback is already in the log, above the end line."""
    with contextlib.suppress(AttributeError):
        exc.stxbf_logged = True  # type: ignore[attr-defined]
