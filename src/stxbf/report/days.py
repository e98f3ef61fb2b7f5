"""The per-day coverage strip: one character per day of the range, oldest day first.

Days count as covered only when the engine verified them (a window's stored rows matched the
API's total for it), so a gap in the middle of the range shows as missing even when older days
exist. Days wholly before the chain's first transaction are provably empty: marked apart, and
counted as covered.
"""

from __future__ import annotations

from collections.abc import Sequence

from stxbf.codes import COVERING_STATES
from stxbf.snapshot import DAY, day_coverage

DAY_VERIFIED = "V"
DAY_PARTIAL = "p"
DAY_MISSING = "."
DAY_BEFORE_CHAIN = "-"


def day_states(
    verified: list[float],
    *,
    partial_hint: list[bool] | None,
    range_start: int,
    range_end: int,
    chain_start: int | None,
) -> str:
    """Return one character per day from the verified fraction of each day.

    `partial_hint` marks the days that incomplete windows touch. The days are the last
    `len(verified)` of the range, so only its end places them.
    """
    days = len(verified)
    first_day_start = range_end + 1 - days * DAY
    out = []
    for index, fraction in enumerate(verified):
        day_end = first_day_start + (index + 1) * DAY - 1
        if chain_start is not None and day_end < chain_start:
            out.append(DAY_BEFORE_CHAIN)
        elif fraction >= 1.0:
            out.append(DAY_VERIFIED)
        elif fraction > 0.0 or (partial_hint is not None and partial_hint[index]):
            out.append(DAY_PARTIAL)
        else:
            out.append(DAY_MISSING)
    return "".join(out)


def fit_days(values: list[float], days: int) -> list[float]:
    """Return the last `days` entries, padded at the oldest end with 0 (unknown is missing)."""
    if len(values) >= days:
        return values[len(values) - days :]
    return [0.0] * (days - len(values)) + values


def strip_from_fractions(
    fractions: Sequence[float], *, days: int, start: int, end: int, chain_start: int | None
) -> str:
    """Draw the strip from a progress snapshot's verified fraction of each day."""
    verified = fit_days([float(v) for v in fractions], days) if fractions else [0.0] * days
    return day_states(
        verified, partial_hint=None, range_start=start, range_end=end, chain_start=chain_start
    )


def strip_from_windows(
    windows: Sequence[tuple[int, int, str]],
    *,
    days: int,
    start: int,
    end: int,
    chain_start: int | None,
) -> str:
    """Draw the strip from the stored windows: covering ones verify days, others mark partial."""
    good = [(s, e) for s, e, kind in windows if kind in COVERING_STATES]
    bad = [(s, e) for s, e, kind in windows if kind not in COVERING_STATES]
    verified = fit_days(day_coverage(good, start, end), days)
    touched = [v > 0 for v in fit_days(day_coverage(bad, start, end), days)] if bad else None
    return day_states(
        verified, partial_hint=touched, range_start=start, range_end=end, chain_start=chain_start
    )
