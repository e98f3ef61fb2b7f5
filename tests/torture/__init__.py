"""Torture tests (`nox -s torture`, marker `torture`); the default suite never imports this package.

crashpoint.py  runs `stxbf` with a kill -9 planted at a named point (mid-page, mid-commit, ...);
               tests/helpers.py's `crash_run` runs it as a script for the default suite too
"""
