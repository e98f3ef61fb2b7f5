"""Running the backfill unattended in tmux.

`backfill` starts, describes, finds and stops a backfill's tmux session and watches its start;
`tmux` is the tmux side of it (server, panes, tags, stopping). The runner pane runs two `python -m`
entry points: `launch` hands the API key over and execs the rest, and `supervise` starts the run
again after an API outage. `inhibit` keeps the machine awake meanwhile.
"""
