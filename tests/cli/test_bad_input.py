"""Bad input, one table: every case ends with one `stxbf: error:` line (and at most one indented
hint), its documented exit code, no traceback, and the database exactly as it was.

Each case starts from a copy of a real, verified backfill (or from the broken file the case is
about), and compares what the database holds (tx_ids, windows, meta) and the file's bytes before
and after: a run that fails before its first write leaves the file untouched. docs/cli.md
documents the exit codes: 2 usage (flags, environment, config file, data directory, key over plain
http), 1 error (the API, the database, tmux).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest

from stxbf.simulator import SimConfig, run_in_thread
from tests.checks import file_digest, fingerprint
from tests.helpers import assert_one_line_error, cron_env, read_only_dir, stxbf

pytestmark = pytest.mark.slow  # each case runs `python -m stxbf` as cron would

USAGE, ERROR, INCOMPLETE, DATABASE = 2, 1, 3, 65
CHAIN = SimConfig(days=3, tx_per_day=600, seed=41)


class BadInput(NamedTuple):
    id: str
    args: tuple[str, ...]
    code: int
    message: str  # a fragment of the one error line
    env: tuple[tuple[str, str], ...] = ()
    setup: str | None = None  # how to break the data directory or database first


CASES = [
    # flags and settings
    BadInput("target-days-zero", ("run", "--target-days", "0"), USAGE, "--target-days"),
    BadInput("target-days-negative", ("run", "--target-days", "-5"), USAGE, "--target-days"),
    BadInput("target-days-absurd", ("run", "--target-days", "9" * 20), USAGE, "--target-days"),
    BadInput("target-days-not-a-number", ("run", "--target-days", "ten"), USAGE, "--target-days"),
    BadInput("concurrency-zero", ("run", "--concurrency", "0"), USAGE, "--concurrency"),
    BadInput("concurrency-absurd", ("run", "--concurrency", "100000"), USAGE, "--concurrency"),
    BadInput("max-requests-zero", ("run", "--max-requests", "0"), USAGE, "--max-requests"),
    BadInput("max-requests-text", ("run", "--max-requests", "lots"), USAGE, "--max-requests"),
    BadInput("rpm-negative", ("run", "--rpm", "-3"), USAGE, "--rpm"),
    BadInput("give-up-after-zero", ("run", "--give-up-after", "0"), USAGE, "--give-up-after"),
    BadInput(
        "env-not-a-number", ("run",), USAGE, "STXBF_TARGET_DAYS", (("STXBF_TARGET_DAYS", "ten"),)
    ),
    BadInput("config-file-malformed", ("run",), USAGE, "config file", setup="bad-config"),
    BadInput(
        "config-file-missing", ("run",), USAGE, "does not exist", (("STXBF_CONFIG", "/nope.toml"),)
    ),
    BadInput("unknown-subcommand", ("frobnicate",), USAGE, "No such command"),
    BadInput("unknown-flag", ("run", "--frobnicate"), USAGE, "No such option"),
    BadInput("logs-unknown-level", ("logs", "--level", "LOUD"), USAGE, "LOUD"),
    # the API URL
    BadInput("url-bad-scheme", ("run", "--api-url", "ftp://api.hiro.so"), USAGE, "--api-url"),
    BadInput("url-no-host", ("run", "--api-url", "http://"), USAGE, "--api-url"),
    BadInput(
        "url-unresolvable",
        ("run", "--api-url", "http://stxbf-test.invalid"),
        ERROR,
        "cannot resolve host",
    ),
    BadInput("url-closed-port", ("run", "--api-url", "{closed}"), ERROR, "connection refused"),
    BadInput("url-not-the-api-404", ("run", "--api-url", "{sim}/nope"), ERROR, "404"),
    BadInput("url-answers-html", ("run", "--api-url", "{odd}/html"), ERROR, "text/html"),
    BadInput("url-answers-other-json", ("run", "--api-url", "{odd}/json"), ERROR, "envelope"),
    BadInput("url-redirects", ("run", "--api-url", "{odd}/moved"), ERROR, "redirected"),
    # the key
    BadInput("key-missing-401", ("run", "--api-url", "{keyed}"), ERROR, "(401)"),
    BadInput(
        "key-wrong-403",
        ("run", "--api-url", "{keyed}"),
        ERROR,
        "(403)",
        (("STXBF_API_KEY", "not-the-key"),),
    ),
    BadInput(
        "key-over-plain-http",
        ("run", "--api-url", "http://api.example.org"),
        USAGE,
        "refusing to send the API key over plain http",
        (("HIRO_API_KEY", "k-123"),),
    ),
    BadInput(
        "key-unusable-characters",
        ("run",),
        USAGE,
        "API key contains characters",
        (("STXBF_API_KEY", "k\x01ey"),),
    ),
    BadInput(
        "v1-route-gone-410", ("run", "--source", "v1", "--api-url", "{gone}"), ERROR, "410 Gone"
    ),
    BadInput("source-unknown", ("run", "--source", "v2"), USAGE, "source"),
    # the data directory and the database
    BadInput("home-is-a-file", ("run",), USAGE, "is a file, not a directory", setup="home-file"),
    BadInput("home-under-a-file", ("run",), USAGE, "cannot create", setup="home-under-file"),
    BadInput("home-read-only", ("run",), USAGE, "not writable", setup="home-read-only"),
    BadInput("db-is-a-directory", ("run",), USAGE, "is a directory", setup="db-dir"),
    BadInput("db-corrupted", ("run",), DATABASE, "not a DuckDB database", setup="db-corrupt"),
    BadInput("db-empty-file", ("run",), DATABASE, "not a DuckDB database", setup="db-empty"),
    BadInput("db-foreign-duckdb", ("run",), DATABASE, "not one stxbf wrote", setup="db-foreign"),
    BadInput("db-newer-schema", ("run",), DATABASE, "upgrade stxbf", setup="db-newer"),
    BadInput("status-db-newer-schema", ("status",), DATABASE, "upgrade stxbf", setup="db-newer"),
    # tmux
    BadInput(
        "tmux-missing",
        ("tmux", "start", "--detach"),
        ERROR,
        "tmux is not installed",
        (("PATH", "/nonexistent"),),
    ),
    BadInput(
        "session-name-tmux-rejects",
        ("tmux", "start", "--detach", "--session-name", "stx:backfill"),
        USAGE,
        "invalid session name",
    ),
    BadInput(
        "session-name-control-chars",
        ("tmux", "start", "--detach", "--session-name", "stx\tbackfill"),
        USAGE,
        "invalid session name",
    ),
]


# -- servers the cases point at ----------------------------------------------------------------


class _Odd(http.server.BaseHTTPRequestHandler):
    """Answers that are not the Stacks API: an HTML page, foreign JSON, a redirect."""

    def do_GET(self) -> None:
        if self.path.startswith("/html/"):
            self._send(200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
        elif self.path.startswith("/json/"):
            self._send(200, "application/json", b'{"hello": "world"}')
        else:
            self._send(301, "text/plain", b"moved", location="https://example.org/")

    def _send(self, status: int, kind: str, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        if location:
            self.send_header("location", location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    odd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=odd.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with (
        run_in_thread(CHAIN) as sim,
        run_in_thread(CHAIN.with_(require_key=True)) as keyed,
        run_in_thread(CHAIN.with_(v1_gone=True)) as gone,
    ):
        yield {
            "sim": sim.url,
            "keyed": keyed.url,
            "gone": gone.url,
            "odd": f"http://127.0.0.1:{odd.server_address[1]}",
            "closed": closed,
        }
    odd.shutdown()


@pytest.fixture(scope="module")
def backfilled(urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, verified two-day backfill; each case starts from a copy of its database."""
    home = tmp_path_factory.mktemp("reference")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STXBF_", "HIRO_"))}
    env["STXBF_HOME"] = str(home)
    done = stxbf("run", "--api-url", urls["sim"], "--target-days", "2", env=env)
    assert done.returncode == 0, done.stderr
    return home / "stxbf.duckdb"


