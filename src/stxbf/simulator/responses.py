"""A route hands the front ends a `Response`, with an `Action` for the faults that need a
transport; this module also writes the error answers of Fastify, the framework the real API runs
on.

Every route module builds its answers here, so the front ends and the routes share one vocabulary
and no route module needs the handler that calls it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

JSON_TYPE = "application/json; charset=utf-8"


class Action(enum.Enum):
    """Say what the front end does besides (or instead of) writing the response."""

    SEND = "send"
    DROP = "drop"  # close the connection, no response
    STALL = "stall"  # say nothing for `stall_seconds` (or until the client leaves), then close
    TRUNCATE = "truncate"  # full Content-Length, part of the body, then close
    REFUSE = "refuse"  # outage: close the connection; the server also stops listening


@dataclass
class Response:
    """Carry a route's answer to the front end, with what the front end must do with it.

    `delay` is latency the front end waits out without blocking other requests; `action`,
    `stall_seconds` and `pause_listening` are faults only a transport can carry out.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    action: Action = Action.SEND
    delay: float = 0.0  # seconds to wait before acting (latency), without blocking others
    fault: str | None = None
    stall_seconds: float = 0.0
    pause_listening: float = 0.0  # set by POST /_sim/outage in refuse mode
    close: bool = False
    page_results: int | None = None  # a served tx-list page: its result count (for the stats)


def json_response(
    status: int, payload: Any, extra: list[tuple[str, str]] | None = None
) -> Response:
    headers = [("content-type", JSON_TYPE), *(extra or [])]
    return Response(status, headers, orjson.dumps(payload))


def error(status: int, message: str) -> Response:
    """Answer with the simulator's own plain error shape.

    Limits, keys, outages and injected faults use it; the routes use Fastify's shapes.
    """
    return json_response(status, {"error": message})


def fastify_error(status: int, payload: dict[str, Any]) -> Response:
    """Answer as Fastify serialises a thrown error: `statusCode` first, then the fields."""
    return json_response(status, {"statusCode": status, **payload})


def bad_request(message: str) -> Response:
    """Answer as Fastify does a request its (TypeBox and Ajv) schema rejects.

    Fastify 5 serialises the error as {statusCode, code, error, message}; its default
    schemaErrorFormatter writes `<dataVar><instancePath> <ajv message>`, e.g.
    `querystring/limit must be <= 50` (stacks-blockchain-api
    tests/api/datastore/other.test.ts).
    """
    return fastify_error(
        400, {"code": "FST_ERR_VALIDATION", "error": "Bad Request", "message": message}
    )


def route_not_found(method: str, path: str) -> Response:
    """Answer as Fastify's default 404 does for a route it does not have (its field order)."""
    payload = {
        "message": f"Route {method}:{path} not found",
        "error": "Not Found",
        "statusCode": 404,
    }
    return json_response(404, payload)


class RouteError(Exception):
    """Signal an error from a route; `response()` is the answer Fastify would give for it."""

    def response(self) -> Response:
        raise NotImplementedError


class BadRequest(RouteError):
    """Signal a request the schema rejects: a 400 FST_ERR_VALIDATION with this message."""

    def response(self) -> Response:
        return bad_request(str(self))


class Missing(RouteError):
    """Signal a thing the route looked up and did not find: a 404 with this message."""

    def response(self) -> Response:
        return fastify_error(404, {"error": "Not Found", "message": str(self)})


class DatabaseError(RouteError):
    """Signal a PostgreSQL error, which Fastify passes on as a 500 with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def response(self) -> Response:
        payload = {"code": self.code, "error": "Internal Server Error", "message": str(self)}
        return fastify_error(500, payload)
