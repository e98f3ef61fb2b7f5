"""Name every exit code stxbf ends with, and the states those codes stand for.

This module is the one registry of exit codes and of the words behind them: the runner's
phases, the status states, the health verdicts and the window states.

A monitoring script reads an exit code and nothing else, so a code must mean one thing per
command: `stxbf health --bad-flag` must not exit 2, which `health` documents as "stalled".
Every code any command ends with is named here, each command's table is built from these
names, and a meta-test holds docs/cli.md's tables to them.

    run      0 ok · 1 error · 2 usage · 3 incomplete · 4 locked · 65 database damaged
             · 75 rate-limited (a quota ran out) · 130 interrupted
    status   0 complete · 3 incomplete · 5 running · 6 stalled · 7 not started
             · 65 database problem · 69 degraded · 75 rate-limited · 1 error · 64 usage
    health   0 healthy · 1 not running · 2 stalled · 3 database problem · 4 configuration error
             · 69 degraded · 75 rate-limited · 64 usage
    metrics  0 written (the verdict is a metric) · 1 the file could not be written
             · 64 usage or configuration error
    verify   0 ok · 1 error · 2 usage · 3 a changed window not settled · 4 locked
             · 65 database damaged · 130 interrupted
    tmux status  0 running or finished · 1 no session · 8 the runner pane ended with an error
    export   0 up to date · 1 error · 2 usage · 3 stopped for a run that started · 4 a run holds
             the database · 65 database damaged · 130 interrupted

Codes 64, 65, 69 and 75 are the BSD sysexits EX_USAGE, EX_DATAERR, EX_UNAVAILABLE and
EX_TEMPFAIL. Degraded (69, the API is failing) and stalled differ on purpose: a monitor warns on
the first and pages on the second, which follows it if the API stays down for `--stall-seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class StrEnum(str, Enum):
    """Backport `enum.StrEnum` to Python 3.10.

    Each member formats as its value, so it reads the same in an f-string and in JSON.
    """

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)


class ExitCode(IntEnum):
    """Name every exit code a stxbf command ends with; docs/cli.md lists them per command."""

    OK = 0  # target reached / command succeeded / complete / healthy
    ERROR = 1  # the command failed (API, database, filesystem, a bug)
    USAGE = 2  # bad arguments or settings (every command but status and health)
    INCOMPLETE = 3  # run stopped before the target; status: the target is not reached; export:
    # stopped for a run before every day was written
    LOCKED = 4  # another `stxbf run` holds the lock on this data (export: or on its directory)
    RUNNING = 5  # status: a backfill is running
    STALLED = 6  # status: a backfill is running but makes no progress
    NOT_STARTED = 7  # status: no backfill yet
    RUNNER_EXITED = 8  # tmux status: the runner pane has ended with an error or was killed
    MONITOR_USAGE = 64  # usage error of `status` / `health`: apart from every state code
    DATABASE = 65  # the database file is damaged, truncated, empty or not ours
    DEGRADED = 69  # status / health: a live runner whose requests keep failing (not yet stalled)
    RATE_LIMITED = 75  # a stated limit or quota is being waited out (run: it ran out)
    INTERRUPTED = 130  # SIGINT / SIGTERM: completed windows were committed


class HealthCode(IntEnum):
    """Name the codes `stxbf health` ends with.

    Codes 0-4 are the original health check's, kept so that existing monitors go on working.
    """

    HEALTHY = 0
    NOT_RUNNING = 1
    STALLED = 2
    DATABASE_PROBLEM = 3
    CONFIG_ERROR = 4
    MONITOR_USAGE = ExitCode.MONITOR_USAGE
    DEGRADED = ExitCode.DEGRADED
    RATE_LIMITED = ExitCode.RATE_LIMITED


class Phase(StrEnum):
    """Name the phase the runner is in, as its progress snapshot publishes it."""

    STARTING = "starting"
    FETCHING = "fetching"
    VERIFYING = "verifying"  # `run --verify` re-counting stored windows
    BACKING_OFF = "backing_off"
    FINISHED = "finished"
    STOPPED = "stopped"  # ended before the target (budget, iterations, a quota)
    FAILED = "failed"
    INTERRUPTED = "interrupted"


TERMINAL_PHASES = frozenset({Phase.FINISHED, Phase.STOPPED, Phase.FAILED, Phase.INTERRUPTED})


class StatusState(StrEnum):
    """Name each state `stxbf status` reports; `STATUS_STATES` gives its label and exit code."""

    COMPLETE = "complete"
    REACHED_CHAIN_START = "reached_chain_start"
    INCOMPLETE = "incomplete"
    RUNNING = "running"
    STALLED = "stalled"
    DEGRADED = "degraded"  # alive, but its requests keep failing: an outage, before the stall
    RATE_LIMITED = "rate_limited"
    NOT_STARTED = "not_started"
    DATABASE_PROBLEM = "database_problem"


class WindowState(StrEnum):
    """Name how a fetched window is stored, in `CompletedWindow.state` and the windows table."""

    VERIFIED = "verified"  # its distinct tx_ids matched the API's total, and it is settled
    OPEN = "open"  # the head or inside the settle period: the next run fetches it again
    INCOMPLETE = "incomplete"  # never proven: left for the next run


# A window in one of these states covers its days: an open window's rows are all there, for now.
COVERING_STATES = frozenset({WindowState.VERIFIED, WindowState.OPEN})


class Verdict(StrEnum):
    """Name each verdict `stxbf health` reaches; `VERDICTS` gives its label and exit code."""

    HEALTHY = "healthy"
    NOT_RUNNING = "not_running"
    STALLED = "stalled"
    DEGRADED = "degraded"
    RATE_LIMITED = "rate_limited"
    DATABASE_PROBLEM = "database_problem"
    CONFIG_ERROR = "config_error"


@dataclass(frozen=True)
class Outcome:
    """Pair a state's label, as the operator reads it, with the exit code it ends a command with."""

    label: str
    exit_code: int


