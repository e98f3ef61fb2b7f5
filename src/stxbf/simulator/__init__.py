"""A seeded simulation of Hiro's Stacks API for tests, benchmarks and demos.

The chain
  ledger.py      the chain's compact arrays and every query over them (ranges, truth, pages)
  paging.py      paging through sorted index arrays without merging them
  chain.py       Chain: generation (history, growth) and the anomalies of the real chain
  tx_parts.py    fixed JSON pieces, contract vocabulary, address and time formats
  render.py      a tx as Hiro's JSON (independent of stxbf.models, on purpose)
The handler
  responses.py   Response and Action (what the front ends carry out), Fastify's error shapes
  query.py       query parameters checked as the API's schemas check them
  controls.py    SimControls: run-time state, in-process controls, stats
  api.py         SimApi: the request pipeline (outage, key, limits, faults) and route table
  v1.py          /extended/v1/tx and /extended/v1/status
  v3.py          the v2/v3 route table; v3_transactions.py and v2_blocks.py build the answers
  admin.py       the /_sim/ control routes
  ratelimit.py   sliding windows in cost units, a monthly quota, the rate-limit header styles
  config.py      SimConfig: every knob, shared by the CLI, the server and tests
The front ends
  listener.py    loopback HTTP/1.1 (asyncio Protocol), can pause listening for an outage
  server.py      run_in_thread() for tests, serve_forever() for the CLI
  transport.py   httpx front end: SimTransport, same handler, no sockets
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
