"""The chain: seeded transaction ids, the fee ladder, growth as the clock advances, the ground truth
a backfill is checked against, and the memory a transaction costs."""

from __future__ import annotations

import orjson
import pytest

from stxbf.simulator import Chain, SimApi, SimConfig
from stxbf.simulator.chain import FEE_LADDER
from tests.simulator.helpers import (
    END,
    get,
    make_api,
    middle_window,
)


def test_tx_ids_are_unique_and_seeded() -> None:
    chain = Chain(seed=5, days=1, end_time=END)
    ids = chain.tx_ids()
    assert len(ids) == len(set(ids)) == len(chain)
    assert Chain(seed=5, days=1, end_time=END).tx_ids() == ids
    assert Chain(seed=6, days=1, end_time=END).tx_ids()[:5] != ids[:5]
    assert chain.digest() == Chain(seed=5, days=1, end_time=END).digest()


def test_fee_ladder_is_ascending_and_distinct() -> None:
    assert list(FEE_LADDER) == sorted(set(FEE_LADDER))


# ---- growth ------------------------------------------------------------------------------------


def test_growth_appends_to_the_open_tenure_then_opens_new_ones() -> None:
    api = make_api(growth=5.0)
    chain = api.chain
    head_burn = chain.tenure_burn_time[-1]
    window = f"start_time={END - 3600}&end_time={END}&limit=1"
    before = get(api, window)[1]["total"]
    tenures = chain.n_tenures
    # 30 s later: same tenure (its burn time is in the window) has more blocks
    later = get(api, window, now=END + 30)[1]["total"]
    if chain.n_tenures == tenures:
        assert later > before
        assert chain.tenure_burn_time[-1] == head_burn
    newest = get(api, "limit=1", now=END + 30)[1]["results"][0]
    assert newest["block_time"] > END
    # an hour on, new tenures have started with their own (later) burn times
    get(api, "limit=1", now=END + 3600)
    assert chain.n_tenures > tenures
    assert chain.tenure_burn_time[-1] > END
    assert chain.count(END - 3600, END) >= later


def test_a_window_ending_now_gains_txs_while_its_tenure_lasts() -> None:
    config = SimConfig(
        days=1, end_time=END, growth=20.0, tenure_seconds=3600.0, block_seconds=(1.0, 2.0)
    )
    api = SimApi(config, epoch=END)
    chain = api.chain
    head_burn = chain.tenure_burn_time[-1]
    window = f"start_time={head_burn}&end_time={END}&limit=1"
    before = get(api, window)[1]["total"]
    after = get(api, window, now=END + 20)[1]["total"]
    assert chain.tenure_burn_time[-1] == head_burn  # a one-hour tenure is still open
    assert after > before
    assert after == api.truth(head_burn, END)["count"]


def test_frozen_chain_does_not_grow(api: SimApi) -> None:
    n = len(api.chain)
    get(api, "limit=1", now=END + 7200)
    assert len(api.chain) == n


def test_advance_route_moves_the_chain_clock() -> None:
    api = make_api(growth=2.0)
    n = len(api.chain)
    body = orjson.loads(api.handle("POST", "/_sim/advance?seconds=120", {}, now=END).body)
    assert body["added"] > 0 and len(api.chain) == n + body["added"]
    assert api.advance(120, now=END) > 0


def test_truth_route_matches_the_chain(api: SimApi) -> None:
    start, end = middle_window(api.chain)
    response = api.handle("GET", f"/_sim/truth?start_time={start}&end_time={end}&ids=1", {})
    truth = orjson.loads(response.body)
    assert truth["count"] == api.chain.count(start, end) == len(truth["tx_ids"])
    assert truth["digest"] == api.chain.digest(start, end)
    assert truth["tx_ids"] == api.chain.tx_ids(start, end)


def test_chain_memory_per_tx_is_small() -> None:
    chain = Chain(seed=1, days=4, tx_per_day=20_000, end_time=END)
    per_tx = sum(
        arr.itemsize * len(arr)
        for arr in (
            chain.tx_kind,
            chain.tx_fee,
            chain.block_time,
            chain.block_first_tx,
            chain.block_tenure,
        )
    ) / len(chain)
    assert per_tx < 16


SCALE_PROBE = """
import psutil, orjson
from stxbf.simulator import SimApi, SimConfig
before = psutil.Process().memory_info().rss
api = SimApi(SimConfig(days=30, tx_per_day=35_000, end_time=1_750_000_000), epoch=1_750_000_000)
for k in range(200):
    response = api.handle("GET", f"/extended/v1/tx?limit=50&offset={k * 5000}", {})
    assert response.status == 200 and len(orjson.loads(response.body)["results"]) == 50
response = api.handle("GET", "/extended/v1/tx?limit=50&sort_by=fee&type=token_transfer", {})
assert response.status == 200
grown = psutil.Process().memory_info().rss - before
print(len(api.chain), grown // 2**20)
"""


@pytest.mark.slow
def test_a_million_txs_fit_in_modest_memory() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", SCALE_PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    n_txs, grown_mib = map(int, result.stdout.split())
    assert n_txs > 1_000_000
    assert grown_mib < 150, f"{grown_mib} MiB for {n_txs} txs"
