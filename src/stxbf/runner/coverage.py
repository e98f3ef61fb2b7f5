"""`Coverage` tracks which parts of the range are stored and proven, and so which gaps the
planner hands to the engine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stxbf.snapshot import day_coverage


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
    """Return the parts of [range_start, range_end] outside every covered (inclusive) interval."""
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
    """Holds the spans this run knows as proven (`verified`) or fetched and still settling
    (`open`).

    A committed window replaces every span it overlaps, so a window fetched again (its rows
    moved, or it was incomplete) never counts twice.

    `reopened` are the `open` windows an earlier run left (the head, the settle period): they are
    gaps to fetch again, yet their rows are stored, so their days still count as covered (as
    `stxbf status` counts them from the database) until the window fetched again replaces them.
    Without that a new run showed fewer days than the last one had, with no word why.
    """

    def __init__(self, spans: Iterable[Span] = (), reopened: Iterable[Span] = ()) -> None:
        self._spans = list(spans)
        self._reopened = list(reopened)

    def __len__(self) -> int:
        return len(self._spans)

    def bounds(self) -> list[tuple[int, int]]:
        return [span.bounds for span in self._spans]

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        return gaps_between(start, end, self.bounds())

    def uncovered_seconds(self, start: int, end: int) -> int:
        """Return how many seconds of [start, end] no span covers yet."""
        return sum(gap_end - gap_start + 1 for gap_start, gap_end in self.gaps(start, end))

    def commit(self, start: int, end: int, replacement: Span | None) -> None:
        """Note that the window [start, end] was committed: it supersedes the spans it overlaps.

        Of a reopened window it supersedes only the part it covers; the rest still waits, stored.
        """
        self._spans = [span for span in self._spans if not span.overlaps(start, end)]
        if replacement is not None:
            self._spans.append(replacement)
        if self._reopened:
            self._reopened = [
                part for span in self._reopened for part in _outside(span, start, end)
            ]

    def add(self, span: Span) -> None:
        self._spans.append(span)

    def forget(self, bounds: Iterable[tuple[int, int]]) -> None:
        forgotten = set(bounds)
        self._spans = [span for span in self._spans if span.bounds not in forgotten]

    def api_total_within(self, start: int, end: int) -> int:
        """Sum the API's totals of the spans that touch [start, end]: what is done of the range."""
        return sum(span.api_total for span in self._spans if span.overlaps(start, end))

    def days(self, range_start: int, range_end: int) -> list[float]:
        """Return the share of each day stored, counting verified, open and reopened windows."""
        stored = self.bounds() + [span.bounds for span in self._reopened]
        return day_coverage(stored, range_start, range_end)


def _outside(span: Span, start: int, end: int) -> list[Span]:
    """Return the parts of `span` outside [start, end]."""
    if not span.overlaps(start, end):
        return [span]
    parts = []
    if span.start < start:
        parts.append(Span(span.start, start - 1))
    if span.end > end:
        parts.append(Span(end + 1, span.end))
    return parts
