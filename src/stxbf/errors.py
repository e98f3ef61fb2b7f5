"""Define every failure stxbf knows how to explain, and the exit code each one ends a command with.

    StxbfError
    ├── ConfigError            bad settings or arguments           exit 2
    ├── LockHeld               another run owns the data           exit 4
    ├── FetchError             the API could not be used           exit 1
    │   ├── ApiUnreachable     DNS, refused, timed out for too long
    │   ├── RequestBudgetSpent --max-requests reached               exit 3
    │   ├── ApiRejected        401/403/404/400: a request we must not repeat
    │   │   └── ApiGone        410: the v1 route is switched off
    │   ├── ApiNotStacks       the answer is not the Stacks API's shape
    │   └── QuotaExhausted     a quota ran out until a stated time   exit 75
    ├── StoreError             the database cannot be used         exit 1
    │   ├── DatabaseCorrupt    damaged, truncated, empty, or not ours exit 65
    │   ├── DatabaseEmpty      a DuckDB file no run has written to yet
    │   ├── DatabaseBusy       another process has the file open
    │   └── SchemaTooNew       written by a newer stxbf              exit 65
    └── OpsError               tmux / inhibitor / filesystem trouble exit 1
        └── TmuxMissing        tmux is not installed

Each message is one line, written for the operator, and never contains the API key. The codes
themselves, and every command's table of them, live in `stxbf.codes`.
"""

from __future__ import annotations

from stxbf.codes import ExitCode


class StxbfError(Exception):
    """Report a failure as a one-line message, an optional hint and an exit code.

    Every error stxbf reports derives from this class; the CLI prints the message instead of a
    traceback and ends the command with `exit_code`.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(
        self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:  # the same failure may mean another code to another command
            self.exit_code = exit_code


class ConfigError(StxbfError):
    """Raised when a setting or an argument is wrong; the command ends with the usage code."""

    exit_code = ExitCode.USAGE


class LockHeld(StxbfError):
    """Raised when another run holds the lock on this data (export: or on its directory).

    `pid` names the holder when it is known.
    """

    exit_code = ExitCode.LOCKED

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class FetchError(StxbfError):
    """Raised when the API cannot be used; its subclasses say why."""


class ApiUnreachable(FetchError):
    """Raised when the API cannot be reached: DNS fails, the connection is refused, or requests
    time out for too long."""


class RequestBudgetSpent(FetchError):
    """Raised when `--max-requests` requests were sent; the run stops with its completed windows
    committed."""

    exit_code = ExitCode.INCOMPLETE


class ApiRejected(FetchError):
    """Raised when the API answers 401, 403, 404 or 400: a request we must not repeat.

    `status` holds the HTTP status of the answer when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ApiGone(ApiRejected):
    """Raised when the API answers 410 because the v1 route is switched off."""


class ApiNotStacks(FetchError):
    """Raised when an answer does not have the Stacks API's shape.

    `missing_route` names a path that answered 404, which points to an older or newer API.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, missing_route: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.missing_route = missing_route  # a 404 on this path (an older or newer API)


class QuotaExhausted(FetchError):
    """Raised when a quota ran out and the API will not serve us until `resets_at`.

    `resets_at` is a unix time, or None when the API did not state one.
    """

    exit_code = ExitCode.RATE_LIMITED

    def __init__(
        self, message: str, *, quota: str, resets_at: float | None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.quota = quota  # "month" | "retry-after" | ...
        self.resets_at = resets_at


class StoreError(StxbfError):
    """Raised when the database cannot be used; its subclasses say why."""


class DatabaseCorrupt(StoreError):
    """Raised when the file cannot be read as an stxbf database; `hint` says what to do with it.

    The file may be damaged, truncated, empty or not ours.
    """

    exit_code = ExitCode.DATABASE


class DatabaseEmpty(StoreError):
    """Raised when a DuckDB file has no stxbf tables yet: it was created but never written.

    Only read-only opens raise it.
    """


class DatabaseBusy(StoreError):
    """Raised when another process has the DuckDB file open, since DuckDB allows only one."""


class SchemaTooNew(StoreError):
    """Raised when the database was written by a newer stxbf than this one."""

    exit_code = ExitCode.DATABASE


class OpsError(StxbfError):
    """Raised on trouble with tmux, the sleep inhibitor or the filesystem."""


class TmuxMissing(OpsError):
    """Raised when tmux is not installed."""


def retryable(exc: BaseException) -> bool:
    """Return whether a later run could succeed where this one failed, with nothing changed.

    An outage (unreachable, 5xx until give-up) and a used-up quota are retryable. A rejected
    request (401/403/404/400, 410 gone), an answer that is not the Stacks API, the database, the
    lock and bad settings are not: repeating them changes nothing.
    """
    if isinstance(exc, (ApiRejected, ApiNotStacks)):
        return False
    return isinstance(exc, FetchError)
