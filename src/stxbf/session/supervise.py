"""The `python -m stxbf.session.supervise` entry point: restart the tmux runner after outages.

    python -m stxbf.session.supervise --home DIR --db FILE -- python -m stxbf run …

`stxbf run` alone gives up after `--give-up-after` seconds of failures, which is what cron wants.
In tmux nobody is there to start it again, so the runner pane runs this loop around it: when a run
ends with a failure that a later try can fix, it waits (10 s, doubling to 5 min, ±20% jitter) and
starts the run again, until the target is reached or the run is stopped.

What is retried is decided from how the run ended, not from its exit code alone: an outage and a
database error both exit 1. So each run writes a `RunEnding` (exit code, error class, whether a
later try can fix it) to the file named by STXBF_SUPERVISOR_OUTCOME; a run that wrote none (a
crash, a usage error) is never retried. Exit 75 (a used-up quota) waits until the reset the run
reported. A run that fails before the API ever answered in this pane is not retried either: that
is a wrong URL, port or proxy, which `stxbf tmux start` reports at once instead of retrying it for
ever.

The restart count reaches the run as STXBF_SUPERVISOR_RESTARTS; it publishes it in its snapshot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from stxbf import snapshot
from stxbf.codes import ExitCode, SupervisorState
from stxbf.errors import QuotaExhausted, StxbfError, retryable
from stxbf.paths import DataPaths, SupervisorRecord, remove_record, write_supervisor_record

logger = logging.getLogger("stxbf.session.supervise")  # also when run as __main__

RUN_ENDING_ENV = "STXBF_SUPERVISOR_OUTCOME"  # the name older releases used, kept for them
RESTARTS_ENV = "STXBF_SUPERVISOR_RESTARTS"
FIRST_DELAY = 10.0
MAX_DELAY = 300.0
JITTER = 0.2
SLEEP_SLICE = 0.5  # a stop during a wait is noticed within this long


@dataclass(frozen=True)
class RunEnding:
    """How one run ended: `stxbf run` writes it for its supervisor, which decides on it.

    (`stxbf.codes.Outcome` is another thing: a state's label and exit code.)
    """

    exit_code: int
    error: str | None = None  # the StxbfError class name
    retryable: bool = False
    resets_at: float | None = None  # a used-up quota's reset (unix time), when stated

    @classmethod
    def of_error(cls, exc: StxbfError) -> RunEnding:
        return cls(
            exit_code=int(exc.exit_code),
            error=type(exc).__name__,
            retryable=retryable(exc),
            resets_at=exc.resets_at if isinstance(exc, QuotaExhausted) else None,
        )


def write_run_ending(path: Path, ending: RunEnding) -> None:
    """Write how the run ended; a file that cannot be written only costs the supervisor a retry."""
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(asdict(ending)), encoding="utf-8")


def read_run_ending(path: Path) -> RunEnding | None:
    """Read how the run ended, or None when it wrote nothing readable (a crash, a usage error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(RunEnding)}
        return RunEnding(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def api_has_answered(snap: snapshot.ProgressSnapshot | None) -> bool:
    """Tell whether this run's snapshot shows that the API answered (preflight done, pages came)."""
    if snap is None:
        return False
    return (
        snap.chain_start is not None
        or snap.expected_total is not None
        or snap.counters.pages > 0
        or snap.last_progress_at is not None
    )


@dataclass(frozen=True)
class Decision:
    """Say whether the supervisor starts the run again, why, and until when it waits for a quota."""

    retry: bool
    reason: str
    wait_until: float | None = None  # a quota reset to wait for, instead of the backoff


def decide(
    code: int, ending: RunEnding | None, *, answered: bool, snap: snapshot.ProgressSnapshot | None
) -> Decision:
    """Decide whether to start the run again: after an outage or a quota, once the API answered."""
    if code == ExitCode.OK:
        return Decision(False, "target reached")
    if code == ExitCode.INTERRUPTED:
        return Decision(False, "stopped")
    if ending is None or ending.exit_code != code:
        return Decision(False, f"exit {code} without a recorded outcome: not retried")
    if not ending.retryable:
        return Decision(False, f"{ending.error or 'exit ' + str(code)} is not retried")
    if not answered:
        return Decision(False, "the API never answered: check --api-url, the network or a proxy")
    if code == ExitCode.RATE_LIMITED:
        reset = ending.resets_at or (snap.rate_limited_until if snap is not None else None)
        return Decision(True, "quota used up", wait_until=reset)
    return Decision(True, ending.error or "retryable failure")


def backoff(step: int, rng: Callable[[], float] = random.random) -> float:
    """Return the wait before restart `step`: 10 s doubling to 5 min, jittered to spread them."""
    base = min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, step))
    return float(base * (1 - JITTER + 2 * JITTER * rng()))


