"""Tests that keep the project honest: help and docs for every command, one-way imports, a quick
`stxbf --help`, the README's test command being the one CI runs, and tests that share code through
helpers, never by importing each other.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from stxbf.cli.main import app
from stxbf.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "stxbf"
README = ROOT / "README.md"
CLI_DOC = ROOT / "docs" / "cli.md"
CI_SCRIPT = ROOT / ".ci" / "run"
CHANGELOG = ROOT / "CHANGELOG.md"

# --- every command has help and a section in docs/cli.md ------------------------------------------


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(full name, click command) for the app and every visible sub-command, depth first.

    Duck-typed: recent Typer ships its own copy of click, older ones use click itself.
    """
    yield " ".join(("stxbf", *path)), command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not sub.hidden:
            yield from walk(sub, (*path, name))


COMMANDS = dict(walk(typer.main.get_command(app)))
SUBCOMMANDS = {name: command for name, command in COMMANDS.items() if name != "stxbf"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help(name: str) -> None:
    command = COMMANDS[name]
    text = (command.help or command.short_help or "").strip()
    assert text, f"`{name}` has no help text"
    assert "not implemented" not in text.lower(), f"`{name}` is still a placeholder"


def documented_commands() -> set[str]:
    """Commands named as code in a `##`/`###` heading of docs/cli.md (``### `stxbf tmux` ``)."""
    found: set[str] = set()
    for line in CLI_DOC.read_text(encoding="utf-8").splitlines():
        if not re.match(r"#{2,3} ", line):
            continue
        for span in re.findall(r"`([^`]+)`", line):
            words: list[str] = []
            for word in span.split():
                if not re.fullmatch(r"[a-z][\w-]*", word):
                    break  # options and arguments end the command's name
                words.append(word)
            if words and words[0] == "stxbf":
                found.add(" ".join(words))
    return found


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_command_is_documented(name: str) -> None:
    assert name in documented_commands(), f"docs/cli.md has no ##/### heading for `{name}`"


def test_documented_commands_exist() -> None:
    """Every command docs/cli.md gives a heading to is a real one (no stale sections)."""
    assert documented_commands() - set(COMMANDS) == set()


def all_options() -> set[str]:
    return {"--help"} | {
        opt
        for command in COMMANDS.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    }


@pytest.mark.parametrize("doc", ["cli.md", "configuration.md"])
def test_documented_flags_exist(doc: str) -> None:
    """Every `--flag` (or `stxbf … --flag`) written as code in the docs is a real option.

    Code spans about other programs (`pip install --user`) are not ours to check.
    """
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    ours = [span for span in re.findall(r"`([^`\n]+)`", text) if span.startswith(("--", "stxbf"))]
    flags = {flag for span in ours for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)}
    assert flags - all_options() == set()


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"| `{name}` |" in text, f"docs/configuration.md has no row for `{name}`"
        if name != "api_key":
            assert f"`STXBF_{name.upper()}`" in text


# --- one-way arrows -------------------------------------------------------------------------------


