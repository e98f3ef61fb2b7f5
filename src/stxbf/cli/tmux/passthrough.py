"""The options of `stxbf run`, declared once on `run`, which `stxbf tmux` accepts and passes on.

The tmux commands take every option of `stxbf run` by copying run's signature, and the runner
pane gets them back as flags generated from run's own click options. A new run option therefore
reaches the tmux runner with no change here. Values that are settings are resolved in the calling
process (flag > env > config file) and passed as flags, because a tmux server that already runs
has its own, older environment; the API key is not a run option and never becomes a flag.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

if TYPE_CHECKING:
    from stxbf.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def run_parameters() -> list[inspect.Parameter]:
    """Return the parameters of `stxbf run` with their annotations resolved, as Typer reads them."""
    from stxbf.cli.run import run

    hints = get_type_hints(run)
    return [
        param.replace(annotation=hints.get(name, param.annotation))
        for name, param in inspect.signature(run).parameters.items()
    ]


def with_run_options(command: F) -> F:
    """Give `command` every option of `stxbf run`, as keyword arguments it receives in **kwargs.

    Typer reads a command's options from its signature, so the wrapper shows the command's own
    parameters followed by run's.
    """
    own_hints = get_type_hints(command)
    own = [
        param.replace(annotation=own_hints.get(name, param.annotation))
        for name, param in inspect.signature(command).parameters.items()
        if param.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    taken = {param.name for param in own}
    extra = [param for param in run_parameters() if param.name not in taken]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    params = own + extra
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


def run_command() -> Any:
    """Return `stxbf run` as click sees it, with its options, flags and defaults."""
    import typer
    import typer.main

    from stxbf.cli.run import run

    app = typer.Typer(add_completion=False)
    app.command()(run)
    return typer.main.get_command(app)


def run_options() -> list[Any]:
    """Return every option of `stxbf run` that a user can give (hidden ones are internal)."""
    return [
        param
        for param in run_command().params
        if param.param_type_name == "option" and not param.hidden and param.name != "help"
    ]


def split_run_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the run options a command received into (settings overrides, run-only options)."""
    from stxbf.settings import Settings

    names = {option.name for option in run_options()}
    fields = Settings.model_fields
    given = {k: v for k, v in values.items() if k in names}
    return (
        {k: v for k, v in given.items() if k in fields},
        {k: v for k, v in given.items() if k not in fields},
    )


def run_flags(settings: Settings, run_only: Mapping[str, Any]) -> list[str]:
    """Return the `stxbf run` flags that reproduce `settings` and the run-only options, whatever
    the environment of the tmux server."""
    flags: list[str] = []
    for option in run_options():
        name = str(option.name)
        if name in type(settings).model_fields:
            value = _setting(settings, name)
        else:
            value = run_only.get(name)
            if value == option.default:
                value = None
        flags += _option_argv(option, value)
    return flags


def option_flags(values: Mapping[str, Any]) -> list[str]:
    """Return the flags that give these options (run's and `start`'s own, by parameter name)."""
    by_name = {str(option.name): option for option in run_options()}
    flags: list[str] = []
    for name, value in values.items():
        option = by_name.get(name)
        if option is not None:
            flags += _option_argv(option, value)
        elif value is not None:
            flags += [f"--{name.replace('_', '-')}", _text(value)]
    return flags


def _setting(settings: Settings, name: str) -> Any:
    if name == "db":
        return settings.db_path.absolute()
    value = getattr(settings, name)
    return value.absolute() if isinstance(value, Path) else value


def _option_argv(option: Any, value: Any) -> list[str]:
    """Return the argv words that give `option` this value: none for None, the flag alone (or
    its `--no-` form) for a boolean, the option once per item for a list."""
    if value is None:
        return []
    if option.is_flag:
        if value:
            return [option.opts[0]]
        return [option.secondary_opts[0]] if option.secondary_opts else []
    if isinstance(value, (list, tuple)):
        return [part for item in value for part in (option.opts[0], _text(item))]
    return [option.opts[0], _text(value)]


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
