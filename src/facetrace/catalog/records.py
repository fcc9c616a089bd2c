"""Ingest run statuses as the catalog stores them (the records it returns are core types: RunRecord, ...)."""

from __future__ import annotations

RUNNING = "running"
FINISHED = "finished"
INTERRUPTED = "interrupted"
FAILED = "failed"
# Statuses finish_run accepts; 'running' is only ever set by start_run.
FINAL_RUN_STATUSES = frozenset({FINISHED, INTERRUPTED, FAILED})