def within(name: str, packages: str | tuple[str, ...]) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(name == package or name.startswith(package + ".") for package in packages)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str) -> set[str]:
    """Every module the file of module `name` imports, at any depth (including inside functions),
    relative imports resolved; `from a import b` counts both `a` and `a.b` (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from stxbf import store` imports the module stxbf.store
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def stxbf_imports(path: Path) -> set[str]:
    name = module_name(path)
    return {found for found in imported_modules(path, name) if within(found, "stxbf")}


MODULES = {module_name(path): stxbf_imports(path) for path in sorted(SRC.rglob("*.py"))}


ENTRY_POINTS = ("stxbf.cli", "stxbf.__main__")  # `python -m stxbf` is an entry point too

# (importer package, forbidden package, why)
FORBIDDEN = [
    ("stxbf.fetch", "stxbf.store", "fetch and store meet only in the runner"),
    ("stxbf.store", "stxbf.fetch", "fetch and store meet only in the runner"),
    ("stxbf.simulator", "stxbf.models", "the simulator speaks the API's JSON, not our models"),
    ("stxbf.simulator", "stxbf.fetch", "the simulator is independent of the client"),
    ("stxbf.simulator", "stxbf.store", "the simulator is independent of the store"),
    ("stxbf.simulator", "stxbf.runner", "the simulator is independent of the runner"),
    ("stxbf.report", "stxbf.runner", "a report reads what a run leaves (files, database)"),
    ("stxbf.report", "stxbf.fetch", "a report never talks to the API"),
    ("stxbf.report", "stxbf.store", "a report reads the database through report.database only"),
    ("stxbf.report", "stxbf.session", "a report reads the session's records, not its code"),
    (
        "stxbf.session",
        "stxbf.runner",
        "the session starts `stxbf run` as a process, not in-process",
    ),
    ("stxbf.session", "stxbf.fetch", "the session never talks to the API"),
    ("stxbf.session", "stxbf.store", "the session never opens the database"),
    ("stxbf.session", "stxbf.report", "the session acts; reporting on it is report's job"),
]

ALLOWED = {("stxbf.report.database", "stxbf.store")}  # (importer, forbidden target): the exception

# Packages whose inside is their own: everything else imports the package's face only.
FACES = ("stxbf.store", "stxbf.runner")


def violations() -> Iterator[str]:
    for importer, imports in MODULES.items():
        for imported in sorted(imports):
            if within(imported, "stxbf.cli") and not within(importer, ENTRY_POINTS):
                yield f"{importer} imports {imported}: nothing outside cli/ imports cli"
            if within(imported, "stxbf.settings") and not (
                within(importer, "stxbf.cli") or importer == "stxbf.settings"
            ):
                yield f"{importer} imports {imported}: libraries take explicit arguments"
            for source, target, why in FORBIDDEN:
                allowed = (importer, target) in ALLOWED
                if within(importer, source) and within(imported, target) and not allowed:
                    yield f"{importer} imports {imported}: {why}"
            for face in FACES:
                # a module inside the package, not a name its face exports
                inner = imported != face and imported in MODULES
                if within(imported, face) and inner and not within(importer, face):
                    yield f"{importer} imports {imported}: use {face}'s package face"


def loaded_with(module: str) -> set[str]:
    """The stxbf modules that importing `module` loads: what it imports, followed transitively,
    with the packages (their `__init__`) each of them sits in."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:depth])
            if ancestor in MODULES and ancestor not in seen:
                seen.add(ancestor)
                todo.extend(MODULES[ancestor])
    return seen


SIMULATOR_MAY_LOAD = ("stxbf.simulator", "stxbf.defaults")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if within(m, "stxbf.simulator")))
def test_the_simulator_loads_nothing_of_the_client(module: str) -> None:
    """The simulator writes the API's JSON by its own reading of the API: followed transitively,
    it loads only itself and `stxbf.defaults` (a prefix rule let `stxbf.models_v3` through)."""
    outside = {m for m in loaded_with(module) if m != "stxbf" and not within(m, SIMULATOR_MAY_LOAD)}
    assert not outside, f"{module} loads {sorted(outside)}"


def test_the_transitive_walker_follows_imports() -> None:
    assert {"stxbf.runner", "stxbf.fetch", "stxbf.store", "stxbf.models"} <= loaded_with(
        "stxbf.cli.run"
    )


def test_the_import_walker_sees_the_tree() -> None:
    assert "stxbf.cli.main" in MODULES
    assert "stxbf.cli.run" in MODULES["stxbf.cli.main"]
    assert "stxbf.errors" in MODULES["stxbf.settings"]


def test_imports_point_one_way() -> None:
    assert list(violations()) == []


# Modules at the top of the package are the floor every package stands on: they import no package.
PACKAGES = ("stxbf.cli", "stxbf.fetch", "stxbf.store", "stxbf.runner", "stxbf.session")
PACKAGES += ("stxbf.report", "stxbf.simulator")


def test_the_floor_imports_no_package() -> None:
    top = [name for name in MODULES if name.count(".") == 1 and not within(name, PACKAGES)]
    floor = [name for name in top if name != "stxbf.__main__"]  # an entry point, as cli is
    assert "stxbf.words" in floor
    wrong = [(m, i) for m in floor for i in sorted(MODULES[m]) if within(i, PACKAGES)]
    assert wrong == []


def import_cycles() -> list[list[str]]:
    """Every loop of imports between modules, `TYPE_CHECKING` imports counted: a package's face
    (`__init__`) re-exporting its own modules is the only import that may point back up."""
    graph = {
        name: {i for i in imports if i in MODULES and not within(name, i) and i != name}
        for name, imports in MODULES.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_the_import_graph_has_no_cycle() -> None:
    assert import_cycles() == []


def test_the_cycle_finder_sees_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODULES, "stxbf.words", {*MODULES["stxbf.words"], "stxbf.cli.render"})
    assert any("stxbf.words" in cycle for cycle in import_cycles())


# --- `stxbf --help` is instant --------------------------------------------------------------------

HEAVY = ("httpx", "duckdb", "libtmux", "prometheus_client")

