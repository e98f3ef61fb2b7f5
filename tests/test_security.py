"""Security promises: the API key goes into the `x-api-key` header and nowhere else, what stxbf
creates is the user's alone, nothing a user names can become a shell command, and the key is never
sent in clear text to another machine.

The simulator accepts only the test's key, so a run that completes also proves the key arrived.
Every other place is searched for it: each request's URL and other headers, every process's argv
(/proc/*/cmdline), tmux panes, tmux's environment, shell history, every file in the data directory
(log, database, progress and pid files), `status --json`, `health --json`, `logs`, error messages
and tracebacks.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stxbf.codes import ExitCode
from stxbf.paths import DataPaths
from stxbf.simulator import SimConfig, SimServer, run_in_thread
from tests.checks import Recorder, assert_range_exact, tree_modes
from tests.helpers import (
    assert_one_line_error,
    cron_env,
    processes_mentioning,
    retry_until,
    spawn,
    stxbf,
    wait_for_snapshot,
)

pytestmark = pytest.mark.slow  # runs against the simulator, most as `python -m stxbf`

KEY = "sk-stxbf-test-3f9a1c7e5b2d4a68"  # distinctive: any occurrence is a leak
CHAIN = SimConfig(days=4, tx_per_day=1200, seed=51, require_key=True, api_keys=(KEY,))


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with run_in_thread(CHAIN.with_(latency_ms=15)) as server:
        yield server


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle`."""
    data = needle.encode()
    return [str(path) for path in root.rglob("*") if path.is_file() and data in path.read_bytes()]


# -- the key on the wire, in files, in output -------------------------------------------------


def test_key_travels_only_in_its_header_and_leaks_nowhere(
    sim: SimServer, isolated_env: Path
) -> None:
    recorder = Recorder(sim)
    env = cron_env(STXBF_API_KEY=KEY, STXBF_LOG_LEVEL="DEBUG")
    proc = spawn("run", "--api-url", sim.url, "--target-days", "3", "--rpm", "3000", env=env)
    try:
        wait_for_snapshot(
            isolated_env / "stxbf.duckdb.progress.json",
            lambda s: s.counters.windows_verified >= 1,
            proc=proc,
        )
        assert processes_mentioning(KEY) == []  # argv of every process on the machine
        for command in (("status", "--json"), ("health", "--json"), ("logs", "-n", "200")):
            shown = stxbf(*command, env=cron_env())
            assert KEY not in shown.stdout + shown.stderr, command
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.OK, err  # the simulator accepts nothing but KEY
    assert KEY not in out + err

    requests = recorder.since(0)
    assert requests and all(r.headers.get("x-api-key") == KEY for r in requests)
    for request in requests:
        assert KEY not in request.target  # never in a URL or query string
        others = {k: v for k, v in request.headers.items() if k != "x-api-key"}
        assert KEY not in json.dumps(others)

    assert files_containing(isolated_env, KEY) == []  # log, database, WAL, progress, pid file
    for command in (("status", "--json"), ("health", "--json"), ("logs", "-n", "500")):
        shown = stxbf(*command, env=cron_env())
        assert KEY not in shown.stdout + shown.stderr, command
    assert_range_exact(isolated_env / "stxbf.duckdb", sim)


@pytest.mark.parametrize(
    "key",
    [KEY[:-4] + "XXXX", KEY + "\n", "  " + KEY + "  "],
    ids=["wrong-key-403", "trailing-newline", "surrounding-spaces"],
)
def test_key_never_appears_in_errors_or_snapshots(
    key: str, sim: SimServer, isolated_env: Path
) -> None:
    """A rejected key, or one pasted with whitespace, shows up in no message, file or report."""
    env = cron_env(STXBF_API_KEY=key)
    result = stxbf("run", "--api-url", sim.url, "--target-days", "1", env=env)
    if key.strip() == KEY:  # whitespace around the right key is dropped: the run works
        assert result.returncode == ExitCode.OK, result.stderr
    else:
        line = assert_one_line_error(result, ExitCode.ERROR)
        assert "(403)" in line
    secret = key.strip()
    assert secret not in result.stdout + result.stderr
    assert files_containing(isolated_env, secret) == []
    for command in (("status", "--json"), ("health", "--json")):
        assert secret not in stxbf(*command, env=cron_env()).stdout


