"""Reporting on a backfill: the status and health reports, built from what a run leaves behind."""
