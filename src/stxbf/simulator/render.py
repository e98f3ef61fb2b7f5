"""How a simulated transaction looks on the wire: Hiro's `/extended/v1/tx` JSON, written by hand.

Deliberately independent of `stxbf.models`: this module spells the API's shape the way Hiro does
(amounts and fee_rate as strings, tx_result as {hex, repr}, one payload object per tx_type), so a
drift between client and API fails a test instead of passing on both sides.

Speed matters (tens of thousands of transactions a second). The fixed pieces a transaction is
assembled from (pre-escaped JSON outcomes and execution-cost tails, the contract vocabulary,
c32-looking addresses, Hiro's ISO timestamps) are built once at import. The fields a Stacks block
shares are rendered once per block and cached, and each transaction is then one f-string over
pools of addresses and contracts, with its variable fields taken from its 64-byte seeded digest.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from stxbf.simulator.chain import (
    CONTRACT_CALL,
    FEE_LADDER,
    GENESIS_BLOCK_HEIGHT,
    GENESIS_BURN_HEIGHT,
    TENURE_CHANGE,
    TOKEN_TRANSFER,
    Chain,
)

# ---- the fixed pieces of a transaction ---------------------------------------------------------

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
    """Return a c32-looking mainnet address of 41 characters.

    It is not checksummed, since nothing here verifies one.
    """
    return prefix + rng.randbytes(39).translate(_C32_TABLE).decode()


_MINUTES: dict[int, str] = {}
_SECONDS = tuple(f"{s:02d}.000Z" for s in range(60))


def iso(ts: int) -> str:
    """Format a time as Hiro does (JavaScript's toISOString): `2025-06-15T11:16:16.000Z`.

    The minute's prefix is cached, since consecutive transactions share it.
    """
    minute, secs = divmod(ts, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        moment = datetime.fromtimestamp(minute * 60, tz=timezone.utc)
        prefix = moment.strftime("%Y-%m-%dT%H:%M:")
        if len(_MINUTES) > 200_000:
            _MINUTES.clear()
        _MINUTES[minute] = prefix
    return prefix + _SECONDS[secs]


# ---- the renderer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cast:
    """The addresses, contracts and sponsors a seed's transactions are drawn from (read-only)."""

    senders: tuple[str, ...]
    base_nonce: tuple[int, ...]
    miners: tuple[str, ...]
    calls: tuple[tuple[tuple[str, tuple[tuple[str, str], ...]], ...], ...]
    sources: tuple[str, ...]
    sponsors: tuple[str, ...]


@functools.lru_cache(maxsize=16)
def _cast(seed: int) -> _Cast:
    """Draw a seed's cast once: it costs ~25 ms, and every simulator with that seed shares it."""
    rng = random.Random(f"render:{seed}")
    senders = tuple(address(rng) for _ in range(N_SENDERS))
    base_nonce = tuple(rng.randrange(0, 4000) for _ in range(N_SENDERS))
    miners = tuple(address(rng) for _ in range(16))
    sponsor_addresses = [address(rng) for _ in range(6)]
    calls = []
    for c in range(160):
        deployer = senders[rng.randrange(N_SENDERS)]
        name = f"{WORDS[c % len(WORDS)]}-v{1 + c // len(WORDS)}"
        contract_id = f"{deployer}.{name}"
        functions = rng.sample(FUNCTIONS, k=rng.randint(2, 5))
        prefixes = []
        for fname, params in functions:
            sig = " ".join(f"({p} {t})" for p, t in params)
            head = (
                f'"contract_call":{{"contract_id":"{contract_id}","function_name":"{fname}",'
                f'"function_signature":{json_text(f"(define-public ({fname} {sig}))")}'
            )
            prefixes.append((head, params))
        calls.append(tuple(prefixes))
    sponsors = tuple(
        f'"sponsored":true,"sponsor_address":"{sponsor}","sponsor_nonce":{n},'
        for sponsor in sponsor_addresses
        for n in rng.sample(range(10_000), k=8)
    )
    sources = tuple(json_text(src) for src in SOURCES)
    return _Cast(senders, base_nonce, miners, tuple(calls), sources, sponsors)


class Renderer:
    """Render transaction `i` of a chain as a JSON object (a str).

    There is one renderer per chain, and it is not thread-safe: its caches are unguarded.
    """

    def __init__(self, chain: Chain, *, block_cache: int = 4096) -> None:
        self.chain = chain
        cast = _cast(chain.seed)
        self.senders, self.base_nonce, self.miners = cast.senders, cast.base_nonce, cast.miners
        self.calls, self.sources, self.sponsor_fields = cast.calls, cast.sources, cast.sponsors
        self._blocks: dict[int, str] = {}
        self._hashes: dict[int, str] = {}
        self._tenures: dict[int, tuple[str, str]] = {}
        self._block_cache = block_cache

    # ---- per block --------------------------------------------------------------------------

    def block_hash(self, b: int) -> str:
        cached = self._hashes.get(b)
        if cached is None:
            raw = b"blk" + (b + 1).to_bytes(6, "big")
            cached = "0x" + hashlib.blake2b(raw, key=self.chain.key, digest_size=32).hexdigest()
            if len(self._hashes) >= 2 * self._block_cache:
                self._hashes.clear()
            self._hashes[b] = cached
        return cached

    def _tenure_fields(self, tenure: int) -> tuple[str, str]:
        """Return a tenure's burn fields, and the same time as the parent_burn_* fields."""
        cached = self._tenures.get(tenure)
        if cached is None:
            burn_time = self.chain.tenure_burn_time[tenure]
            burn_iso = iso(burn_time)
            cached = (
                f'"burn_block_time":{burn_time},"burn_block_time_iso":"{burn_iso}",'
                f'"burn_block_height":{GENESIS_BURN_HEIGHT + tenure},',
                f'"parent_burn_block_time":{burn_time},"parent_burn_block_time_iso":"{burn_iso}",',
            )
            if len(self._tenures) >= self._block_cache:
                self._tenures.clear()
            self._tenures[tenure] = cached
        return cached

    def _block_fields(self, b: int) -> str:
        cached = self._blocks.get(b)
        if cached is not None:
            return cached
        chain = self.chain
        tenure = chain.block_tenure[b]
        burn, parent = self._tenure_fields(tenure)
        if tenure > 0 and chain.tenure_first_block[tenure] == b:
            parent = self._tenure_fields(tenure - 1)[1]  # the parent block is the last tenure's
        block_time = chain.block_time[b]
        fields = (
            f'"anchor_mode":"any","is_unanchored":false,'
            f'"block_hash":"{self.block_hash(b)}","block_height":{GENESIS_BLOCK_HEIGHT + b},'
            f'"block_time":{block_time},"block_time_iso":"{iso(block_time)}",{burn}{parent}'
            f'"parent_block_hash":"{self.block_hash(b - 1)}","canonical":true,'
            f'"microblock_hash":"0x","microblock_sequence":2147483647,'
            f'"microblock_canonical":true'
        )
        if len(self._blocks) >= self._block_cache:
            self._blocks.clear()
        self._blocks[b] = fields
        return fields

    # ---- per tx -----------------------------------------------------------------------------

    def render(self, i: int, b: int | None = None, *, exclude_function_args: bool = False) -> str:
        """Render transaction `i` (in block `b`, looked up when not given) as one JSON object.

        `exclude_function_args` leaves `function_args` out of a contract call altogether, as
        db-controller.ts parseContractCallMetadata does for `?exclude_function_args=true`.
        """
        chain = self.chain
        if b is None:
            b = chain.block_of(i)
        digest = chain.tx_digest(i)
        tx_id = digest[:32].hex()
        kind = chain.tx_kind[i]
        tx_index = i - chain.block_first_tx[b]
        head = f'{{"tx_id":"0x{tx_id}","nonce":'
        block = f'"post_conditions":[],{self._block_fields(b)},"tx_index":{tx_index},'
        if kind >= 3:  # coinbase / tenure_change: the miner's system txs
            return self._render_system(i, b, kind, digest, head, block)
        sender_slot = i % N_SENDERS
        sender = self.senders[sender_slot]
        nonce = i // N_SENDERS + self.base_nonce[sender_slot]
        # digest[32:64] are this tx's dice: each field reads its own bytes
        roll = (digest[32] << 8 | digest[33]) % 1000
        problematic = roll >= 1000 - PROBLEMATIC_PER_MILLE
        failed = problematic or roll < (5 if kind == TOKEN_TRANSFER else 35)
        if problematic:
            outcome = PROBLEMATIC
        elif failed:
            outcome = FAILED_OUTCOMES[roll % len(FAILED_OUTCOMES)]
        else:
            outcome = SUCCESS
        if kind == CONTRACT_CALL and digest[34] < 8:
            sponsor = self.sponsor_fields[digest[35] % len(self.sponsor_fields)]
        else:
            sponsor = '"sponsored":false,'
        mode = "allow" if digest[36] < 51 else "deny"
        if kind == TOKEN_TRANSFER:
            payload, tail = self._token_transfer(digest, tx_id, failed)
        elif kind == CONTRACT_CALL:
            payload, tail = self._contract_call(digest, tx_id, failed, exclude_function_args)
        else:  # SMART_CONTRACT
            payload, tail = self._smart_contract(digest, sender, i)
        return (
            f'{head}{nonce},"fee_rate":"{FEE_LADDER[chain.tx_fee[i]]}",'
            f'"sender_address":"{sender}",{sponsor}"post_condition_mode":"{mode}",'
            f'{block}{outcome}{tail}"vm_error":null,"events":[],{payload}}}'
        )

    # ---- the payload of each regular tx type: (payload, event and cost fields) -------------

    def _token_transfer(self, digest: bytes, tx_id: str, failed: bool) -> tuple[str, str]:
        recipient = self.senders[(digest[37] << 8 | digest[38]) % N_SENDERS]
        amount = (1 + (digest[39] << 8 | digest[40]) % 9999) * POWERS[digest[41] & 7]
        memo = ZERO_MEMO if digest[42] & 3 else "0x" + tx_id[:68]
        payload = (
            f'"tx_type":"token_transfer","token_transfer":{{"recipient_address":"{recipient}",'
            f'"amount":"{amount}","memo":"{memo}"}}'
        )
        return payload, TRANSFER_FAILED if failed else TRANSFER_OK

    def _contract_call(
        self, digest: bytes, tx_id: str, failed: bool, exclude_function_args: bool
    ) -> tuple[str, str]:
        pick = (digest[37] << 8 | digest[38]) / 65536.0
        calls = self.calls[int(len(self.calls) * pick**3)]
        head, params = calls[digest[39] % len(calls)]
        tail = CALL_TAILS[digest[50] % len(CALL_TAILS)][0 if failed else 1 + digest[51] % 12]
        if exclude_function_args:
            return f'"tx_type":"contract_call",{head}}}', tail
        args = []
        at = 40
        for name, typ in params:
            if typ == "uint":
                value = int.from_bytes(digest[at : at + 4], "little") % 1_000_000_000
                args.append(
                    f'{{"hex":"0x01{value:032x}","repr":"u{value}","name":"{name}","type":"uint"}}'
                )
            else:
                who = self.senders[(digest[at] << 8 | digest[at + 1]) % N_SENDERS]
                args.append(
                    f'{{"hex":"0x0516{tx_id[:40]}","repr":"\'{who}","name":"{name}",'
                    f'"type":"principal"}}'
                )
            at += 4
        return f'"tx_type":"contract_call",{head},"function_args":[{",".join(args)}]}}', tail

    def _smart_contract(self, digest: bytes, sender: str, i: int) -> tuple[str, str]:
        # versioned deploys carry 2 or 3; an unversioned (pre-2.1 style) one has null
        version = "null" if digest[39] < 8 else 2 + (digest[37] & 1)
        payload = (
            f'"tx_type":"smart_contract","smart_contract":{{"clarity_version":{version},'
            f'"contract_id":"{sender}.contract-{i}",'
            f'"source_code":{self.sources[digest[38] % len(self.sources)]}}}'
        )
        return payload, DEPLOY_TAIL

    # ---- the miner's system txs -------------------------------------------------------------

    def _render_system(
        self, i: int, b: int, kind: int, digest: bytes, head: str, block: str
    ) -> str:
        tenure = self.chain.block_tenure[b]
        miner = self.miners[tenure % len(self.miners)]
        nonce = MINER_NONCE_STRIDE * (tenure // len(self.miners)) + (kind != TENURE_CHANGE)
        if kind != TENURE_CHANGE:
            payload = self._coinbase(digest)
        elif b != self.chain.tenure_first_block[tenure]:
            extends, payload = self._tenure_extend(i, b, tenure, digest)
            nonce = MINER_NONCE_STRIDE * (tenure // len(self.miners)) + 2 + extends
        else:
            payload = self._tenure_change(b, tenure, digest)
        return (
            f'{head}{nonce},"fee_rate":"0",'
            f'"sender_address":"{miner}","sponsored":false,"post_condition_mode":"deny",'
            f'{block}"tx_status":"success",'
            f'"tx_result":{OK_TRUE},"event_count":0,'
            f'"execution_cost_read_count":0,"execution_cost_read_length":0,'
            f'"execution_cost_runtime":0,"execution_cost_write_count":0,'
            f'"execution_cost_write_length":0,"vm_error":null,"events":[],{payload}}}'
        )

    def _tenure_change(self, b: int, tenure: int, digest: bytes) -> str:
        """Render the tenure_change that opens a tenure (its cause: a block was found)."""
        first_block = self.chain.tenure_first_block
        prev_blocks = b - first_block[tenure - 1] if tenure else 1
        return (
            f'"tx_type":"tenure_change","tenure_change_payload":{{'
            f'"tenure_consensus_hash":"0x{self._consensus(tenure)}",'
            f'"prev_tenure_consensus_hash":"0x{self._consensus(tenure - 1)}",'
            f'"burn_view_consensus_hash":"0x{self._consensus(tenure)}",'
            f'"previous_tenure_end":"{self.block_hash(b - 1)}",'
            f'"previous_tenure_blocks":{prev_blocks},"cause":"block_found",'
            f'"pubkey_hash":"0x{digest[32:52].hex()}"}}'
        )

    def _tenure_extend(self, i: int, b: int, tenure: int, digest: bytes) -> tuple[int, str]:
        """Return how many extends the tenure had before, and the payload of this one.

        The causes are stacks-core's TenureChangeCause, written as the API writes them
        (db-controller.ts getTxTenureChangeCauseString); the tenure stays the same, and its
        blocks are counted from its start.
        """
        chain = self.chain
        extends = sum(
            1
            for j in range(chain.tenure_first_tx[tenure] + 2, i)
            if chain.tx_kind[j] == TENURE_CHANGE
        )
        cause = EXTEND_CAUSES[digest[52] % len(EXTEND_CAUSES)]
        payload = (
            f'"tx_type":"tenure_change","tenure_change_payload":{{'
            f'"tenure_consensus_hash":"0x{self._consensus(tenure)}",'
            f'"prev_tenure_consensus_hash":"0x{self._consensus(tenure)}",'
            f'"burn_view_consensus_hash":"0x{self._consensus(tenure)}",'
            f'"previous_tenure_end":"{self.block_hash(b - 1)}",'
            f'"previous_tenure_blocks":{b - chain.tenure_first_block[tenure]},"cause":"{cause}",'
            f'"pubkey_hash":"0x{digest[32:52].hex()}"}}'
        )
        return extends, payload

    def _coinbase(self, digest: bytes) -> str:
        """Render a Nakamoto coinbase: a vrf_proof always, an alt_recipient now and then.

        The fields are db-controller.ts's.
        """
        if digest[52] < 24:
            alt = self.senders[(digest[53] << 8 | digest[54]) % N_SENDERS]
            if digest[55] & 1:
                alt += f".{WORDS[digest[56] % len(WORDS)]}-rewards"
            alt_recipient = f'"{alt}"'
        else:
            alt_recipient = "null"
        return (
            f'"tx_type":"coinbase","coinbase_payload":{{"data":"0x{digest[32:64].hex()}",'
            f'"alt_recipient":{alt_recipient},'
            f'"vrf_proof":"0x{digest.hex()}{digest[:16].hex()}"}}'
        )

    def _consensus(self, tenure: int) -> str:
        raw = b"ten" + (tenure & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        return hashlib.blake2b(raw, key=self.chain.key, digest_size=20).hexdigest()

    def page(self, indices: list[int], *, exclude_function_args: bool = False) -> list[str]:
        """Render a page of transactions; consecutive indices reuse the block lookup."""
        out = []
        chain = self.chain
        firsts = chain.block_first_tx
        n_blocks = len(firsts)
        b = -2
        for i in indices:
            if b < 0 or not (firsts[b] <= i < (firsts[b + 1] if b + 1 < n_blocks else len(chain))):
                b = chain.block_of(i)
            out.append(self.render(i, b, exclude_function_args=exclude_function_args))
        return out
