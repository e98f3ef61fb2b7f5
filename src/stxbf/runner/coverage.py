"""Which parts of the range are stored and proven: what the planner's gaps are made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stxbf.state import day_coverage


@dataclass(frozen=True, slots=True)
class Span:
    """A window of burn-block time [start, end] (inclusive) and the API's total for it."""

    start: int
    end: int
    api_total: int = 0

    @property
    def bounds(self) -> tuple[int, int]:
        return self.start, self.end

    def overlaps(self, start: int, end: int) -> bool:
        return self.end >= start and self.start <= end


def gaps_between(
    range_start: int, range_end: int, covered: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The parts of [range_start, range_end] not inside any covered (inclusive) interval."""
    gaps: list[tuple[int, int]] = []
    cursor = range_start
    for start, end in sorted(covered):
        if end < cursor:
            continue
        if start > range_end:
            break
        if start > cursor:
            gaps.append((cursor, min(start - 1, range_end)))
        cursor = max(cursor, end + 1)
    if cursor <= range_end:
        gaps.append((cursor, range_end))
    return gaps


class Coverage:
    """The spans proven (`verified`) or fetched and still settling (`open`) in this run.

    A committed window replaces every span it overlaps, so a window fetched again (its rows
    moved, or it was incomplete) never counts twice.
    """

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._spans = list(spans)

    def __len__(self) -> int:
        return len(self._spans)

    def bounds(self) -> list[tuple[int, int]]:
        return [span.bounds for span in self._spans]

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        return gaps_between(start, end, self.bounds())

    def uncovered_seconds(self, start: int, end: int) -> int:
        """How much of [start, end] no span covers yet."""
        return sum(gap_end - gap_start + 1 for gap_start, gap_end in self.gaps(start, end))

    def commit(self, start: int, end: int, replacement: Span | None) -> None:
        """The window [start, end] was committed: it supersedes what it overlaps."""
        self._spans = [span for span in self._spans if not span.overlaps(start, end)]
        if replacement is not None:
            self._spans.append(replacement)

    def add(self, span: Span) -> None:
        self._spans.append(span)

    def forget(self, bounds: Iterable[tuple[int, int]]) -> None:
        forgotten = set(bounds)
        self._spans = [span for span in self._spans if span.bounds not in forgotten]

    def api_total_within(self, start: int, end: int) -> int:
        """The API's totals of the spans that touch [start, end]: what is done of the range."""
        return sum(span.api_total for span in self._spans if span.overlaps(start, end))

    def days(self, range_start: int, range_end: int) -> list[float]:
        return day_coverage(self.bounds(), range_start, range_end)
