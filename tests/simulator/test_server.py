"""The simulator over real loopback HTTP/1.1, and `stxbf sim serve`.

What only a socket can show: keep-alive, latency that does not block other connections, faults
that break the connection (drop, truncate, stall), an outage that refuses connections, and the
CLI's one-line URL banner.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import NamedTuple

import httpx
import pytest

from stxbf.simulator import SimConfig, SimServer, run_in_thread
from tests.helpers import retry_until, stxbf
from tests.simulator.helpers import fastify_400

END = 1_750_000_000


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with run_in_thread(SimConfig(days=2, end_time=END, seed=3)) as server:
        yield server


def test_serves_pages_over_keep_alive(sim: SimServer) -> None:
    before = sim.stats()["connections_total"]
    with httpx.Client(base_url=sim.url) as client:
        pages = [
            client.get("/extended/v1/tx", params={"limit": 50, "offset": 50 * k}) for k in range(20)
        ]
    assert all(page.status_code == 200 for page in pages)
    assert pages[0].headers["content-type"] == "application/json; charset=utf-8"
    ids = [tx["tx_id"] for page in pages for tx in page.json()["results"]]
    assert len(set(ids)) == 1000
    assert sim.stats()["connections_total"] - before == 1


def test_sim_routes_over_http(sim: SimServer) -> None:
    with httpx.Client(base_url=sim.url) as client:
        stats = client.get("/_sim/stats").json()
        start, end = sim.chain.tenure_burn_time[5], sim.chain.tenure_burn_time[9]
        truth = client.get("/_sim/truth", params={"start_time": start, "end_time": end}).json()
        missing = client.get("/nope")
        unknown_post = client.post("/_sim/nope")
    assert {"requests", "rate_limited", "early_requests", "faults", "chain"} <= stats.keys()
    assert truth["count"] == sim.chain.count(start, end)
    assert truth["digest"] == sim.chain.digest(start, end)
    assert missing.status_code == 404 and "error" in missing.json()
    assert unknown_post.status_code == 404


def test_http_1_0_and_connection_close_are_honoured(sim: SimServer) -> None:
    with httpx.Client(base_url=sim.url, headers={"connection": "close"}) as client:
        response = client.get("/extended/v1/tx", params={"limit": 1})
    assert response.headers["connection"] == "close"


def test_latency_does_not_block_other_connections() -> None:
    config = SimConfig(days=1, end_time=END, latency_ms=300, jitter_ms=0)

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url) as client:
            responses = await asyncio.gather(
                *(client.get("/extended/v1/tx", params={"offset": k}) for k in range(8))
            )
        return [r.status_code for r in responses]

    with run_in_thread(config) as server:
        assert asyncio.run(burst(server.url)) == [200] * 8
        assert server.stats()["max_in_flight"] >= 4  # served concurrently, not one by one


def test_rate_limit_over_http_and_the_audit() -> None:
    """Over HTTP, at instants the test chooses (the simulator's clock, not the wall's): a 4th
    request at the 429's own instant is within the in-flight grace, a 5th half a second later
    is early."""
    at = [float(END)]
    with run_in_thread(SimConfig(days=1, end_time=END, rpm=2)) as server:
        server.api.clock = lambda: at[0]
        with httpx.Client(base_url=server.url, headers={"x-api-key": "k1"}) as client:
            statuses = [client.get("/extended/v1/tx").status_code for _ in range(3)]
            limited = client.get("/extended/v1/tx")
            within_grace = server.stats()["early_requests"]
            at[0] += 0.5  # past the 0.25 s grace, before the retry-after
            client.get("/extended/v1/tx")
        stats = server.stats()
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert within_grace == 0  # the 4th came within the in-flight grace
    assert stats["rate_limited"] == 3
    assert stats["early_requests"] == 1


@pytest.fixture
def faulty() -> Iterator[SimServer]:
    with run_in_thread(SimConfig(days=1, end_time=END, stall_seconds=5.0)) as server:
        yield server


def test_drop_closes_without_a_response(faulty: SimServer) -> None:
    faulty.set_faults(1.0, "drop")
    with httpx.Client(base_url=faulty.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/extended/v1/tx")


def test_truncate_sends_part_of_the_body(faulty: SimServer) -> None:
    faulty.set_faults(1.0, "truncate")
    with httpx.Client(base_url=faulty.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/extended/v1/tx", params={"limit": 50})


def test_stall_outlasts_the_client_timeout(faulty: SimServer) -> None:
    faulty.set_faults(1.0, "stall")
    with httpx.Client(base_url=faulty.url, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/extended/v1/tx")
    faulty.set_faults(0.0)
    with httpx.Client(base_url=faulty.url) as client:  # the server is not held up meanwhile
        assert client.get("/extended/v1/tx").status_code == 200


def test_malformed_and_short_pages_arrive_as_200(faulty: SimServer) -> None:
    with httpx.Client(base_url=faulty.url) as client:
        client.post("/_sim/faults", params={"rate": 1, "kinds": "malformed"})
        malformed = client.get("/extended/v1/tx")
        client.post("/_sim/faults", params={"rate": 1, "kinds": "short"})
        short = client.get("/extended/v1/tx", params={"limit": 50})
        client.post("/_sim/faults", params={"rate": 0})
    assert malformed.status_code == 200
    assert malformed.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        malformed.json()
    assert short.status_code == 200 and len(short.json()["results"]) < 50
    assert faulty.stats()["faults"]["malformed"] == 1


def test_outage_refuses_connections_then_recovers(faulty: SimServer) -> None:
    with httpx.Client(base_url=faulty.url) as client:
        assert client.post("/_sim/outage", params={"seconds": 0.6}).status_code == 200
        with pytest.raises(httpx.TransportError):
            client.get("/extended/v1/tx")
        with httpx.Client(base_url=faulty.url) as fresh, pytest.raises(httpx.ConnectError):
            fresh.get("/extended/v1/tx")

    def answers() -> bool:
        try:
            with httpx.Client(base_url=faulty.url) as client:
                return client.get("/extended/v1/tx").status_code == 200
        except httpx.TransportError:
            return False

    retry_until(answers, interval=0.1, what="the simulator to listen again")


def test_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimConfig(host="0.0.0.0")


# ---- the CLI -------------------------------------------------------------------------------------


@pytest.mark.slow  # `python -m stxbf sim serve` as a process
def test_cli_serve_prints_the_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stxbf", "sim", "serve", "--days", "1", "--rpm", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("stxbf simulator serving http://127.0.0.1:"), line
        url = line.split()[3]
        response = httpx.get(f"{url}/extended/v1/tx", params={"limit": 3})
        assert response.status_code == 200 and len(response.json()["results"]) == 3
        assert response.headers["ratelimit-limit"] == "100"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # `python -m stxbf sim serve` as a process
def test_cli_serves_a_header_style_and_switches_v1_at_run_time() -> None:
    """`--rate-headers second --v1 deprecated`, then POST /_sim/v1 turns the route off live."""
    argv = [sys.executable, "-m", "stxbf", "sim", "serve", "--days", "1", "--per-second", "40"]
    argv += ["--rate-headers", "second", "--request-cost", "2", "--v1", "deprecated"]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "second headers" in line and "v1 deprecated" in line, line
        url = line.split()[3]
        with httpx.Client(base_url=url) as client:
            response = client.get("/extended/v1/tx", params={"limit": 3})
            headers = response.headers
            assert (headers["ratelimit-limit"], headers["ratelimit-remaining"]) == ("40", "38")
            assert headers["x-ratelimit-cost-stacks"] == "2"
            assert "x-ratelimit-limit-stacks-minute" not in headers
            assert headers["warning"].startswith('299 - "Deprecated: See https://docs.hiro.so')
            assert client.post("/_sim/v1", params={"state": "gone"}).json() == {"v1": "gone"}
            gone = client.get("/extended/v1/tx")
            assert gone.status_code == 410 and gone.json()["error"] == "Gone"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class BadServe(NamedTuple):
    args: list[str]
    message: str
    test_id: str


BAD_SERVES = [
    BadServe(["--rpm", "60", "--rate-headers", "second"], "second window", "style-without-limit"),
    BadServe(["--rate-headers", "loud"], "invalid --rate-headers: must be one of", "unknown-style"),
    BadServe(["--v1", "off"], "invalid --v1: must be one of", "unknown-v1-state"),
    BadServe(["--per-second", "2", "--request-cost", "5"], "nothing could pass", "cost-too-big"),
]


@pytest.mark.slow  # `python -m stxbf sim serve` as a process
@pytest.mark.parametrize("case", BAD_SERVES, ids=[c.test_id for c in BAD_SERVES])
def test_cli_refuses_impossible_limits_in_one_line(case: BadServe) -> None:
    result = stxbf("sim", "serve", *case.args, timeout=30)
    assert result.returncode == 2
    assert case.message in result.stderr and "Traceback" not in result.stderr


def test_fastify_400_and_v1_switch_over_http(sim: SimServer) -> None:
    with httpx.Client(base_url=sim.url) as client:
        bad = client.get("/extended/v1/tx", params={"limit": 51})
        assert bad.status_code == 400
        assert bad.json() == fastify_400("querystring/limit must be <= 50")
        sim.set_v1("gone")
        try:
            assert client.get("/extended/v1/tx").status_code == 410
            assert client.get("/_sim/v1").json() == {"v1": "gone"}
        finally:
            sim.set_v1("on")
        assert client.get("/extended/v1/tx").status_code == 200


@pytest.mark.slow  # `python -m stxbf sim serve` as a process
def test_cli_refuses_a_public_host() -> None:
    result = stxbf("sim", "serve", "--host", "0.0.0.0", timeout=30)
    assert result.returncode == 2
    assert "invalid --host: must be one of 127.0.0.1, localhost, ::1" in result.stderr


@pytest.mark.slow  # `python -m stxbf sim serve` as a process
def test_cli_reports_a_busy_port(sim: SimServer) -> None:
    result = stxbf("sim", "serve", "--port", str(sim.port), timeout=30)
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


def test_server_set_limits_takes_every_knob() -> None:
    with run_in_thread(SimConfig(days=1, end_time=END, rpm=100)) as sim:
        sim.set_limits(
            per_second=10,
            rate_headers="generic-policy",
            rate_generic_window="second",
            rate_reset="unix",
            request_cost=2,
            month_quota=1000,
        )
        with httpx.Client(base_url=sim.url) as client:
            headers = client.get("/extended/v1/tx", params={"limit": 1}).headers
        assert headers["ratelimit-policy"] == "10;w=1"
        assert (headers["ratelimit-remaining"], headers["x-ratelimit-cost-stacks"]) == ("8", "2")
        assert int(headers["ratelimit-reset"]) > 1_000_000_000
        assert headers["x-ratelimit-remaining-stacks-month"] == "998"
        assert sim.stats()["limits"]["rate_headers"] == "generic-policy"


# ---- HTTP/1.1 framing at its edges (raw sockets: what httpx never sends) ----------------------


def _exchange(sim: SimServer, raw: bytes, *, wait_close: bool = True) -> bytes:
    """Send raw bytes on a fresh connection and read what the simulator answers until it closes
    the connection (or, for a keep-alive answer, until the read times out)."""
    with socket.create_connection((sim.host, sim.port), timeout=5) as conn:
        conn.sendall(raw)
        received = b""
        conn.settimeout(5 if wait_close else 0.5)
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def _status_lines(received: bytes) -> list[str]:
    """The status lines in what came back (a pipelined answer follows the last body at once)."""
    return re.findall(r"HTTP/1\.1 \d{3} [^\r]*", received.decode("latin-1"))


def test_a_bad_request_line_gets_a_400_and_the_connection_closes(sim: SimServer) -> None:
    received = _exchange(sim, b"NONSENSE\r\n\r\n")
    assert _status_lines(received) == ["HTTP/1.1 400 Bad Request"]
    assert b"\r\nconnection: close\r\n" in received.lower()


def test_a_bad_content_length_gets_a_400(sim: SimServer) -> None:
    received = _exchange(sim, b"POST /_sim/reset HTTP/1.1\r\nhost: x\r\ncontent-length: x\r\n\r\n")
    assert _status_lines(received) == ["HTTP/1.1 400 Bad Request"]


def test_an_oversized_head_gets_a_431(sim: SimServer) -> None:
    head = b"GET /extended/v1/tx HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 70_000
    received = _exchange(sim, head)
    assert _status_lines(received) == ["HTTP/1.1 431 Request Header Fields Too Large"]


def test_pipelined_requests_are_answered_in_order(sim: SimServer) -> None:
    requests = b"".join(
        b"GET /extended/v1/tx?limit=1&offset=%d HTTP/1.1\r\nhost: x\r\n\r\n" % k for k in range(3)
    )
    last = b"GET /_sim/v1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    received = _exchange(sim, requests + last)
    assert _status_lines(received) == ["HTTP/1.1 200 OK"] * 4
    offsets = [int(part.split(b",")[0]) for part in received.split(b'"offset":')[1:]]
    assert offsets == [0, 1, 2]
    assert received.endswith(b'{"v1":"on"}')


def test_a_request_body_is_read_and_ignored(sim: SimServer) -> None:
    received = _exchange(
        sim,
        b"POST /_sim/faults?rate=0 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
        b"GET /_sim/v1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    assert _status_lines(received) == ["HTTP/1.1 200 OK"] * 2
    assert received.endswith(b'{"v1":"on"}')


def test_head_gets_the_length_without_the_body(sim: SimServer) -> None:
    received = _exchange(
        sim, b"HEAD /extended/v1/tx?limit=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    head, _, body = received.partition(b"\r\n\r\n")
    assert _status_lines(received) == ["HTTP/1.1 200 OK"]
    assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) > 100
    assert body == b""


def test_an_http_1_0_request_is_answered_and_closed(sim: SimServer) -> None:
    received = _exchange(sim, b"GET /_sim/v1 HTTP/1.0\r\n\r\n")
    assert _status_lines(received) == ["HTTP/1.1 200 OK"]
    assert b"\r\nconnection: close\r\n" in received.lower()
    assert received.endswith(b'{"v1":"on"}')


def test_a_schema_400_carries_its_reason_phrase(sim: SimServer) -> None:
    """Every status the simulator sends has the standard phrase (http.HTTPStatus's)."""
    received = _exchange(
        sim, b"GET /extended/v1/tx?limit=99 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    assert _status_lines(received) == ["HTTP/1.1 400 Bad Request"]
