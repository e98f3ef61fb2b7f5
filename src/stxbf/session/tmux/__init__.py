"""The tmux session that keeps a backfill running unattended: create, attach, describe, stop.

Every function takes a `libtmux.Server`, so tests pass a throwaway server on a private socket. The
session has one window: the runner on top (60%) and the live monitor below (40%).

    server.py   find tmux and its server, name and find sessions, run tmux commands, attach
    layout.py   create the two-pane session and tag it (which pane is which, which database)
    panes.py    read it back: panes, tags, screen text, how a pane's command ended
    stop.py     stop the runner so it checkpoints, then close the session

Commands reach tmux as argv lists, never through a shell we assemble by hand: tmux 3.0+ execs a
multi-argument command directly. tmux expands formats in some arguments (`new-session -s NAME`,
`-c DIR`), where `#(…)` runs a command: session names may not contain `#`, and directories have
it escaped. The runner pane does run `/bin/sh -c SCRIPT` (to print its exit code under the final
summary), and SCRIPT is built only from `shlex.quote`d words, so paths and names with spaces,
quotes or `;` stay data.

The API key is never passed here: see `stxbf.session.launch`.
"""

from stxbf.session.tmux.layout import start_session
from stxbf.session.tmux.panes import PaneInfo, SessionInfo, capture, describe_session, pane_exit
from stxbf.session.tmux.server import (
    attach,
    attach_hint,
    ensure_tmux,
    find_session,
    get_server,
    install_command,
    session_exists,
    socket_path,
    validate_session_name,
)
from stxbf.session.tmux.stop import StopResult, stop_session

__all__ = [
    "PaneInfo",
    "SessionInfo",
    "StopResult",
    "attach",
    "attach_hint",
    "capture",
    "describe_session",
    "ensure_tmux",
    "find_session",
    "get_server",
    "install_command",
    "pane_exit",
    "session_exists",
    "socket_path",
    "start_session",
    "stop_session",
    "validate_session_name",
]
