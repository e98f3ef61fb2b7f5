"""`stxbf sim serve` with an out-of-range number is a usage error (exit 2, one line), never an
internal error or a simulator that serves nonsense."""

from __future__ import annotations

import sys

import pytest

from stxbf.cli.main import main

BAD = {
    "port-too-high": ["--port", "70000"],
    "port-negative": ["--port", "-1"],
    "rpm-negative": ["--rpm", "-1"],
    "per-second-below-minus-one": ["--per-second", "-5"],
    "latency-negative": ["--latency-ms", "-5"],
    "latency-infinite": ["--latency-ms", "inf"],
    "stall-negative": ["--stall-seconds", "-1"],
    "days-not-a-number": ["--days", "nan"],
    "days-beyond-ten-years": ["--days", "1e9"],
    "tx-per-day-negative": ["--tx-per-day", "-5"],
    "growth-negative": ["--growth", "-1"],
    "fault-rate-above-one": ["--fault-rate", "2"],
    "chain-too-large": ["--days", "3650", "--tx-per-day", "1000000"],
}


@pytest.mark.parametrize("args", BAD.values(), ids=BAD.keys())
def test_out_of_range_numbers_are_usage_errors(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_serve(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the simulator was started with a bad value")

    monkeypatch.setattr("stxbf.simulator.serve_forever", must_not_serve)
    monkeypatch.setattr(sys, "argv", ["stxbf", "sim", "serve", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    err = capsys.readouterr().err
    assert ended.value.code == 2, err
    assert "internal error" not in err
    errors = [line for line in err.splitlines() if line.startswith("stxbf: error:")]
    assert len(errors) == 1, err
    option = next(arg for arg in args if arg.startswith("--"))
    assert option in err or "chain" in err
