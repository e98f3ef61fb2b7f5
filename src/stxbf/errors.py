"""Every failure stxbf knows how to explain, and the exit code each one ends a command with.

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

Messages are one line, written for the operator, and never contain the API key. The codes
themselves, and every command's table of them, live in `stxbf.codes`.
"""

from __future__ import annotations

from stxbf.codes import ExitCode


class StxbfError(Exception):
    """Base of every error stxbf reports as a one-line message."""

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
    exit_code = ExitCode.USAGE


class LockHeld(StxbfError):
    exit_code = ExitCode.LOCKED

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class FetchError(StxbfError):
    pass


class ApiUnreachable(FetchError):
    pass


class RequestBudgetSpent(FetchError):
    """`--max-requests` requests were sent: the run stops, its completed windows committed."""

    exit_code = ExitCode.INCOMPLETE


class ApiRejected(FetchError):
    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ApiGone(ApiRejected):
    pass


class ApiNotStacks(FetchError):
    def __init__(
        self, message: str, *, hint: str | None = None, missing_route: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.missing_route = missing_route  # a 404 on this path (an older or newer API)


class QuotaExhausted(FetchError):
    """The API will not serve us until `resets_at` (unix time, None = not stated)."""

    exit_code = ExitCode.RATE_LIMITED

    def __init__(
        self, message: str, *, quota: str, resets_at: float | None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.quota = quota  # "month" | "retry-after" | ...
        self.resets_at = resets_at


class StoreError(StxbfError):
    pass


class DatabaseCorrupt(StoreError):
    """The file cannot be read as an stxbf database; `hint` says what to do with it."""

    exit_code = ExitCode.DATABASE


class DatabaseEmpty(StoreError):
    """A DuckDB file without stxbf's tables yet: created, never written (read-only opens only)."""


class DatabaseBusy(StoreError):
    """Another process has the DuckDB file open (DuckDB allows one)."""


class SchemaTooNew(StoreError):
    exit_code = ExitCode.DATABASE


class OpsError(StxbfError):
    pass


class TmuxMissing(OpsError):
    pass


def retryable(exc: BaseException) -> bool:
    """Whether a later run could succeed where this one failed, with nothing changed.

    An outage (unreachable, 5xx until give-up) and a used-up quota pass; a rejected request
    (401/403/404/400, 410 gone), an answer that is not the Stacks API, the database, the lock and
    bad settings do not: repeating them changes nothing.
    """
    if isinstance(exc, (ApiRejected, ApiNotStacks)):
        return False
    return isinstance(exc, FetchError)