def test_an_internal_error_shows_one_line_and_logs_no_locals(
    sim: SimServer, isolated_env: Path
) -> None:
    """A bug inside the run, with the key in a local variable: no traceback on screen, none
    with locals in the log, and the key nowhere."""
    script = (
        "import sys\n"
        "from stxbf import runner\n"
        "async def broken(self):\n"
        "    api_key = self.params.api_key  # a local holding the key\n"
        "    raise RuntimeError('simulated bug in the runner')\n"
        "runner.Runner.run = broken\n"
        "from stxbf.cli.main import main\n"
        f"sys.argv = ['stxbf', 'run', '--api-url', {sim.url!r}]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=cron_env(STXBF_API_KEY=KEY),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = assert_one_line_error(result, ExitCode.ERROR)
    assert "internal error: RuntimeError: simulated bug in the runner" in line
    log = (isolated_env / "logs" / "stxbf.log").read_text()
    assert "Traceback" in log and ", in broken" in log  # kept for a bug report …
    assert KEY not in log + result.stderr + result.stdout  # … without the values of locals


def test_a_redirect_never_carries_the_key_elsewhere(isolated_env: Path) -> None:
    """An API that redirects is an error; the key is not replayed to the redirect's target."""
    seen: list[str] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("x-api-key") or "")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirect(Elsewhere):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("location", f"http://127.0.0.1:{other.server_address[1]}/steal")
            self.send_header("content-length", "0")
            self.end_headers()

    first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (other, first):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{first.server_address[1]}"
        result = stxbf("run", "--api-url", url, env=cron_env(STXBF_API_KEY=KEY))
    finally:
        first.shutdown()
        other.shutdown()
    line = assert_one_line_error(result, ExitCode.ERROR)
    assert "redirected" in line
    assert seen == []


# -- plain http only to this machine ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.org",
        "http://127.0.0.1.nip.io:3999",
        "http://localhost.example.org",
        "http://127.0.0.1@api.example.org",
        "http://10.0.0.7:3999",
        "HTTP://API.EXAMPLE.ORG",
    ],
    ids=["remote", "loopback-lookalike", "localhost-prefix", "userinfo-trick", "lan", "upper-case"],
)
def test_the_key_is_never_sent_over_plain_http_to_another_machine(
    url: str, isolated_env: Path
) -> None:
    """Refused before any connection (https, and http to loopback, are used by the tests above
    and in test_settings.py)."""
    result = stxbf("run", "--api-url", url, env=cron_env(STXBF_API_KEY=KEY))
    line = assert_one_line_error(result, ExitCode.USAGE)
    assert "refusing to send the API key over plain http" in line
    assert KEY not in result.stdout + result.stderr
    assert not (isolated_env / "stxbf.duckdb").exists()


# -- what stxbf creates is the user's alone -----------------------------------------------------


def test_everything_created_in_the_data_directory_is_private(
    sim: SimServer, tmp_path: Path
) -> None:
    home = tmp_path / "fresh" / "nested" / "home"  # nothing of it exists yet
    old = os.umask(0o022)  # a usual, permissive umask in the calling shell
    try:
        env = cron_env(STXBF_API_KEY=KEY, STXBF_HOME=str(home))
        done = stxbf("run", "--api-url", sim.url, "--target-days", "2", env=env)
        assert done.returncode == ExitCode.OK, done.stderr
        for command in (("status",), ("health",), ("logs",)):
            stxbf(*command, env=env)
    finally:
        os.umask(old)
    modes = tree_modes(home)
    assert len(modes) >= 5  # home, logs/, the log, the database, the lock, ...
    loose = {path: oct(mode) for path, mode in modes.items() if mode & 0o077}
    assert loose == {}


# -- tmux: key hand-over, and names that stay names --------------------------------------------

HOSTILE_SESSION = "stx'; touch pwned-session; echo \"$(touch pwned-session2)"
HOSTILE_DIR = (
    "my data $(touch pwned-home) `touch pwned-tick` it's; touch pwned-semi #(touch pwned-fmt)"
)


