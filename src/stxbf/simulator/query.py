"""Query-string parameters are checked here the way the real API's schemas (TypeBox, and Ajv
with coerceTypes) check them, with the same messages; a bad one raises `BadRequest`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import parse_qsl

from stxbf.simulator.responses import BadRequest


def int_param(
    params: Mapping[str, str],
    name: str,
    default: int | None,
    *,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> int | None:
    """Read an integer query parameter as Ajv (with coerceTypes) does, with its messages."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise BadRequest(f"querystring/{name} must be integer") from None
        value = int(number)
    if minimum is not None and value < minimum:
        raise BadRequest(f"querystring/{name} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"querystring/{name} must be <= {maximum}")
    return value


def bool_param(params: Mapping[str, str], name: str) -> bool:
    """Read a boolean query parameter: Ajv coerces only the strings "true" and "false"."""
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise BadRequest(f"querystring/{name} must be boolean")
    return raw == "true"


def enum_error(path: str, allowed: tuple[str, ...]) -> BadRequest:
    """Return Ajv's error for a value outside a TypeBox Type.Enum.

    Type.Enum is an anyOf of constants, so Ajv reports each branch, then the anyOf.
    """
    branches = [f"querystring/{path} must be equal to constant"] * len(allowed)
    return BadRequest(", ".join([*branches, f"querystring/{path} must match a schema in anyOf"]))


def all_values(query: str, name: str) -> list[str]:
    """Return every value of a repeated parameter (`type=a&type=b`), in order."""
    return [value for key, value in parse_qsl(query, keep_blank_values=True) if key == name]
