"""The tmux session that keeps a backfill running unattended: create it, read it, attach, stop it.

Every function takes a `libtmux.Server`, so tests pass a throwaway server on a private socket. The
session has one window: the runner on top (60%) and the live monitor below (40%). The module reads
top to bottom in the order a session lives: reaching tmux and its server, creating the two-pane
session and tagging it (which pane is which, which database), reading it back (panes, tags,
screen text, how a pane's command ended), and stopping the runner so that it checkpoints before
the session is closed.

Commands reach tmux as argv lists, never through a shell that we assemble by hand: tmux 3.0+ execs
a multi-argument command directly. tmux expands formats in some arguments (`new-session -s NAME`,
`-c DIR`), where `#(…)` runs a command, so session names may not contain `#`, and directories have
it escaped. The runner pane does run `/bin/sh -c SCRIPT` (to print its exit code under the final
summary), and SCRIPT is built only from `shlex.quote`d words, so paths and names with spaces,
quotes or `;` stay data.

The API key is never passed here: see `stxbf.session.launch`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stxbf.defaults import API_KEY_ENV_NAMES
from stxbf.errors import ConfigError, OpsError, TmuxMissing
from stxbf.process import is_descendant, pid_alive

if TYPE_CHECKING:
    from libtmux import Server, Session

logger = logging.getLogger(__name__)


# -- reaching tmux: its binary, its server, sessions by name, commands, attaching -----------------


def install_command(
    *, platform: str | None = None, which: Callable[[str], str | None] | None = None
) -> str:
    """Return the command that installs tmux on this OS."""
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
    """Return the tmux binary's path, or raise TmuxMissing with the install command for this OS."""
    which = shutil.which if which is None else which
    path = which("tmux")
    if path is None:
        raise TmuxMissing(f"tmux is not installed. Install with: {install_command(which=which)}")
    return path


def validate_session_name(name: str) -> str:
    """Refuse names that tmux rejects or misreads (`:` and `.` split a window.pane target)."""
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
    """Return a handle on the tmux server: the default one, or the private `-L socket_name` one."""
    from libtmux import Server

    ensure_tmux()
    return Server(socket_name=socket_name) if socket_name else Server()


def socket_path(socket_name: str | None) -> Path:
    """Return where tmux puts the socket for `-L socket_name` (what $TMUX names inside it)."""
    base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp")  # noqa: S108 - tmux's own default
    return base / f"tmux-{os.geteuid()}" / (socket_name or "default")


def _socket_args(server: Server) -> list[str]:
    if server.socket_name:
        return ["-L", str(server.socket_name)]
    if server.socket_path:
        return ["-S", str(server.socket_path)]
    return []


def find_session(server: Server, name: str) -> Session | None:
    """Return the session named exactly `name`; tmux's own lookup would also accept a prefix."""
    from libtmux.exc import LibTmuxException

    try:
        sessions = list(server.sessions)
    except LibTmuxException:
        return None
    return next((s for s in sessions if s.session_name == name), None)


def session_exists(socket_name: str | None, name: str) -> bool | None:
    """Tell whether the session exists, or None when tmux is not installed; never start a server."""
    try:
        server = get_server(socket_name)
    except TmuxMissing:
        return None
    return find_session(server, name) is not None


def tmux_command(server: Server, *args: str) -> list[str]:
    """Run one tmux command on `server`; anything on its stderr is raised as an OpsError."""
    result = server.cmd(*args)
    if result.stderr:
        raise OpsError(f"tmux {args[0]} failed: {' '.join(result.stderr).strip()}")
    return list(result.stdout)


def current_tmux_socket(environ: Mapping[str, str]) -> Path | None:
    """Return the socket of the tmux server we run inside, if any ($TMUX = socket,pid,session)."""
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
            tmux_command(server, "switch-client", "-t", f"={session_name}")
            return 0
        raise OpsError(
            "you are inside another tmux server; detach first (Ctrl+B D), then run: "
            + attach_hint(server, session_name)
        )
    tmux_bin = str(server.tmux_bin or ensure_tmux())
    return subprocess.call(_attach_argv(server, session_name, tmux_bin))


