"""Every failure stxbf knows how to explain, and the exit code each one ends a command with.

    StxbfError
    ├── ConfigError            bad settings or arguments           exit 2
    ├── LockHeld               another run owns the data           exit 4
    ├── FetchError             the API could not be used           exit 1
    │   ├── ApiUnreachable     DNS, refused, timed out for too long
    │   ├── ApiRejected        401/403/404/400: a request we must not repeat
    │   ├── ApiGone            410: the v1 route is switched off
    │   └── QuotaExhausted     a quota ran out until a stated time   exit 75
    │   └── ApiNotStacks       the answer is not the Stacks API's shape
    ├── StoreError             the database cannot be used         exit 1
    │   ├── DatabaseCorrupt    not a DuckDB file, or not ours
    │   ├── DatabaseBusy       another process has the file open
    │   └── SchemaTooNew       written by a newer stxbf
    └── OpsError               tmux / inhibitor / filesystem trouble exit 1
        └── TmuxMissing        tmux is not installed

Messages are one line, written for the operator, and never contain the API key.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `stxbf run` (and every other command's errors). Documented in docs/cli.md."""

    OK = 0  # target reached / command succeeded
    ERROR = 1  # the run failed (API, database, filesystem)
    USAGE = 2  # bad arguments or settings
    INCOMPLETE = 3  # stopped before the target: page budget or iterations exhausted
    LOCKED = 4  # another `stxbf run` holds the lock on this data
    RATE_LIMITED = 75  # a quota ran out (monthly, or a retry-after past --give-up-after)
    INTERRUPTED = 130  # SIGINT / SIGTERM: completed windows were committed


class StxbfError(Exception):
    """Base of every error stxbf reports as a one-line message."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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


class ApiRejected(FetchError):
    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ApiGone(ApiRejected):
    pass


class ApiNotStacks(FetchError):
    pass


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
    pass


class DatabaseBusy(StoreError):
    """Another process has the DuckDB file open (DuckDB allows one)."""


class SchemaTooNew(StoreError):
    pass


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