# -- breaking things ---------------------------------------------------------------------------


def prepare(case: BadInput, home: Path, reference: Path, env: dict[str, str]) -> Path:
    """Lay out the case's data directory; returns the database file to watch."""
    db = home / "stxbf.duckdb"
    home.mkdir(parents=True, exist_ok=True)
    setup = case.setup
    if setup == "home-file":
        env["STXBF_HOME"] = str(home / "a-file")
        (home / "a-file").write_text("not a directory")
    elif setup == "home-under-file":
        env["STXBF_HOME"] = str(home / "a-file" / "home")
        (home / "a-file").write_text("not a directory")
    elif setup == "db-dir":
        db.mkdir()
    elif setup == "db-corrupt":
        db.write_bytes(os.urandom(200_000))
    elif setup == "db-empty":
        db.write_bytes(b"")
    elif setup == "db-foreign":
        with duckdb.connect(str(db)) as con:
            con.execute("CREATE TABLE users (id INTEGER, email VARCHAR)")
            con.execute("INSERT INTO users VALUES (1, 'someone@example.org')")
    elif setup == "db-newer":
        shutil.copy(reference, db)
        with duckdb.connect(str(db)) as con:
            con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    else:
        shutil.copy(reference, db)
    if setup == "bad-config":
        config = home / "config.toml"
        config.write_text("target_days = [\n")
        env["STXBF_CONFIG"] = str(config)
    return db


