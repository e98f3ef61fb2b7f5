"""`stxbf sim serve --now`: a simulator restarted with the same seed and end time serves the same
chain, so an outage drill that restarts it compares like with like."""

from __future__ import annotations

import sys
import time

import pytest

from stxbf.cli.main import main
from stxbf.simulator import SimApi, SimConfig, parse_instant

END = "2026-12-01T00:00:00Z"
END_SECONDS = 1796083200.0
DAY = 86400


def answers(api: SimApi, end: int) -> list[bytes]:
    """The bodies of a v1 list over each of the last four six-hour windows before `end`."""
    targets = [
        f"/extended/v1/tx?start_time={end - (k + 1) * DAY // 4 + 1}&end_time={end - k * DAY // 4}"
        "&limit=50&offset=0"
        for k in range(4)
    ]
    return [api.handle("GET", target, {}).body for target in targets]


def test_two_simulators_with_the_same_seed_and_now_answer_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = SimConfig(seed=7, days=1, tx_per_day=800, end_time=parse_instant(END))
    first = SimApi(config)
    # The second one starts 1.1 s of wall time later (a moved clock, not a sleep): the chains
    # must not follow the clock.
    started = time.time()
    monkeypatch.setattr(time, "time", lambda: started + 1.1)
    second = SimApi(config)
    assert first.chain.tenure_burn_time == second.chain.tenure_burn_time
    assert answers(first, int(END_SECONDS)) == answers(second, int(END_SECONDS))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (END, END_SECONDS),
        ("2026-12-01T01:00:00+01:00", END_SECONDS),
        ("2026-12-01T00:00:00", END_SECONDS),  # no offset: UTC
        ("1796083200", END_SECONDS),
        ("1796083200.5", END_SECONDS + 0.5),
    ],
    ids=["iso-z", "iso-offset", "iso-naive-utc", "epoch", "epoch-fraction"],
)
def test_now_is_iso_8601_or_unix_seconds(text: str, seconds: float) -> None:
    assert parse_instant(text) == seconds


def _serve(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, list[SimConfig], str]:
    served: list[SimConfig] = []
    monkeypatch.setattr("stxbf.simulator.serve_forever", lambda config, **_: served.append(config))
    monkeypatch.setattr(sys, "argv", ["stxbf", "sim", "serve", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return ended.value.code, served, capsys.readouterr().err


def test_sim_serve_takes_now_as_the_chains_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, served, err = _serve(["--seed", "3", "--now", END], monkeypatch, capsys)
    assert code in (0, None), err
    assert [config.end_time for config in served] == [END_SECONDS]


@pytest.mark.parametrize("text", ["yesterday", "nan", "2026-13-01"])
def test_a_bad_now_is_a_usage_error(
    text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, served, err = _serve(["--now", text], monkeypatch, capsys)
    assert code == 2, err
    assert served == []
    lines = [line for line in err.splitlines() if line.startswith("stxbf: error:")]
    assert len(lines) == 1 and "--now" in lines[0] and "ISO 8601" in lines[0], err
