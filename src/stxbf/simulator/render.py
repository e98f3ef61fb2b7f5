"""How a simulated transaction looks on the wire: Hiro's `/extended/v1/tx` JSON, written by hand.

Deliberately independent of `stxbf.models`: this file spells the API's shape the way Hiro does
(amounts and fee_rate as strings, tx_result as {hex, repr}, one payload object per tx_type), so a
drift between client and API fails a test instead of passing on both sides.

Speed matters (tens of thousands of txs a second): the fields a Stacks block shares are rendered
once per block and cached; each tx is one f-string over pre-escaped pools of addresses and
contracts, with its variable fields taken from its 64-byte seeded digest.
"""

from __future__ import annotations

import hashlib
import random

from stxbf.simulator.chain import (
    CONTRACT_CALL,
    FEE_LADDER,
    GENESIS_BLOCK_HEIGHT,
    GENESIS_BURN_HEIGHT,
    TENURE_CHANGE,
    TOKEN_TRANSFER,
    Chain,
)
from stxbf.simulator.tx_parts import (
    CALL_TAILS,
    DEPLOY_TAIL,
    EXTEND_CAUSES,
    FAILED_OUTCOMES,
    FUNCTIONS,
    MINER_NONCE_STRIDE,
    N_SENDERS,
    OK_TRUE,
    POWERS,
    PROBLEMATIC,
    PROBLEMATIC_PER_MILLE,
    SOURCES,
    SUCCESS,
    TRANSFER_FAILED,
    TRANSFER_OK,
    WORDS,
    ZERO_MEMO,
    address,
    iso,
    json_text,
)


class Renderer:
    """Renders tx `i` of a chain as a JSON object (str); one per chain, not thread-safe."""

    def __init__(self, chain: Chain, *, block_cache: int = 4096) -> None:
        self.chain = chain
        rng = random.Random(f"render:{chain.seed}")
        self.senders = [address(rng) for _ in range(N_SENDERS)]
        self.base_nonce = [rng.randrange(0, 4000) for _ in range(N_SENDERS)]
        self.miners = [address(rng) for _ in range(16)]
        self.sponsors = [address(rng) for _ in range(6)]
        self.calls: list[list[tuple[str, tuple[tuple[str, str], ...]]]] = []
        for c in range(160):
            deployer = self.senders[rng.randrange(N_SENDERS)]
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
            self.calls.append(prefixes)
        self.sources = [json_text(src) for src in SOURCES]
        self.sponsor_fields = [
            f'"sponsored":true,"sponsor_address":"{sponsor}","sponsor_nonce":{n},'
            for sponsor in self.sponsors
            for n in rng.sample(range(10_000), k=8)
        ]
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
        """(burn fields, the same time as parent_burn_* fields) of a tenure."""
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
        """Tx `i` (in block `b`, looked up when not given) as one JSON object.

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
        """The tenure's opening tenure_change (a block was found)."""
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
        """(earlier extends in the tenure, payload) of a tenure extend: stacks-core
        TenureChangeCause, with the API's cause strings (db-controller.ts
        getTxTenureChangeCauseString); same tenure, blocks counted from its start."""
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
        """A Nakamoto coinbase: vrf_proof always, alt_recipient now and then (db-controller.ts)."""
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
        """Render a page; consecutive indices reuse the block lookup."""
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
