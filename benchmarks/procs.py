"""The processes a benchmark drives: the simulator, `stxbf run`, and a sampler of both.

Everything runs as its own process (`python -m stxbf ...`), so the simulator and stxbf each get a
core and no measurement shares a GIL with what it measures. Nothing here imports stxbf.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without STXBF_*/HIRO_* (a real key must never reach a benchmark)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STXBF_", "HIRO_"))}
    env.update(extra)
    return env


def http_json(url: str, method: str = "GET", timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


# -- the simulator ---------------------------------------------------------------------------


@dataclass
class Sim:
    url: str
    proc: subprocess.Popen[str] | None  # None: an API we did not start (--*-url)
    banner: str
    startup_s: float

    @property
    def simulated(self) -> bool:
        return self.proc is not None

    def stats(self) -> dict[str, Any] | None:
        if not self.simulated:
            return None
        return http_json(f"{self.url}/_sim/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        if self.simulated:
            http_json(f"{self.url}/_sim/reset", method="POST")

    def cpu_seconds(self) -> float | None:
        return None if self.proc is None else cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def simulator(
    *,
    days: float,
    tx_per_day: int,
    rpm: int = 0,
    latency_ms: float = 0.0,
    seed: int = 1,
    url: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Sim]:
    """Start `stxbf sim serve` on loopback (or wrap an external API given by `url`).

    `extra_args` are more `stxbf sim serve` options (e.g. `--rate-headers second`).
    """
    if url is not None:
        yield Sim(url.rstrip("/"), None, f"external API {url}", 0.0)
        return
    args = [
        PYTHON,
        "-m",
        "stxbf",
        "sim",
        "serve",
        "--port",
        "0",
        "--days",
        str(days),
        "--tx-per-day",
        str(tx_per_day),
        "--seed",
        str(seed),
        "--rpm",
        str(rpm),
        "--latency-ms",
        str(latency_ms),
        *extra_args,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    )
    sim: Sim | None = None
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline().strip()
        if "http://" not in banner:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"the simulator did not start: {banner!r} {err[-500:]}")
        url = banner.split("serving ", 1)[1].split()[0]
        sim = Sim(url, proc, banner, time.monotonic() - started)
        yield sim
    finally:
        if sim is not None:
            sim.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait()


# -- per-process figures ---------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def rss_bytes(pid: int) -> tuple[int | None, int | None]:
    """(current RSS, peak RSS) in bytes; /proc on Linux, psutil elsewhere (peak then unknown)."""
    rss, hwm = _status_kb(pid, "VmRSS"), _status_kb(pid, "VmHWM")
    if rss is not None:
        return rss * 1024, (hwm * 1024 if hwm is not None else None)
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss), None
    except Exception:
        return None, None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, IndexError, ValueError):
        try:
            import psutil

            times = psutil.Process(pid).cpu_times()
            return float(times.user + times.system)
        except Exception:
            return None


# -- stxbf run -------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the run started
    rss: int | None
    hwm: int | None
    stored: int | None
    requests: int | None
    sim_requests: int | None


@dataclass
class RunResult:
    exit_code: int | None
    wall_s: float
    samples: list[Sample] = field(default_factory=list)
    peak_rss: int = 0
    cpu_s: float | None = None
    progress: dict[str, Any] | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    first_request_t: float | None = None  # seconds since start, from the simulator's counter
    last_request_t: float | None = None
    interrupted: bool = False


class StxbfRun:
    """`python -m stxbf run` in its own process, sampled every `interval` seconds."""

    def __init__(
        self,
        *,
        home: Path,
        api_url: str,
        args: list[str],
        sim: Sim | None = None,
        interval: float = 0.1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.progress_path = home / "stxbf.duckdb.progress.json"
        self.runner_path = home / "stxbf.duckdb.runner.json"
        self.sim = sim
        self.interval = interval
        env = clean_env(STXBF_HOME=str(home), STXBF_API_URL=api_url, **(extra_env or {}))
        home.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "stxbf", "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.result = RunResult(exit_code=None, wall_s=0.0)
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)
            del sink[:-200]

    def progress(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.progress_path.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def _sample_loop(self) -> None:
        last_sim_requests: int | None = None
        sim_poll_every = 1 if self.sim is not None and self.sim.simulated else 0
        while not self._stop.is_set():
            t = time.monotonic() - self.started
            rss, hwm = rss_bytes(self.proc.pid)
            snap = self.progress()
            stored = snap.get("transactions_stored") if snap else None
            requests = snap.get("counters", {}).get("requests") if snap else None
            sim_requests = None
            if sim_poll_every and self.sim is not None:
                with contextlib.suppress(Exception):
                    sim_requests = int(self.sim.stats()["requests"])  # type: ignore[index]
            if sim_requests is not None:
                if sim_requests > 0 and self.result.first_request_t is None:
                    self.result.first_request_t = t
                if last_sim_requests is not None and sim_requests != last_sim_requests:
                    self.result.last_request_t = t
                last_sim_requests = sim_requests
            self.result.samples.append(Sample(t, rss, hwm, stored, requests, sim_requests))
            if rss is not None:
                self.result.peak_rss = max(self.result.peak_rss, hwm or rss, rss)
            self._stop.wait(self.interval)

    def running(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self) -> None:
        if self.running():
            self.result.interrupted = True
            self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float | None = None) -> RunResult:
        cpu = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.proc.poll() is None:
            cpu = cpu_seconds(self.proc.pid) or cpu  # the last reading before it exits
            hwm = rss_bytes(self.proc.pid)[1]
            if hwm:
                self.result.peak_rss = max(self.result.peak_rss, hwm)
            if deadline is not None and time.monotonic() > deadline:
                self.interrupt()
                deadline = None
            time.sleep(0.05)
        self.result.wall_s = time.monotonic() - self.started
        self._stop.set()
        self._sampler.join()
        for reader in self._readers:
            reader.join(5)
        self.result.exit_code = self.proc.returncode
        self.result.cpu_s = cpu
        self.result.progress = self.progress()
        if self.result.progress:  # the final count, after the sampler's last look
            stored = self.result.progress.get("transactions_stored")
            peak = self.result.peak_rss or None
            self.result.samples.append(Sample(self.result.wall_s, None, peak, stored, None, None))
        self.result.stdout_tail = "".join(self._out[-5:])
        self.result.stderr_tail = "".join(self._err[-10:])
        return self.result


def run_stxbf(**kwargs: Any) -> RunResult:
    timeout = kwargs.pop("timeout", None)
    return StxbfRun(**kwargs).wait(timeout)


# -- one-shot commands -----------------------------------------------------------------------


def stxbf_command() -> list[str]:
    """The console script next to this interpreter (what a user types), else `python -m stxbf`."""
    script = Path(PYTHON).with_name("stxbf")
    return [str(script)] if script.exists() else [PYTHON, "-m", "stxbf"]


def time_command(argv: list[str], *, env: dict[str, str], repeat: int) -> dict[str, Any]:
    """Best and median wall time of `repeat` runs of a command (stdout/stderr discarded)."""
    times: list[float] = []
    codes: set[int] = set()
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
        codes.add(done.returncode)
    times.sort()
    return {
        "best_s": round(times[0], 4),
        "median_s": round(times[len(times) // 2], 4),
        "runs": repeat,
        "exit_codes": sorted(codes),
    }


# -- what every section shares: the log, stxbf's arguments, reading a request curve ------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_args(target_days: float, concurrency: int | None, *extra: str) -> list[str]:
    args = ["--target-days", str(max(1, math.ceil(target_days))), *extra]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    return args


def requests_at(curve: list[tuple[float, int]], t: float) -> float:
    """Requests the simulator had counted by `t`, interpolated between samples."""
    times = [x for x, _ in curve]
    i = bisect.bisect_left(times, t)
    if i == 0:
        return float(curve[0][1])
    if i >= len(curve):
        return float(curve[-1][1])
    (t0, n0), (t1, n1) = curve[i - 1], curve[i]
    return n0 + (n1 - n0) * (t - t0) / (t1 - t0) if t1 > t0 else float(n1)


def first_request_t(curve: list[tuple[float, int]]) -> float | None:
    return next((t for t, n in curve if n > 0), None)


def steady_rate(curve: list[tuple[float, int]], warm_up: float) -> float | None:
    """Requests a second after the warm-up, until 95 % of them were sent (the last few windows
    drain with fewer requests left than may be in flight), as tests/fetch/test_rate_styles.py reads
    it."""
    first = first_request_t(curve)
    if first is None:
        return None
    start = first + warm_up
    total = curve[-1][1]
    end = next((t for t, n in curve if n >= 0.95 * total), None)
    if end is None or end - start < 1.0:
        return None
    return (requests_at(curve, end) - requests_at(curve, start)) / (end - start)
