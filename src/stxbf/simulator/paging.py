"""Pages through sorted index arrays are found without building their merge.

A `type` filter or `sort_by=fee` page is a slice of several sorted arrays merged in index order
(one per tx kind, or per (kind, fee) bucket). These functions find that slice by counting and
bisecting, so a deep page costs O(log n) per array instead of a walk from the first result.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Sequence

_Bounds = list[tuple["array[int]", int, int]]


def page_segments(
    segments: Sequence[Sequence[array[int]]],
    lo: int,
    hi: int,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[int]]:
    """Return the total and one page of segments taken in order.

    Each segment is a list of sorted arrays whose values are merged in index order.
    """
    counted: list[tuple[_Bounds, int]] = []
    total = 0
    for seg in segments:
        bounds = [(arr, bisect_left(arr, lo), bisect_left(arr, hi)) for arr in seg]
        count = sum(b - a for _, a, b in bounds)
        if count:
            counted.append((bounds, count))
            total += count
    out: list[int] = []
    skip = offset
    for bounds, count in counted:
        if len(out) >= limit:
            break
        if skip >= count:
            skip -= count
            continue
        out.extend(_take(bounds, skip, limit - len(out), descending))
        skip = 0
    return total, out


def _take(bounds: _Bounds, skip: int, take: int, descending: bool) -> list[int]:
    """Return `take` merged values after skipping `skip`, ascending or descending.

    It bisects for the value that exactly `skip` values precede, instead of merging from
    the start, so a deep page costs no more than the first.
    """
    live = [(arr, a, b) for arr, a, b in bounds if b > a]
    if len(live) == 1:
        arr, a, b = live[0]
        if descending:
            end = b - skip
            return list(reversed(arr[max(a, end - take) : end]))
        return list(arr[a + skip : min(b, a + skip + take)])
    # Binary-search the value v at which exactly `skip` elements precede (values are unique).
    low = min(arr[a] for arr, a, _ in live)
    high = max(arr[b - 1] for arr, _, b in live) + 1
    if descending:
        # smallest v with count(x >= v) <= skip
        while low < high:
            mid = (low + high) // 2
            if sum(b - bisect_left(arr, mid, a, b) for arr, a, b in live) <= skip:
                high = mid
            else:
                low = mid + 1
        parts = []
        for arr, a, b in live:
            end = bisect_left(arr, low, a, b)
            parts.append(list(reversed(arr[max(a, end - take) : end])))
        return list(heapq.merge(*parts, reverse=True))[:take]
    # largest v with count(x < v) <= skip
    while low < high:
        mid = (low + high + 1) // 2
        if sum(bisect_left(arr, mid, a, b) - a for arr, a, b in live) <= skip:
            low = mid
        else:
            high = mid - 1
    parts = []
    for arr, a, b in live:
        start = bisect_left(arr, low, a, b)
        parts.append(list(arr[start : min(b, start + take)]))
    return list(heapq.merge(*parts))[:take]
