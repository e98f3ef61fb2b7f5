"""A seeded simulation of Hiro's Stacks API (`GET /extended/v1/tx`) for tests, benchmarks and demos.

chain.py      the seeded chain: tenures → blocks → txs, compact arrays, ground truth
render.py     a tx as Hiro's JSON (independent of stxbf.models, on purpose)
api.py        SimApi: one pure handler (paging, validation, audit, faults, /_sim/ control)
ratelimit.py  sliding windows in cost units, a monthly quota, and the rate-limit header styles
server.py     loopback HTTP/1.1 front end: run_in_thread() for tests, serve_forever() for CLI
transport.py  httpx front end: SimTransport, same handler, no sockets
"""

from stxbf.simulator.api import SimApi
from stxbf.simulator.chain import Chain
from stxbf.simulator.config import (
    FAULT_KINDS,
    OUTAGE_MODES,
    V1_STATES,
    SimConfig,
    parse_fault_kinds,
)
from stxbf.simulator.ledger import KINDS
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
    "run_in_thread",
    "serve_forever",
]
