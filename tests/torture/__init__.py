"""Torture tests (`nox -s torture`, marker `torture`) and helpers the fast suite shares.

harness.py     simulator request recorder, subprocess helpers, exactness and "no change" checks
crashpoint.py  runs `stxbf` with a kill -9 planted at a named point (mid-page, mid-commit, ...)
"""
