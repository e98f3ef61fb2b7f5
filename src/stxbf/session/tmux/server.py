"""Reaching tmux: its binary, its server and sessions by name, running a command, attaching."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from stxbf.errors import ConfigError, OpsError, TmuxMissing

if TYPE_CHECKING:
    from libtmux import Server, Session


def install_command(
    *, platform: str | None = None, which: Callable[[str], str | None] | None = None
) -> str:
    """The command that installs tmux on this OS."""
    platform = sys.platform if platform is None else platform
    which = shutil.which if which is None else which
    if platform == "darwin":
        return "brew install tmux"
    for tool, command in (
        ("apt-get", "sudo apt-get install tmux"),
        ("dnf", "sudo dnf install tmux"),
        ("yum", "sudo yum install tmux"),
        ("pacman", "sudo pacman -S tmux"),
        ("zypper", "sudo zypper install tmux"),
        ("apk", "sudo apk add tmux"),
        ("brew", "brew install tmux"),
    ):
        if which(tool):
            return command
    return "your package manager (e.g. sudo apt-get install tmux)"


def ensure_tmux(*, which: Callable[[str], str | None] | None = None) -> str:
    """The tmux binary's path, or TmuxMissing with the install command for this OS."""
    which = shutil.which if which is None else which
    path = which("tmux")
    if path is None:
        raise TmuxMissing(f"tmux is not installed. Install with: {install_command(which=which)}")
    return path


def validate_session_name(name: str) -> str:
    """Refuse names tmux rejects or misreads (`:` and `.` split a session:window.pane target)."""
    problem = None
    if not name or not name.strip():
        problem = "it is empty"
    elif ":" in name or "." in name:
        problem = "tmux does not allow ':' or '.' in session names"
    elif "#" in name:
        problem = "tmux would expand '#' in it as a format (#(…) runs a command)"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = "it contains control characters"
    elif len(name) > 100:
        problem = "it is longer than 100 characters"
    if problem:
        raise ConfigError(f"invalid session name {name!r}: {problem}")
    return name


def get_server(socket_name: str | None) -> Server:
    """A handle on the tmux server (the default one, or the private `-L socket_name` one)."""
    from libtmux import Server

    ensure_tmux()
    return Server(socket_name=socket_name) if socket_name else Server()


def socket_path(socket_name: str | None) -> Path:
    """Where tmux puts the socket for `-L socket_name` (what $TMUX names when inside it)."""
    base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp")  # noqa: S108 - tmux's own default
    return base / f"tmux-{os.geteuid()}" / (socket_name or "default")


def _socket_args(server: Server) -> list[str]:
    if server.socket_name:
        return ["-L", str(server.socket_name)]
    if server.socket_path:
        return ["-S", str(server.socket_path)]
    return []


def find_session(server: Server, name: str) -> Session | None:
    """The session named exactly `name` (tmux's own lookup would also accept a prefix)."""
    from libtmux.exc import LibTmuxException

    try:
        sessions = list(server.sessions)
    except LibTmuxException:
        return None
    return next((s for s in sessions if s.session_name == name), None)


def session_exists(socket_name: str | None, name: str) -> bool | None:
    """Whether the session exists; None when tmux is not installed (never starts a server)."""
    try:
        server = get_server(socket_name)
    except TmuxMissing:
        return None
    return find_session(server, name) is not None


def tmux(server: Server, *args: str) -> list[str]:
    """Run one tmux command on `server`; anything on its stderr is an OpsError."""
    result = server.cmd(*args)
    if result.stderr:
        raise OpsError(f"tmux {args[0]} failed: {' '.join(result.stderr).strip()}")
    return list(result.stdout)


def current_tmux_socket(environ: Mapping[str, str]) -> Path | None:
    """The socket of the tmux server we are running inside, if any ($TMUX = socket,pid,session)."""
    value = environ.get("TMUX")
    return Path(value.split(",", 1)[0]) if value else None


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _attach_argv(server: Server, session_name: str, tmux_bin: str = "tmux") -> list[str]:
    return [tmux_bin, *_socket_args(server), "attach-session", "-t", f"={session_name}"]


def attach(server: Server, session_name: str, *, environ: Mapping[str, str] | None = None) -> int:
    """Attach this terminal to the session; inside tmux, switch the client instead of nesting."""
    environ = os.environ if environ is None else environ
    if find_session(server, session_name) is None:
        raise OpsError(f"Session '{session_name}' does not exist. Use 'start' to create it.")
    inside = current_tmux_socket(environ)
    if inside is not None:
        if _same_path(inside, socket_path(server.socket_name)):
            tmux(server, "switch-client", "-t", f"={session_name}")
            return 0
        raise OpsError(
            "you are inside another tmux server; detach first (Ctrl+B D), then run: "
            + attach_hint(server, session_name)
        )
    tmux_bin = str(server.tmux_bin or ensure_tmux())
    return subprocess.call(_attach_argv(server, session_name, tmux_bin))


def attach_hint(server: Server, session_name: str) -> str:
    """The command a user types to attach (shown when we cannot attach for them)."""
    return shlex.join(_attach_argv(server, session_name))