def snapshot(db: Path) -> tuple[str | None, str | None, bool]:
    """(contents, bytes, is a directory) of the database path."""
    if db.is_dir():
        return None, None, True
    try:
        contents = fingerprint(db)
    except Exception as exc:  # the broken file the case is about: its bytes must stay as they are
        contents = f"unreadable: {type(exc).__name__}: {exc}"
    return contents, file_digest(db), False


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_with_its_exit_code_and_changes_nothing(
    case: BadInput, urls: dict[str, str], backfilled: Path, isolated_env: Path
) -> None:
    # A fixed rate skips the 50/min guess before the first answer: failing fast is not the point.
    env = cron_env(
        STXBF_TMUX_SOCKET=f"stxbf-bad-input-{os.getpid()}",
        STXBF_GIVE_UP_AFTER="1",
        STXBF_RPM="60000",
    )
    env.update(dict(case.env))
    db = prepare(case, isolated_env, backfilled, env)
    before = snapshot(db)
    args = tuple(arg.format(**urls) for arg in case.args)
    if case.setup == "home-read-only":
        with read_only_dir(isolated_env):
            result = stxbf(*args, env=env, timeout=60)
    else:
        result = stxbf(*args, env=env, timeout=60)
    line = assert_one_line_error(result, case.code)
    assert case.message in line
    after = snapshot(db)
    assert after[0] == before[0], "the database's contents changed"
    assert after[2] == before[2]
    assert after[1] == before[1], "the database file's bytes changed"


def test_a_first_run_with_a_bad_api_url_creates_no_database_content(
    urls: dict[str, str], isolated_env: Path
) -> None:
    """Nothing was there: a run that never reached the API leaves no windows or transactions."""
    result = stxbf("run", "--api-url", urls["sim"] + "/nope", env=cron_env())
    assert_one_line_error(result, ERROR)
    db = isolated_env / "stxbf.duckdb"
    # The runner opens the database (an empty schema) and starts publishing its progress before
    # the preflight's request fails; that last snapshot (phase failed) is what status reads: a run
    # that stopped short of its target, so incomplete (3), not "no backfill yet" (7).
    assert db.exists() and (isolated_env / "stxbf.duckdb.progress.json").exists()
    status = stxbf("status", "--json", env=cron_env())
    assert (json.loads(status.stdout)["state"], status.returncode) == ("incomplete", INCOMPLETE)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM windows").fetchone() == (0,)
