"""The rate-style benchmark's arithmetic (`benchmarks/run.py`): steady rate and learning delay
read from a sampled request counter, on synthetic curves whose answers are known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def counter(slow_until: float, slow: float, fast: float, end: float) -> list[tuple[float, int]]:
    """Requests counted every 0.1 s: the first at 1.0 s, `slow`/s until `slow_until`, then
    `fast`/s until `end`."""
    curve, start = [], 1.0
    for i in range(int(end * 10) + 1):
        t = i / 10
        if t < start:
            n = 0.0
        elif t < slow_until:
            n = 1 + (t - start) * slow
        else:
            n = 1 + (slow_until - start) * slow + (t - slow_until) * fast
        curve.append((t, int(n)))
    return curve


def test_the_steady_rate_leaves_out_the_warm_up_and_the_drain(bench: ModuleType) -> None:
    curve = counter(slow_until=2.0, slow=1.0, fast=20.0, end=31.0)
    rate = bench.steady_rate(curve, warm_up=4.0)
    assert rate == pytest.approx(20.0, rel=0.02)


def test_the_learning_delay_is_when_the_rate_was_reached(bench: ModuleType) -> None:
    curve = counter(slow_until=3.0, slow=0.8, fast=20.0, end=31.0)
    delay = bench.learning_delay(curve, steady=20.0)
    # the first 2 s span at >= 18/s starts shortly before the switch (2 s after the first
    # request): 0.2 s of 0.8/s and 1.8 s of 20/s average 18.08/s
    assert delay == pytest.approx(1.8, abs=0.15)


def test_a_pacer_at_its_rate_from_the_start_learned_at_once(bench: ModuleType) -> None:
    curve = counter(slow_until=1.0, slow=0.0, fast=8.0, end=20.0)
    assert bench.learning_delay(curve, steady=8.0) == pytest.approx(0.0, abs=0.15)


def test_a_run_too_short_to_read_has_no_steady_rate(bench: ModuleType) -> None:
    assert bench.steady_rate(counter(1.0, 0.0, 8.0, end=4.0), warm_up=4.0) is None
    assert bench.steady_rate([(0.0, 0), (1.0, 0)], warm_up=1.0) is None


def test_the_tightest_stated_window_is_in_requests(bench: ModuleType) -> None:
    styles = bench.RATE_STYLES
    assert styles["full-minute-second-generic"].stated_per_second == pytest.approx(500 / 60)
    assert styles["second-only"].stated_per_second == 20
    assert styles["cost-2"].stated_per_second == pytest.approx(500 / 60)  # 1000 units at 2
    assert styles["full-generic-is-the-second"].stated_per_second == 20
