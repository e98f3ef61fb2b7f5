"""This module tells an operator what DuckDB's errors mean: a damaged file, or one statement
that failed.

Every public `Store` method ends in a `StoreError` (or its `DatabaseCorrupt`) naming the file, so
a command prints one line and its exit code says which of the two it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import duckdb

from stxbf.errors import DatabaseCorrupt, StoreError

# What DuckDB says about a file it cannot trust: a block whose checksum fails (bytes overwritten),
# a file shorter than its header says (truncated), a header that is not DuckDB's.
_DAMAGE_MARKERS = (
    "corrupt database file",
    "could not read enough bytes",
    "not a valid duckdb database",
    "checksum",
)


def describe(exc: BaseException) -> str:
    """Return the first line of an error's text, since DuckDB's messages go on with context
    nobody needs."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def is_damage(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _DAMAGE_MARKERS)


def damaged_hint(path: Path | None) -> str:
    """Say what to do with a file DuckDB cannot read: nothing in it can be trusted or repaired."""
    where = path if path is not None else "the database"
    return (
        f"move it aside (mv {where} {where}.damaged); `stxbf run` then starts a new database "
        "and fetches every window again"
    )


def damaged(path: Path | None, exc: BaseException) -> DatabaseCorrupt:
    return DatabaseCorrupt(f"database {path} is damaged: {describe(exc)}", hint=damaged_hint(path))


def store_error(path: Path | None, exc: BaseException, doing: str = "") -> StoreError:
    """Return the error to raise for `exc`: `DatabaseCorrupt` when its text says the file is
    damaged, else a `StoreError`.

    `doing` says what failed ("cannot write to", "cannot open"); without it the line names only
    the database.
    """
    if is_damage(exc):
        return damaged(path, exc)
    subject = f"{doing} database" if doing else "database"
    return StoreError(f"{subject} {path}: {describe(exc)}")


class _Located(Protocol):
    path: Path | None


F = TypeVar("F", bound=Callable[..., Any])


def as_store_error(
    doing: str = "", catch: tuple[type[BaseException], ...] = (duckdb.Error,)
) -> Callable[[F], F]:
    """Turn a method's DuckDB errors (a failed spill, an invalidated database) into a
    `StoreError` of one line that names the file."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: _Located, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except catch as exc:
                raise store_error(self.path, exc, doing) from None

        return cast(F, wrapper)

    return decorate
