"""Retention: photos are held for as long as their source allows, then a purge job deletes them.

Each asset may carry a retain_until instant, set at ingest from the item's retain_days (a manifest column, the
`ingest --retain-days` option, or the retention_days setting, in that order of precedence). The purge job deletes
every face of an asset whose retention has ended the way erasure does (catalog rows, then index entries, then
thumbnail files) and then the asset rows left without faces. Unlike erasure it does NOT add the embeddings to the
suppression list: retention ending says nothing about the person, who may be ingested again from another source.
Each purge is one `purge` audit entry with its counts; the caller gets a receipt-like summary.

Order of writes: catalog (source of truth), index (derived), files, audit. A crash part-way leaves index entries
or files the catalog no longer names; the index reconciles with the catalog on next use and a repeated purge
finds nothing left in the catalog to do.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facetrace.core.errors import InvalidRequestError
from facetrace.core.ports import DataGuard, RetentionStore, Unguarded, VectorIndex
from facetrace.core.vocabulary import AuditAction
from facetrace.governance.audit import AuditLog
from facetrace.governance.erasure import remove_thumbnail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeSummary:
    """What a purge removed (or, for a dry run, would remove): the receipt-like record handed to the operator."""

    purge_id: str
    at: datetime  # retention ended at or before this instant for everything counted
    requested_by: str
    dry_run: bool
    face_ids: tuple[int, ...]
    asset_ids: tuple[int, ...]  # assets deleted (dry run: assets whose retention has ended)
    thumbnails_removed: int
    index_entries_removed: int
    audit_seq: int | None  # the `purge` audit entry; None for a dry run, which writes nothing


class RetentionService:
    def __init__(
        self,
        store: RetentionStore,
        index: VectorIndex,
        audit: AuditLog,
        thumbnails_dir: Path,
        *,
        model_id: str,
        guard: DataGuard | None = None,
    ) -> None:
        self._store = store
        self._guard = guard or Unguarded()
        self._index = index
        self._audit = audit
        self._thumbnails_dir = thumbnails_dir
        self._model_id = model_id

    def purge(self, actor: str, *, dry_run: bool = False, now: datetime | None = None) -> PurgeSummary:
        """Delete every face and asset whose retention ended at or before now (default: the current time)."""
        at = now or datetime.now(UTC)
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidRequestError("a purge's cut-off needs a time zone")
        purge_id = "pg_" + secrets.token_hex(12)
        if dry_run:
            return self._purge(actor, at, purge_id, dry_run=True)
        with self._guard.writing(f"purge {purge_id}"):
            return self._purge(actor, at, purge_id, dry_run=False)

    def _purge(self, actor: str, at: datetime, purge_id: str, *, dry_run: bool) -> PurgeSummary:
        face_ids = self._store.expired_face_ids(at, self._model_id)
        expired_assets = self._store.expired_asset_ids(at)
        if dry_run:
            return PurgeSummary(purge_id, at, actor, True, tuple(face_ids), tuple(expired_assets), 0, 0, None)
        deleted = self._store.delete_faces(face_ids, actor=actor, reason=f"purge {purge_id}: retention ended")
        index_removed = 0
        if deleted.face_ids:
            index_removed = self._index.remove(np.asarray(deleted.face_ids, dtype=np.int64))
            self._index.save()
        removed = sum(remove_thumbnail(self._thumbnails_dir, rel) for rel in deleted.thumbnail_paths)
        faceless = self._store.delete_faceless_assets(expired_assets)
        asset_ids = tuple(sorted({*deleted.asset_ids, *(asset_id for asset_id, _ in faceless)}))
        entry = self._audit.record(
            actor,
            AuditAction.PURGE,
            f"purge:{purge_id}",
            retention_ended_by=at.astimezone(UTC).isoformat(),
            faces=len(deleted.face_ids),
            assets=len(asset_ids),
            thumbnails_removed=removed,
            index_entries_removed=index_removed,
        )
        log.info(
            "purge %s: %d faces, %d assets past retention removed", purge_id, len(deleted.face_ids), len(asset_ids)
        )
        return PurgeSummary(purge_id, at, actor, False, deleted.face_ids, asset_ids, removed, index_removed, entry.seq)
