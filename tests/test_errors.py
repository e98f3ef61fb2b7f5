"""The error tree drawn in `stxbf.errors`' docstring is the tree the classes make."""

from __future__ import annotations

import inspect
import re

from stxbf import errors


def drawn_parents() -> dict[str, str]:
    """Each class the docstring draws, with the class drawn above it (by indentation)."""
    parents: dict[str, str] = {}
    above: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*)(?:[├└]── )?([A-Z]\w+(?:Error|\w*))\b", line)
        if not match or not hasattr(errors, match.group(2)):
            continue
        depth, name = match.start(2), match.group(2)
        while above and above[-1][0] >= depth:
            above.pop()
        if above:
            parents[name] = above[-1][1]
        above.append((depth, name))
    return parents


def test_the_drawn_error_tree_is_the_class_tree() -> None:
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.StxbfError) and cls is not errors.StxbfError
    }
    drawn = drawn_parents()
    assert set(drawn) == set(classes), "every error class is drawn, and only those"
    assert {name: cls.__bases__[0].__name__ for name, cls in classes.items()} == drawn