@pytest.mark.tmux
def test_tmux_run_keeps_the_key_secret_and_hostile_names_inert(server: Any, tmp_path: Path) -> None:
    cwd = tmp_path / HOSTILE_DIR / "cwd"  # tmux format-expands a start directory
    cwd.mkdir(parents=True)
    home = tmp_path / HOSTILE_DIR / "home"
    home_env = tmp_path / "user-home"  # $HOME: where shell history would land
    env = cron_env(
        STXBF_API_KEY=KEY,
        STXBF_TMUX_SOCKET=str(server.socket_name),
        STXBF_HOME=str(home),
        HOME=str(home_env),
    )
    args = ("--session-name", HOSTILE_SESSION)
    # `start` returns once the first pages came: a slower API keeps the run going to be watched
    with run_in_thread(CHAIN.with_(latency_ms=150)) as slow:
        started = subprocess.run(
            [sys.executable, "-m", "stxbf", "tmux", "start", "--detach", *args,
             "--api-url", slow.url, "--target-days", "2", "--concurrency", "2", "--inhibit",
             "none"],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        _watch_the_key_while_it_runs(server, started, home)
    _check_status_stop_and_names(env, cwd, args, tmp_path, home, home_env)


def _watch_the_key_while_it_runs(server: Any, started: Any, home: Path) -> None:
    from stxbf.session import tmux as session_tmux

    assert started.returncode == 0, started.stderr
    assert KEY not in started.stdout + started.stderr

    def runner_finished() -> Any:
        info = session_tmux.describe_session(server, HOSTILE_SESSION)
        runner = info.pane("runner") if info else None
        return runner if runner is not None and runner.dead else None

    seen_running = False
    for _ in range(200):  # while it runs: argv, panes and tmux's environment
        assert processes_mentioning(KEY) == []
        info = session_tmux.describe_session(server, HOSTILE_SESSION)
        assert info is not None
        for pane in info.panes:
            assert KEY not in session_tmux.capture(server, pane.pane_id, lines=2000)
        for scope in (("-g",), ("-t", str(info.session_id))):
            assert KEY not in "\n".join(server.cmd("show-environment", *scope).stdout)
        seen_running = seen_running or (home.parent / "home" / "stxbf.duckdb.runner.json").exists()
        if runner_finished():
            break
        threading.Event().wait(0.1)
    runner = retry_until(runner_finished, timeout=90)
    assert runner.dead_status == 0  # the key reached the runner: the simulator demands it
    assert seen_running


def _check_status_stop_and_names(
    env: dict[str, str], cwd: Path, args: tuple[str, ...], tmp_path: Path, home: Path,
    home_env: Path,
) -> None:  # fmt: skip
    for verb in (("tmux", "status"), ("tmux", "stop", "--timeout", "10")):
        done = subprocess.run(
            [sys.executable, "-m", "stxbf", *verb, *args],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert KEY not in done.stdout + done.stderr

    assert not list(tmp_path.rglob("pwned*"))  # cwd, the data directory and $HOME are in here
    for where in (Path.cwd(), Path.home(), Path("/"), Path("/tmp")):
        assert not list(where.glob("pwned*"))
    assert home.is_dir()  # the hostile path was used as a path, literally
    assert not list((home / "run").glob("api_key.*"))  # the key file was consumed
    history = [p for p in home_env.rglob("*history*")] if home_env.exists() else []
    assert all(KEY not in p.read_text(errors="replace") for p in history)
    assert files_containing(home, KEY) == []
    created = {p: oct(m) for p, m in tree_modes(home).items() if m & 0o077}
    assert created == {}


def test_no_object_that_holds_the_key_prints_it(tmp_path: Path) -> None:
    """A traceback or a debug log shows objects by their repr: none of ours may show the key."""
    from stxbf.fetch.client import ApiClient
    from stxbf.runner.params import RunParams
    from stxbf.settings import Settings

    params = RunParams(
        api_url="http://127.0.0.1:1",
        api_key=KEY,
        paths=DataPaths.of(tmp_path),
    )
    client = ApiClient("http://127.0.0.1:1", api_key=KEY)
    settings = Settings(api_key=KEY)
    for shown in (params, client, settings):
        assert KEY not in repr(shown)
        assert KEY not in str(shown)
