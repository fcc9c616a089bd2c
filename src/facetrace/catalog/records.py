"""Ingest run statuses as the catalog accepts them (the records it returns are core types: RunRecord, ...)."""

from __future__ import annotations

from facetrace.core.vocabulary import RunStatus

# Statuses finish_run accepts; RUNNING is only ever set by start_run.
FINAL_RUN_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.INTERRUPTED, RunStatus.FAILED})
