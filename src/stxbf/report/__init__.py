"""Reporting on a backfill from what its runs leave behind, never from the API.

A run leaves files beside the database (its snapshot and records), and the database itself, which
is read only when no run holds it. `status` builds the status model and holds the one rule that
judges a live runner; `health` turns that model into checks and one verdict; `database` is the
only module here that reads the database (read-only, and cached); `days` draws the per-day
coverage strip.
"""
