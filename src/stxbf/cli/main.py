"""The `stxbf` entry point. It registers the commands and turns every StxbfError into one line
on stderr and its exit code.

Heavy libraries (httpx, duckdb, libtmux) are imported inside the commands that use them, so
`stxbf --help` and shell completion stay instant.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys

import typer

from stxbf import __version__
from stxbf.cli import demo, export, health, logs, metrics, run, sim, status, tmux, verify
from stxbf.cli.common import ReaderMayLeave, WholeSummaries, console, err_console
from stxbf.codes import ExitCode, usage_exit_code
from stxbf.errors import StxbfError

app = typer.Typer(
    name="stxbf",
    help="Backfill Stacks transaction history from the Hiro API into DuckDB, unattended.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: it fits 80 columns, paragraphs reflowed
    cls=WholeSummaries,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stxbf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Backfill Stacks transaction history from the Hiro API into DuckDB, unattended."""


app.command("run")(run.run)
app.command("verify")(verify.verify)
app.command("demo")(demo.demo)
app.command("status")(status.status)
app.command("health")(health.health)
app.command("metrics")(metrics.metrics)
app.command("logs")(logs.logs)
app.command("export")(export.export)
app.add_typer(tmux.app, name="tmux")
app.add_typer(sim.app, name="sim")


def main() -> None:
    """Run the app, ending every failure as one line on stderr and a documented exit code.

    A reader that closes the pipe early (`stxbf health | head -1`, under `set -o pipefail`)
    changes nothing: the command exits with the code it would have, and stderr stays quiet.
    """
    if sys.stdout is None:  # started with standard output closed (`>&-`): write nowhere
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (until exit)
    stdout = ReaderMayLeave(sys.stdout)
    sys.stdout = stdout
    try:
        _main()
    finally:
        stdout.flush()  # here, not in the interpreter's last flush, which would fail loudly
        sys.stdout = stdout.wrapped


def _main() -> None:
    from typer.exceptions import Abort, TyperException

    try:
        result = app(standalone_mode=False)
    except StxbfError as exc:
        _fail(exc.message, exc.hint, int(exc.exit_code))
    except TyperException as exc:  # usage errors: a bad option, value or command
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(exc.format_message(), markup=False, highlight=False, soft_wrap=True)
            sys.exit(0)
        command = ctx.command_path if ctx is not None else _command_path(sys.argv[1:])
        code = exc.exit_code if exc.exit_code else int(ExitCode.USAGE)
        if code == ExitCode.USAGE:  # `status`/`health` keep 2 for a state: theirs is 64
            code = usage_exit_code(command)
        message = _usage_message(exc)
        if code == ExitCode.MONITOR_USAGE and "--json" in sys.argv[1:]:  # a script still parses
            record = {"schema": 1, "state": "error", "exit_code": code}
            typer.echo(json.dumps({**record, "error": message}))
        _fail(message, f"Try '{command} --help'.", code)
    except (KeyboardInterrupt, Abort):
        err_console.print("stxbf: interrupted", soft_wrap=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # a bug: one line here, the traceback (no locals) in the log
        logger = logging.getLogger("stxbf")
        if not logger.handlers:  # no log file configured: not Python's last-resort stderr either
            logger.addHandler(logging.NullHandler())
        if not getattr(exc, "stxbf_logged", False):  # `run` logs it before its end line
            logger.error("unexpected error", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"internal error: {type(exc).__name__}: {first}", None, int(ExitCode.ERROR))
    sys.exit(result if isinstance(result, int) else 0)


def _command_path(args: list[str]) -> str:
    """Return the command that an error without a context belongs to, from the subcommand names
    at the start of the arguments (`stxbf run --verify=true` fails while run's options are
    parsed, before click has a context)."""
    command = typer.main.get_command(app)
    path = ["stxbf"]
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)  # a group's subcommands
        if sub is None:
            if not arg.startswith("-"):
                break
            continue
        command = sub
        path.append(arg)
    return " ".join(path)


def _usage_message(exc: Exception) -> str:
    """Word a bad value as the settings word it (`invalid --source: must be one of auto, v1,
    v3 (got 'v9')`), whether a flag, a variable or the config file gave it."""
    from pydantic import ValidationError

    param = getattr(exc, "param", None)
    if not isinstance(exc, typer.BadParameter) or param is None:
        return str(exc.format_message()) if hasattr(exc, "format_message") else str(exc)
    flag = max(param.opts, key=len) if getattr(param, "opts", None) else param.name
    message = exc.message.removeprefix("Value error, ").rstrip(".")
    if choices := re.match(r"'.*' is not one of (.*)$", message):
        message = "must be one of " + choices.group(1).replace("'", "")
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and "input" in cause.errors()[0]:
        message += f" (got {cause.errors()[0]['input']!r})"
    return f"invalid {flag}: {message}"


def _fail(message: str, hint: str | None, code: int) -> None:
    err_console.print(f"[bold red]stxbf: error:[/] {message}", soft_wrap=True, highlight=False)
    if hint:
        err_console.print(f"  {hint}", soft_wrap=True, highlight=False, markup=False)
    sys.exit(code)
