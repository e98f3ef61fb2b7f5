"""The fixed pieces a rendered transaction is assembled from, and how addresses and times look.

Pre-escaped JSON fragments (outcomes, execution-cost tails), the contract vocabulary a chain's
contracts and calls are drawn from, c32-looking addresses, and Hiro's ISO timestamps. Building
them once at import keeps rendering to one f-string per transaction (`render.py`).
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import orjson

C32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
N_SENDERS = (
    20011  # prime; sender = i % N_SENDERS, nonce = i // N_SENDERS + base: (sender, nonce) unique
)
WORDS = (
    "amm-pool",
    "sbtc-token",
    "stacking-dao",
    "bns-v2",
    "nft-marketplace",
    "velar-router",
    "alex-vault",
    "arkadiko-swap",
    "zest-borrow",
    "bitflow-stableswap",
    "pox-4-pool",
    "usda-token",
    "welsh-token",
    "leo-token",
    "granite-lending",
    "charisma-dex",
)
FUNCTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("swap-x-for-y", (("dx", "uint"), ("min-dy", "uint"))),
    ("swap-y-for-x", (("dy", "uint"), ("min-dx", "uint"))),
    ("transfer", (("amount", "uint"), ("recipient", "principal"))),
    ("deposit", (("amount", "uint"),)),
    ("withdraw", (("amount", "uint"),)),
    ("claim-rewards", (("cycle", "uint"),)),
    ("delegate-stx", (("amount-ustx", "uint"), ("delegate-to", "principal"))),
    ("mint", (("recipient", "principal"),)),
    ("list-asset", (("token-id", "uint"), ("price", "uint"))),
    ("add-liquidity", (("dx", "uint"), ("dy", "uint"))),
)
SOURCES = (
    ';; token\n(define-fungible-token token)\n(define-read-only (get-name) (ok "Token"))\n'
    "(define-public (transfer (amount uint) (sender principal) (recipient principal))\n"
    "  (begin (asserts! (is-eq tx-sender sender) (err u4))\n"
    "         (ft-transfer? token amount sender recipient)))\n",
    ";; counter\n(define-data-var counter uint u0)\n"
    "(define-public (increment) (ok (var-set counter (+ (var-get counter) u1))))\n"
    "(define-read-only (get-counter) (var-get counter))\n",
    ";; nft\n(define-non-fungible-token item uint)\n(define-data-var last-id uint u0)\n"
    "(define-public (mint (recipient principal))\n"
    "  (let ((id (+ (var-get last-id) u1)))\n"
    "    (try! (nft-mint? item id recipient)) (var-set last-id id) (ok id)))\n",
)
OK_TRUE = '{"hex":"0x0703","repr":"(ok true)"}'
ERR_RESULTS = (
    '{"hex":"0x080100000000000000000000000000000001","repr":"(err u1)"}',
    '{"hex":"0x080100000000000000000000000000000004","repr":"(err u4)"}',
    '{"hex":"0x0809","repr":"(err none)"}',
)
ZERO_MEMO = "0x" + "00" * 34
POWERS = tuple(10 ** (2 + k) for k in range(8))
# a miner's nonces per tenure it wins: tenure change, coinbase, then its tenure extends
MINER_NONCE_STRIDE = 4096
# time-based extends are the common kind; the per-dimension ones (SIP-034) are rarer
EXTEND_CAUSES = (
    *("extended",) * 5,
    "extended_runtime",
    "extended_read_count",
    "extended_read_length",
    "extended_write_count",
    "extended_write_length",
)


def _outcome(status: str, result: str) -> str:
    return f'"tx_status":"{status}","tx_result":{result},'


def _tail(events: int, read: int, read_len: int, runtime: int, write: int, write_len: int) -> str:
    return (
        f'"event_count":{events},"execution_cost_read_count":{read},'
        f'"execution_cost_read_length":{read_len},"execution_cost_runtime":{runtime},'
        f'"execution_cost_write_count":{write},"execution_cost_write_length":{write_len},'
    )


SUCCESS = _outcome("success", OK_TRUE)
# mined but skipped: the block marked it problematic (src/datastore/common.ts ProblematicSkipped)
PROBLEMATIC = _outcome("problematic_skipped", '{"hex":"0x0809","repr":"(err none)"}')
PROBLEMATIC_PER_MILLE = 2
FAILED_OUTCOMES = (
    _outcome("abort_by_response", ERR_RESULTS[0]),
    _outcome("abort_by_response", ERR_RESULTS[1]),
    _outcome("abort_by_post_condition", OK_TRUE),
    _outcome("abort_by_response", ERR_RESULTS[2]),
    _outcome("abort_by_post_condition", OK_TRUE),
)
TRANSFER_OK = _tail(1, 0, 0, 0, 0, 0)
TRANSFER_FAILED = _tail(0, 0, 0, 0, 0, 0)
DEPLOY_TAIL = _tail(0, 0, 0, 1_500_000, 9, 4_200)
# per read count: [failed (no events), then 0..11 events]
CALL_TAILS = tuple(
    tuple(
        _tail(events, reads, reads * 1731, reads * 29_113 + 4_000, reads // 3, reads * 97)
        for events in (0, *range(12))
    )
    for reads in range(5, 65)
)


def json_text(value: object) -> str:
    return orjson.dumps(value).decode()


_C32_TABLE = bytes(ord(C32[b % 32]) for b in range(256))


def address(rng: random.Random, prefix: str = "SP") -> str:
    """A c32-looking mainnet address (41 chars); not checksummed, nobody here verifies it."""
    return prefix + rng.randbytes(39).translate(_C32_TABLE).decode()


_MINUTES: dict[int, str] = {}
_SECONDS = tuple(f"{s:02d}.000Z" for s in range(60))


def iso(ts: int) -> str:
    """`2025-06-15T11:16:16.000Z`, as Hiro writes it (JavaScript's toISOString), fast."""
    minute, secs = divmod(ts, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        moment = datetime.fromtimestamp(minute * 60, tz=timezone.utc)
        prefix = moment.strftime("%Y-%m-%dT%H:%M:")
        if len(_MINUTES) > 200_000:
            _MINUTES.clear()
        _MINUTES[minute] = prefix
    return prefix + _SECONDS[secs]