PROBE = """
import json, sys
sys.argv = ["stxbf", "--help"]
from stxbf.cli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def test_help_does_not_import_heavy_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Usage" in result.stdout
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    assert loaded.isdisjoint(HEAVY), f"`stxbf --help` imports {sorted(loaded & set(HEAVY))}"


# --- the README's test command is what CI runs ----------------------------------------------------


def readme_test_command() -> str:
    text = README.read_text(encoding="utf-8")
    fence = r"<!-- test-command -->\s*```(?:bash|sh|console)?\n(.+?)\n[ \t]*```"
    match = re.search(fence, text, re.S)
    assert match, "README.md has no fenced block after <!-- test-command -->"
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, "the README's test command is one line"
    return lines[0]


def ci_test_command() -> str:
    text = CI_SCRIPT.read_text(encoding="utf-8")
    match = re.search(r"^# >>> test command\n(.+?)\n# <<< test command$", text, re.S | re.M)
    assert match, ".ci/run has no `# >>> test command` block"
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1
    return lines[0]


def test_readme_test_command_is_what_ci_runs() -> None:
    readme, ci = readme_test_command(), ci_test_command()
    assert shlex.split(readme) == shlex.split(ci)
    assert "pytest" in readme


def test_ci_script_fails_fast() -> None:
    text = CI_SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    # the test command is the script's last command, so its exit status is the script's
    last = [line for line in text.splitlines() if line.strip() and not line.startswith("#")][-1]
    assert last.strip() == ci_test_command()


# --- the tests' own layout: shared code lives in helpers, never in another test module -----------

TESTS = ROOT / "tests"


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def default_suite_modules() -> list[Path]:
    found = TESTS.rglob("*.py")
    return sorted(p for p in found if p.name != "__init__.py" and "torture" not in p.parts)


@pytest.mark.parametrize(
    "path", default_suite_modules(), ids=lambda path: str(path.relative_to(TESTS))
)
def test_no_test_module_imports_another_or_the_torture_package(path: Path) -> None:
    """Shared code lives in tests/helpers.py, tests/checks.py and tests/fakes.py: importing a test
    module runs its collection-time code and couples tests; the default suite never loads
    tests/torture (`crash_run` runs its crashpoint.py as a script)."""
    bad = [
        name
        for name in imported_modules(path, module_of(path))
        if name.startswith(("tests.test_", "tests.torture")) or name == "tests.torture"
    ]
    assert not bad, f"{path.name} imports {bad}"


# --- changelog ------------------------------------------------------------------------------------


# --- the exit-code tables in docs/cli.md are the registry's ---------------------------------------


def documented_exit_codes() -> dict[str, set[int]]:
    """Codes listed in each exit-code table of docs/cli.md, by the command section it sits in.

    The table under "Exit codes shared by every command" is keyed "shared".
    """
    tables: dict[str, set[int]] = {}
    section = ""
    in_table = False
    for line in CLI_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{2,3} (.+)", line)
        if heading:
            title = heading.group(1)
            names = re.findall(r"`(stxbf[a-z -]*)`", title)
            section = "shared" if "shared by every command" in title else (names or [""])[0]
            in_table = False
            continue
        if re.match(r"\| (exit )?code \| meaning \|", line):
            in_table = True
            tables.setdefault(section, set())
            continue
        if in_table and line.startswith("|"):
            first = line.split("|")[1]
            tables[section].update(int(code) for code in re.findall(r"`(\d+)`", first))
        elif in_table and not line.startswith("|"):
            in_table = False
    return tables


def test_exit_code_tables_match_the_registry() -> None:
    from stxbf.codes import COMMAND_EXIT_CODES

    documented = documented_exit_codes()
    for command, codes in COMMAND_EXIT_CODES.items():
        assert documented.get(command) == {int(code) for code in codes}, command


# --- a guard against monsters, not a size to fill ------------------------------------------------

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
LONG_REASON = "# long:"  # on the line above a def (or its first decorator): why it may be longer


def long_functions(path: Path) -> Iterator[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        if length > MAX_FUNCTION_LINES and LONG_REASON not in lines[first - 2]:
            yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {length} lines"


def test_no_module_or_function_is_a_monster() -> None:
    """A module over 600 lines, or a function over 80 with no `# long:` reason, is hard to read."""
    too_long = [
        f"{path.relative_to(ROOT)} is {count} lines"
        for path in sorted(SRC.rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    too_long += [found for path in sorted(SRC.rglob("*.py")) for found in long_functions(path)]
    assert too_long == []