def attach_hint(server: Server, session_name: str) -> str:
    """Return the command a user types to attach, shown when we cannot attach for them."""
    return shlex.join(_attach_argv(server, session_name))


# -- creating the session: runner pane on top, monitor below, and the tags that say so ------------


# The window has `remain-on-exit on`, set before the commands start, so that a finished (or failed)
# runner's last screen stays readable and tmux records its exit status (`#{pane_dead_status}`).
# The session's tags (tmux user options `@stxbf_*`) are written and read only here.

MONITOR_PERCENT = 40
DETACHED_SIZE = (200, 50)  # a detached session's size until a client attaches and resizes it
TAG_PREFIX = "@stxbf_"  # session user options: db, inhibitor, runner_pane, monitor_pane, started_at


def runner_script(argv: Sequence[str], *, notes: Sequence[str] = ()) -> str:
    """Return the runner pane's /bin/sh script: run, then print the exit code under the summary.

    `trap : INT` lets Ctrl+C reach the runner (which checkpoints) while the shell survives to say
    how it ended; a no-op trap, unlike an ignored signal, is not inherited by the runner.
    """
    lines = ["trap : INT"]
    lines += [f"printf '%s\\n' {shlex.quote(note)}" for note in notes]
    lines += [
        shlex.join(argv),
        "rc=$?",
        "printf '\\n[stxbf run exited with code %s at %s]\\n' \"$rc\" "
        "\"$(date '+%Y-%m-%d %H:%M:%S')\"",
        "printf '%s\\n' 'This pane stays open so you can read it. Detach: Ctrl+B D. "
        "Close the session: stxbf tmux stop'",
        'exit "$rc"',
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _environ_without_secrets() -> Iterator[None]:
    """Hide the API key from the tmux client: a server it starts would copy it to all panes."""
    saved = {name: os.environ.pop(name) for name in API_KEY_ENV_NAMES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _format_literal(text: str) -> str:
    """Escape `#` in arguments that tmux expands as formats (`-c DIR`), where `#(cmd)` runs cmd."""
    return text.replace("#", "##")


def tag_session(server: Server, session: Session, tags: Mapping[str, str]) -> None:
    """Write the session's tags as tmux user options (`@stxbf_*`)."""
    for key, value in tags.items():
        tmux_command(server, "set-option", "-t", str(session.session_id), TAG_PREFIX + key, value)


def session_tags(server: Server, session: Session) -> dict[str, str]:
    """Read the session's tags back from its tmux user options (`@stxbf_*`)."""
    lines = server.cmd("show-options", "-t", str(session.session_id)).stdout
    tags: dict[str, str] = {}
    for line in lines:
        if line.startswith(TAG_PREFIX):
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                value = shlex.split(value)[0] if value else ""
            tags[key[len(TAG_PREFIX) :]] = value
    return tags


def start_session(
    server: Server,
    *,
    session_name: str,
    runner_argv: Sequence[str],
    monitor_argv: Sequence[str],
    start_directory: Path,
    runner_notes: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    size: tuple[int, int] = DETACHED_SIZE,
) -> Session:
    """Create the session detached, with the runner on top (60%) and the monitor below (40%).

    The panes start with the default shell, the window gets `remain-on-exit`, and only then are both
    panes respawned with their commands, so that even a runner that fails at once stays readable.
    It raises OpsError when a session of that name exists.
    """
    from libtmux.constants import PaneDirection
    from libtmux.exc import LibTmuxException

    validate_session_name(session_name)
    if find_session(server, session_name) is not None:
        raise OpsError(f"Session '{session_name}' already exists. Use 'attach' to reconnect.")
    directory = _format_literal(str(start_directory))
    with _environ_without_secrets():
        try:
            session = server.new_session(
                session_name=session_name,
                attach=False,
                start_directory=directory,
                x=size[0],
                y=size[1],
            )
            window = session.active_window
            window.set_option("remain-on-exit", "on")
            runner_pane = window.active_pane
            assert runner_pane is not None
            monitor_pane = runner_pane.split(
                direction=PaneDirection.Below,
                size=f"{MONITOR_PERCENT}%",
                start_directory=directory,
            )
        except LibTmuxException as exc:
            raise OpsError(f"cannot create tmux session {session_name!r}: {exc}") from None
        own_tags = {
            "runner_pane": str(runner_pane.pane_id),
            "monitor_pane": str(monitor_pane.pane_id),
            "started_at": f"{time.time():.0f}",
        }
        tag_session(server, session, {**own_tags, **(tags or {})})
        script = runner_script(runner_argv, notes=runner_notes)
        respawn = ["respawn-pane", "-k", "-t"]
        tmux_command(server, *respawn, str(runner_pane.pane_id), "/bin/sh", "-c", script)
        tmux_command(server, *respawn, str(monitor_pane.pane_id), *monitor_argv)
        runner_pane.select()
    logger.info("started tmux session %s (runner %s)", session_name, runner_pane.pane_id)
    return session


# -- reading the session back: panes, tags, screen text, how a pane's command ended ---------------


EXIT_LINE = re.compile(r"\[stxbf run exited with code (\d+)")


@dataclass
class PaneInfo:
    """Describe one pane of the session: its role, size, process and how its command ended."""

    index: int
    role: str  # runner | monitor | other
    pane_id: str
    width: int
    height: int
    pid: int | None
    command: str  # what runs in it now
    dead: bool  # its command has finished (and tmux knows how)
    dead_status: int | None  # the exit code of a finished pane (128 + n when killed by signal n)


@dataclass
class SessionInfo:
    """Describe the session as tmux shows it: its panes and its tags."""

    name: str
    session_id: str
    created: float | None
    attached: bool
    panes: list[PaneInfo] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def pane(self, role: str) -> PaneInfo | None:
        """Return the pane that plays `role` (runner, monitor), if there is one."""
        return next((p for p in self.panes if p.role == role), None)

    def runner_pane(self) -> PaneInfo | None:
        """Return the runner's pane: the tagged one, else the first (when the tags are lost)."""
        return self.pane("runner") or (self.panes[0] if self.panes else None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def describe_session(server: Server, session_name: str) -> SessionInfo | None:
    """Read the session back from tmux, or return None when there is no such session."""
    session = find_session(server, session_name)
    if session is None:
        return None
    tags = session_tags(server, session)
    roles = {tags.get("runner_pane"): "runner", tags.get("monitor_pane"): "monitor"}
    panes = []
    for pane in session.panes:
        finished, code = pane_exit(server, str(pane.pane_id))
        panes.append(
            PaneInfo(
                index=_int(pane.pane_index) or 0,
                role=roles.get(pane.pane_id) or "other",
                pane_id=str(pane.pane_id),
                width=_int(pane.pane_width) or 0,
                height=_int(pane.pane_height) or 0,
                pid=_int(pane.pane_pid),
                command=str(pane.pane_current_command or ""),
                dead=finished,
                dead_status=code,
            )
        )
    created = _int(session.session_created)
    return SessionInfo(
        name=session_name,
        session_id=str(session.session_id),
        created=float(created) if created is not None else None,
        attached=(_int(session.session_attached) or 0) > 0,
        panes=panes,
        tags=tags,
    )


def capture(server: Server, pane_id: str, *, lines: int = 0) -> str:
    """Return the pane's visible text, plus `lines` of scrollback."""
    args = ["capture-pane", "-p", "-J", "-t", pane_id]
    if lines:
        args += ["-S", f"-{lines}"]
    return "\n".join(server.cmd(*args).stdout)


def pane_exit(server: Server, pane_id: str, *, settle: float = 0.5) -> tuple[bool, int | None]:
    """Return (finished, exit code) of a pane; a pane that is gone counts as finished with no code.

    tmux marks a pane dead when its terminal closes and learns the exit status when it reaps the
    process; tmux 3.3 can leave that status unknown for a long while (the reaping races the close).
    So a dead pane is finished at once, and its code comes from tmux when it has it (a killing
    signal n reads as 128 + n, like a shell), else from the runner script's last line.
    """
    deadline = time.monotonic() + settle
    while True:
        result = server.cmd(
            "display-message", "-p", "-t", pane_id,
            "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}",
        )  # fmt: skip
        if result.stderr or not result.stdout:
            return True, None
        dead, status, signum = [*result.stdout[0].split("|"), "", ""][:3]
        if dead != "1":
            return False, None
        if status.strip():
            return True, _int(status)
        if signum.strip():
            code = _int(signum)
            return True, None if code is None else 128 + code
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    found = EXIT_LINE.findall(capture(server, pane_id, lines=200))
    return True, int(found[-1]) if found else None


# -- stopping: let the runner checkpoint, wait for it, close the session --------------------------


@dataclass
class StopResult:
    """Say how a stop went: what was signalled, how the runner ended, and whether it was forced."""

    session_name: str
    runner_pid: int | None = None
    signalled: str | None = None  # SIGINT | keys (Ctrl+C sent to the pane) | None (nothing to stop)
    runner_exit: int | None = None  # the runner pane's exit status, when it ended in time
    forced: bool = False  # SIGTERM after the grace period
    waited: float = 0.0
    notes: list[str] = field(default_factory=list)


def stop_session(
    server: Server,
    session_name: str,
    *,
    runner_pid: int | None,
    timeout: float = 60.0,
    term_grace: float = 10.0,
    poll: float = 0.2,
) -> StopResult:
    """Stop the runner so it checkpoints (SIGINT, as Ctrl+C would), wait, then kill the session.

    `runner_pid` (from the runner record) is signalled only if it runs inside this session's runner
    pane: a run on the same data started elsewhere is left alone.
    """
    info = describe_session(server, session_name)
    if info is None:
        raise OpsError(f"Session '{session_name}' does not exist. Nothing to stop.")
    result = StopResult(session_name=session_name)
    pane = info.runner_pane()
    started = time.monotonic()
    if pane is not None and not pane.dead:
        _interrupt(server, pane, runner_pid, result)
        _await_exit(server, pane.pane_id, result, timeout=timeout, term_grace=term_grace, poll=poll)
    elif pane is not None:
        result.runner_exit = pane.dead_status
    result.waited = time.monotonic() - started
    session = find_session(server, session_name)
    if session is not None:
        session.kill()
    return result


def _interrupt(server: Server, pane: PaneInfo, runner_pid: int | None, result: StopResult) -> None:
    """Send SIGINT to the runner when it runs in this pane, else type Ctrl+C into the pane."""
    from libtmux import Pane

    if runner_pid is not None and pid_alive(runner_pid):
        if pane.pid is not None and is_descendant(runner_pid, pane.pid):
            result.runner_pid = runner_pid
            os.kill(runner_pid, signal.SIGINT)
            result.signalled = "SIGINT"
            return
        result.notes.append(
            f"a run on this database (pid {runner_pid}) is not in this session: left alone"
        )
    Pane.from_pane_id(server=server, pane_id=pane.pane_id).send_keys("C-c", enter=False)
    result.signalled = "keys"


def _await_exit(
    server: Server,
    pane_id: str,
    result: StopResult,
    *,
    timeout: float,
    term_grace: float,
    poll: float,
) -> None:
    """Wait for the pane to end, SIGTERM our runner after `timeout`, give up after `term_grace`."""
    if not _ended_within(server, pane_id, timeout, poll) and result.runner_pid is not None:
        result.forced = True
        result.notes.append(f"runner did not stop within {timeout:.0f} s: sent SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.kill(result.runner_pid, signal.SIGTERM)
        _ended_within(server, pane_id, term_grace, poll)
    finished, code = pane_exit(server, pane_id)
    if finished:
        result.runner_exit = code
    else:
        result.forced = True
        result.notes.append("runner still running: closing the session anyway (SIGHUP)")


def _ended_within(server: Server, pane_id: str, seconds: float, poll: float) -> bool:
    """Poll the pane for `seconds`, and tell whether its command has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pane_exit(server, pane_id)[0]:
            return True
        time.sleep(poll)
    return pane_exit(server, pane_id)[0]