class Supervisor:
    """Run `argv` again and again until it ends for good.

    The process, clock, sleep and randomness are injectable, so that tests run the loop without
    waiting.
    """

    def __init__(
        self,
        argv: Sequence[str],
        paths: DataPaths,
        *,
        spawn: Callable[..., Any] = subprocess.Popen,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.argv = list(argv)
        self.paths = paths
        self.spawn = spawn
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.restarts = 0
        self.stopping = False
        self.child: Any = None

    def request_stop(self, signum: int) -> None:
        """End the loop on a stop (Ctrl+C, `stxbf tmux stop`); the run in progress checkpoints."""
        self.stopping = True
        if signum == signal.SIGTERM and self.child is not None:
            # SIGINT from the terminal reaches the run too (same process group); SIGTERM is sent
            # to this process alone, so pass it on.
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Run until the run ends for good; the supervisor record says what the loop is doing."""
        try:
            return self._loop()
        finally:
            remove_record(self.paths.supervisor_record)

    def _record(self, state: SupervisorState, **details: Any) -> None:
        record = SupervisorRecord(pid=os.getpid(), state=state, restarts=self.restarts, **details)
        with contextlib.suppress(OSError):
            write_supervisor_record(self.paths.supervisor_record, record)

    def _loop(self) -> int:
        answered = False
        step = 0
        failing_since: float | None = None
        self.paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ending_path = self.paths.run_ending(os.getpid())
        while True:
            ending_path.unlink(missing_ok=True)
            env = {**os.environ, RUN_ENDING_ENV: str(ending_path), RESTARTS_ENV: str(self.restarts)}
            started = self.clock()
            self._record(SupervisorState.RUNNING, failing_since=failing_since)
            self.child = self.spawn(self.argv, env=env)
            code = _exit_code(self.child.wait())
            pid = self.child.pid
            self.child = None
            ending = read_run_ending(ending_path)
            ending_path.unlink(missing_ok=True)
            snap = snapshot.read(self.paths.progress)
            snap = snap if snap is not None and snap.pid == pid else None
            answered = answered or api_has_answered(snap)
            if self.stopping:
                logger.info("supervisor: stopped; the run ended with exit %d", code)
                return code if code else int(ExitCode.INTERRUPTED)
            decision = decide(code, ending, answered=answered, snap=snap)
            if not decision.retry:
                logger.info("supervisor: the run ended with exit %d (%s)", code, decision.reason)
                return code
            if self.clock() - started > MAX_DELAY or failing_since is None:
                step = 0  # it ran a while: a new outage, start the backoff afresh
                failing_since = self.clock()
            delay = backoff(step, self.rng)
            step += 1
            if decision.wait_until is not None:
                delay = max(delay, decision.wait_until - self.clock() + delay * JITTER)
            self.restarts += 1
            self._record(
                SupervisorState.WAITING,
                failing_since=failing_since,
                restart_at=self.clock() + delay,
                reason=decision.reason,
            )
            logger.warning(
                "supervisor: the run ended with exit %d (%s); restart %d in %.0f s",
                code,
                decision.reason,
                self.restarts,
                delay,
            )
            _say(f"stxbf: run ended ({decision.reason}); restart {self.restarts} in {delay:.0f} s")
            if not self._wait(delay):
                logger.info("supervisor: stopped while waiting to restart")
                return int(ExitCode.INTERRUPTED)

    def _wait(self, seconds: float) -> bool:
        """Sleep in slices, and return False when a stop came meanwhile."""
        deadline = self.clock() + seconds
        while not self.stopping:
            left = deadline - self.clock()
            if left <= 0:
                return True
            self.sleep(min(SLEEP_SLICE, left))
        return False


def _exit_code(returncode: int) -> int:
    """Return the exit code as a shell reports it: a run killed by signal n exits 128 + n."""
    return 128 - returncode if returncode < 0 else returncode


def _say(line: str) -> None:
    """Print a line to the pane, where the operator reads why the run is restarted."""
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse `--home`, `--db` and the command after `--`, then supervise that command."""
    import argparse

    from stxbf.logs import configure_logging

    args = list(sys.argv[1:] if argv is None else argv)
    command = args[args.index("--") + 1 :] if "--" in args else []
    parser = argparse.ArgumentParser(prog="python -m stxbf.session.supervise")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    options = parser.parse_args(args[: args.index("--")] if "--" in args else args)
    if not command:
        parser.error("give the command to supervise after --")
    paths = DataPaths.of(options.home, options.db)
    os.umask(0o077)  # as `stxbf run`: what lands in the data directory is the user's alone
    configure_logging(paths.log_file)
    supervisor = Supervisor(command, paths)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.request_stop(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
