"""Running the backfill unattended.

This package owns its tmux session, the runner pane's supervisor and launcher (both run as
`python -m` entry points), and the sleep inhibitor.
"""
