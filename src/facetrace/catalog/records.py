"""Plain values the catalog returns beyond the core types: runs, ingest errors, counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from facetrace.core.vocabulary import RunStatus

# Statuses finish_run accepts; RUNNING is only ever set by start_run.
FINAL_RUN_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.INTERRUPTED, RunStatus.FAILED})


@dataclass(frozen=True)
class RunRecord:
    """One ingest run as stored."""

    run_id: int
    status: RunStatus
    description: str
    model_id: str
    started_at: datetime
    finished_at: datetime | None
    stats: Mapping[str, int] = field(default_factory=dict)
    host: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class IngestErrorRecord:
    """An input an ingest run could not use, and why."""

    run_id: int | None
    uri: str
    message: str
    at: datetime


@dataclass(frozen=True)
class CatalogStats:
    """What the catalog holds, for `facetrace status` and health checks."""

    assets: int
    faces_by_model: Mapping[str, int]
    runs_by_status: Mapping[RunStatus, int]
    errors: int
    people: int

    @property
    def faces(self) -> int:
        return sum(self.faces_by_model.values())