STATUS_STATES: dict[StatusState, Outcome] = {
    StatusState.COMPLETE: Outcome("Complete", ExitCode.OK),
    StatusState.REACHED_CHAIN_START: Outcome("Reached chain start", ExitCode.OK),
    StatusState.INCOMPLETE: Outcome("Incomplete", ExitCode.INCOMPLETE),
    StatusState.RUNNING: Outcome("Running", ExitCode.RUNNING),
    StatusState.STALLED: Outcome("Stalled", ExitCode.STALLED),
    StatusState.DEGRADED: Outcome("Degraded", ExitCode.DEGRADED),
    StatusState.RATE_LIMITED: Outcome("Rate-limited", ExitCode.RATE_LIMITED),
    StatusState.NOT_STARTED: Outcome("Not started", ExitCode.NOT_STARTED),
    StatusState.DATABASE_PROBLEM: Outcome("Database problem", ExitCode.DATABASE),
}

# The verdicts are listed worst first: when several checks fail, the first one in this order
# decides.
VERDICTS: dict[Verdict, Outcome] = {
    Verdict.CONFIG_ERROR: Outcome("Configuration error", HealthCode.CONFIG_ERROR),
    Verdict.DATABASE_PROBLEM: Outcome("Database problem", HealthCode.DATABASE_PROBLEM),
    Verdict.STALLED: Outcome("Stalled", HealthCode.STALLED),
    Verdict.DEGRADED: Outcome("Degraded", HealthCode.DEGRADED),
    Verdict.RATE_LIMITED: Outcome("Rate-limited", HealthCode.RATE_LIMITED),
    Verdict.NOT_RUNNING: Outcome("Not running", HealthCode.NOT_RUNNING),
    Verdict.HEALTHY: Outcome("Healthy", HealthCode.HEALTHY),
}

# These commands report a state through their exit code, so their usage errors take a code of
# their own (64).
MONITOR_COMMANDS = frozenset({"stxbf status", "stxbf health", "stxbf metrics"})

# COMMAND_EXIT_CODES holds the codes that each command's table in docs/cli.md lists, and the
# meta-test compares the two. _DATABASE_JOB holds the codes a command that works on the database
# under its lock (run, export, verify) can end with.
_DATABASE_JOB = frozenset(
    {
        ExitCode.OK,
        ExitCode.ERROR,
        ExitCode.USAGE,
        ExitCode.INCOMPLETE,
        ExitCode.LOCKED,
        ExitCode.DATABASE,
        ExitCode.INTERRUPTED,
    }
)

COMMAND_EXIT_CODES: dict[str, frozenset[int]] = {
    "shared": frozenset({ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE, ExitCode.INTERRUPTED}),
    "stxbf run": _DATABASE_JOB | {ExitCode.RATE_LIMITED},
    "stxbf export": _DATABASE_JOB,
    "stxbf verify": _DATABASE_JOB,
    "stxbf tmux status": frozenset({ExitCode.OK, ExitCode.ERROR, ExitCode.RUNNER_EXITED}),
    "stxbf status": frozenset(
        {outcome.exit_code for outcome in STATUS_STATES.values()}
        | {ExitCode.ERROR, ExitCode.MONITOR_USAGE}
    ),
    "stxbf health": frozenset(
        {outcome.exit_code for outcome in VERDICTS.values()} | {HealthCode.MONITOR_USAGE}
    ),
    # the state is in the metrics, not the code: written (0), not written (1), usage/config (64)
    "stxbf metrics": frozenset({ExitCode.OK, ExitCode.ERROR, ExitCode.MONITOR_USAGE}),
}


def usage_exit_code(command_path: str) -> int:
    """Return the code a usage error of `command_path` ends with.

    That is 64 for the monitoring commands (status, health, metrics), where 2 is a state's
    code, and 2 for every other command.
    """
    if any(command_path.startswith(name) for name in MONITOR_COMMANDS):
        return int(ExitCode.MONITOR_USAGE)
    return int(ExitCode.USAGE)


class SupervisorState(StrEnum):
    """Name what the supervisor is doing, as its record on disk says."""

    RUNNING = "running"  # starting or running the run
    WAITING = "waiting"  # between two tries, until `restart_at`
