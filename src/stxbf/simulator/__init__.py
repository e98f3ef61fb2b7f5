"""A seeded simulation of Hiro's Stacks API, for tests, benchmarks and `stxbf sim serve`.

One request goes through few modules: a front end (`server.py` over loopback HTTP, or
`transport.py` inside httpx) hands it to `SimApi.handle` (`api.py`), whose route table sends it to
`v1.py` or `v3.py`, which read the `Chain` (`chain.py`) and write its transactions with the
`Renderer` (`render.py`).

The modules:
  chain.py       Chain: the chain's compact arrays, their growth and anomalies, every read over them
  paging.py      paging through sorted index arrays without merging them (for Chain.select)
  render.py      a transaction as Hiro's JSON (independent of stxbf.models, on purpose)
  api.py         SimApi: the run-time state, the request pipeline, the route table, the controls
  v1.py          `/extended/v1/tx` with its page cache, and `/extended/v1/status`
  v3.py          `/extended/v3/transactions` and the `/extended/v2` block and burn-block routes
  admin.py       the `/_sim/` control routes
  query.py       query parameters checked as the API's schemas check them
  responses.py   Response and Action (what the front ends carry out), Fastify's error shapes
  ratelimit.py   sliding windows in cost units, a monthly quota, the rate-limit header styles
  config.py      SimConfig: every knob, shared by the CLI, the server and tests
  server.py      loopback HTTP/1.1: run_in_thread() for tests, serve_forever() for the CLI
  transport.py   SimTransport: the same handler inside httpx, without sockets
"""

from stxbf.simulator.api import SimApi
from stxbf.simulator.chain import KINDS, Chain
from stxbf.simulator.config import (
    FAULT_KINDS,
    OUTAGE_MODES,
    V1_STATES,
    SimConfig,
    parse_fault_kinds,
    parse_instant,
)
from stxbf.simulator.ratelimit import GENERIC_WINDOWS, RATE_HEADER_STYLES, RESET_FORMATS
from stxbf.simulator.responses import Action, Response
from stxbf.simulator.server import SimServer, run_in_thread, serve_forever
from stxbf.simulator.transport import SimTransport

__all__ = [
    "FAULT_KINDS",
    "GENERIC_WINDOWS",
    "KINDS",
    "OUTAGE_MODES",
    "RATE_HEADER_STYLES",
    "RESET_FORMATS",
    "V1_STATES",
    "Action",
    "Chain",
    "Response",
    "SimApi",
    "SimConfig",
    "SimServer",
    "SimTransport",
    "parse_fault_kinds",
    "parse_instant",
    "run_in_thread",
    "serve_forever",
]
