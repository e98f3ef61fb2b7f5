"""The `stxbf` entry point: registers the command groups and turns StxbfError into exit codes.

Heavy libraries (httpx, duckdb, libtmux) are imported inside the commands that use them, so
`stxbf --help` and shell completion stay instant.
"""

from __future__ import annotations

import logging
import sys

import typer

from stxbf import __version__
from stxbf.cli import demo, health, logs, run, sim, status, tmux
from stxbf.cli.common import err_console
from stxbf.errors import ExitCode, StxbfError

app = typer.Typer(
    name="stxbf",
    help="Backfill Stacks transaction history from the Hiro API into DuckDB, unattended.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stxbf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Backfill Stacks transaction history from the Hiro API into DuckDB, unattended."""


app.command("run")(run.run)
app.command("demo")(demo.demo)
app.command("status")(status.status)
app.command("health")(health.health)
app.command("logs")(logs.logs)
app.add_typer(tmux.app, name="tmux")
app.add_typer(sim.app, name="sim")


def main() -> None:
    try:
        app()
    except StxbfError as exc:
        err_console.print(f"[bold red]stxbf: error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"  {exc.hint}", highlight=False)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        err_console.print("stxbf: interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # a bug: one line for the operator, the traceback (no locals) in the log
        logging.getLogger("stxbf").error("unexpected error", exc_info=True)
        err_console.print(f"[bold red]stxbf: internal error:[/] {type(exc).__name__}: {exc}")
        sys.exit(int(ExitCode.ERROR))
