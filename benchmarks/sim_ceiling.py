"""The simulator's serving ceiling: its HTTP listener against another revision's, interleaved.

    python benchmarks/sim_ceiling.py                        # the listener of this checkout
    python benchmarks/sim_ceiling.py --against 31a148d      # and that commit's, turn about

Each round starts a fresh simulator process per listener (no limit, no latency, no faults) and
drives it from this process with plain keep-alive HTTP/1.1 on raw asyncio sockets, as hard as it
can, in two loads: `pages`, stxbf's paging of time windows over `/extended/v1/tx`
(benchmarks/rawload.py, the ceiling `run.py`'s bulk section measures), and `status`, the tiny
`/extended/v1/status` answer, where the HTTP layer is most of the server's work. Rounds alternate
the order (A B, B A, ...), so the load of a shared machine falls on both sides alike. Besides
answers a second it reports answers per CPU second of the simulator process, which a busy machine
disturbs less. Prints the medians, the ratios (this checkout / the other) and every round as JSON.
Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rawload

ROOT = Path(__file__).resolve().parent.parent
CURRENT = "current"


# ---- the server side (a child process) --------------------------------------------------------


def _listener_class(which: str) -> Any:
    """Return the Listener class of this checkout, or of the revision `which` (read with git).

    The listener had a module of its own (listener.py) until it joined server.py.
    """
    if which == CURRENT:
        from stxbf.simulator.server import Listener

        return Listener
    for module in ("listener", "server"):
        shown = subprocess.run(
            ["git", "show", f"{which}:src/stxbf/simulator/{module}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if shown.returncode == 0 and "class Listener" in shown.stdout:
            break
    else:
        raise SystemExit(f"no simulator listener at {which}")
    path = Path(tempfile.mkdtemp()) / f"listener_{which}.py"
    path.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location(f"listener_{which}", path)
    assert spec is not None and spec.loader is not None
    module_object = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module_object)
    return module_object.Listener


def serve(which: str, days: float, tx_per_day: int) -> None:
    """Serve a simulator with the chosen listener until SIGTERM; print its URL when ready."""
    from stxbf.simulator import SimApi, SimConfig

    listener_class = _listener_class(which)
    api = SimApi(SimConfig(days=days, tx_per_day=tx_per_day, seed=7, end_time=1_750_000_000))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        listener = listener_class(api, "127.0.0.1", 0)
        await listener.start()
        print(f"http://127.0.0.1:{listener.port}", flush=True)
        await stop.wait()
        await listener.close()

    asyncio.run(main())


# ---- the client side (this process) ----------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def simulator(which: str, args: argparse.Namespace) -> Iterator[tuple[str, int]]:
    argv = [sys.executable, __file__, "serve", which]
    argv += ["--days", str(args.days), "--tx-per-day", str(args.tx_per_day)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the simulator ({which}) did not start")
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def hammer(url: str, path: str, seconds: float, concurrency: int) -> int:
    """GET `path` on `concurrency` keep-alive connections for `seconds`; return the 200s."""
    host_port = url.removeprefix("http://")
    host, port = host_port.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    answered = 0

    async def worker() -> None:
        nonlocal answered
        conn = rawload.Conn(host, int(port))
        while time.monotonic() < deadline:
            status, _ = await conn.get(path)
            answered += status == 200
        conn.reset()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


def measure(which: str, args: argparse.Namespace) -> dict[str, Any]:
    """One round for one listener: the `pages` load, then the `status` load."""
    with simulator(which, args) as (url, pid):
        with urlopen(f"{url}/_sim/chain") as answer:
            chain = json.load(answer)
        start, end = chain["first_burn_block_time"], chain["last_burn_block_time"]
        load = argparse.Namespace(
            url=url,
            start=start,
            end=end,
            span=0,
            seconds=args.seconds,
            concurrency=args.concurrency,
        )
        cpu0 = _cpu_seconds(pid)
        pages = asyncio.run(rawload.main(load))
        cpu1 = _cpu_seconds(pid)
        began = time.monotonic()
        status = asyncio.run(hammer(url, "/extended/v1/status", args.seconds, args.concurrency))
        wall = time.monotonic() - began
        cpu2 = _cpu_seconds(pid)
    return {
        "listener": which,
        "pages_per_s": pages["pages_per_s"],
        "pages_per_cpu_s": round(pages["pages"] / max(1e-9, cpu1 - cpu0), 1),
        "status_per_s": round(status / wall, 1),
        "status_per_cpu_s": round(status / max(1e-9, cpu2 - cpu1), 1),
        "errors": pages["errors"] + pages["non_200"],
    }


FIGURES = ("pages_per_s", "pages_per_cpu_s", "status_per_s", "status_per_cpu_s")


def main(args: argparse.Namespace) -> dict[str, Any]:
    sides = [CURRENT] + ([args.against] if args.against else [])
    rounds: list[dict[str, Any]] = []
    for k in range(args.rounds):
        for which in sides if k % 2 == 0 else list(reversed(sides)):
            rounds.append(measure(which, args))
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    medians = {
        which: {
            figure: statistics.median(r[figure] for r in rounds if r["listener"] == which)
            for figure in FIGURES
        }
        for which in sides
    }
    result: dict[str, Any] = {"medians": medians, "rounds": rounds}
    if args.against:
        theirs = medians[args.against]
        result["ratios"] = {
            figure: round(medians[CURRENT][figure] / theirs[figure], 3) for figure in FIGURES
        }
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serving = argparse.ArgumentParser()
        serving.add_argument("serve")
        serving.add_argument("which")
        serving.add_argument("--days", type=float, required=True)
        serving.add_argument("--tx-per-day", type=int, required=True)
        given = serving.parse_args()
        serve(given.which, given.days, given.tx_per_day)
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git revision whose listener to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0, help="of each load, per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--days", type=float, default=10)
    parser.add_argument("--tx-per-day", type=int, default=20_000)
    print(json.dumps(main(parser.parse_args()), indent=2))
