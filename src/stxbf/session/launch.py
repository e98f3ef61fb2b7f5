"""The `python -m stxbf.session.launch` entry point: hand the API key to a runner in tmux.

The key must not touch any argv, pane or shell history. `stxbf tmux start` writes it to a fresh
0600 file in a 0700 directory and starts the runner pane as
`python -m stxbf.session.launch --key-file FILE -- <inhibitor> python -m stxbf run …`. This module
reads the file, deletes it at once, puts the key in the environment as STXBF_API_KEY and execs the
rest: the key then lives only in the runner's environment (readable by the same user, as it would
be for a run started by hand), and the file exists for well under a second.

The alternatives were worse: `tmux new-session -e KEY=…` and `set-environment` put the key on the
tmux client's argv (visible in `ps`), and an existing tmux server has its own, stale environment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

from stxbf.defaults import API_KEY_ENV_NAMES

KEY_ENV = API_KEY_ENV_NAMES[0]  # the one the runner pane is given
KEY_FILE_PREFIX = "api_key."


def write_key_file(directory: Path, key: str) -> Path:
    """Write `key` to a new file that only this user can read; the launcher deletes it on start."""
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):  # mkdir(parents=True) would make the parents 0755
        parent.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        directory.chmod(0o700)
    path = directory / f"{KEY_FILE_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return path


def remove_stale_key_files(directory: Path) -> int:
    """Delete the key files that a failed start left behind, and return how many there were."""
    removed = 0
    if directory.is_dir():
        for path in directory.glob(KEY_FILE_PREFIX + "*"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def consume_key_file(path: Path) -> str:
    """Read the key and delete the file, whatever happens."""
    try:
        return path.read_text(encoding="utf-8").strip()
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def main(argv: list[str] | None = None) -> NoReturn:
    """Read and delete the key file, then exec the command after `--` with the key in its env."""
    args = list(sys.argv[1:] if argv is None else argv)
    key_file: Path | None = None
    if args[:1] == ["--key-file"] and len(args) >= 2:
        key_file = Path(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(
            "usage: python -m stxbf.session.launch [--key-file FILE] -- COMMAND…", file=sys.stderr
        )
        raise SystemExit(2)
    env = dict(os.environ)
    if key_file is not None:
        try:
            key = consume_key_file(key_file)
        except OSError as exc:
            print(f"stxbf: cannot read the API key file: {exc.strerror}", file=sys.stderr)
            key = ""
        if key:
            env[KEY_ENV] = key
    try:
        os.execvpe(args[0], args, env)  # noqa: S606 - an argv, never a shell
    except OSError as exc:
        print(f"stxbf: cannot start {args[0]}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
