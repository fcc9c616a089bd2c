"""Erasure ("remove me"): delete a person's faces everywhere and keep them from coming back.

Erase by face ids, by person (label), or by probe photo: every gallery face at or above a strict similarity to the
requester's face (the pack's similarity at a false-match rate of 1e-6 by default). For each erased face the catalog
rows go (faces, then assets left without faces; the faces leave their saved clusters in the same transaction, and a
cluster left empty is deleted, its history kept), then index entries and thumbnail files. Their embeddings, and the
requester's own probe embeddings, join the suppression list first: embeddings only, never photos. Ingest checks it
and does not store a matching face; search never shows one. The requester gets a receipt naming what was removed,
when, and the audit entry that records it.

Order of writes: suppression list, catalog (source of truth), index (derived), files, audit, receipt. A crash
after the suppression list keeps the person from reappearing; a repeated request finishes the job.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facetrace.core.errors import InvalidRequestError, NoFaceError, NotFoundError
from facetrace.core.ports import (
    BoolArray,
    DataGuard,
    FaceAnalyzer,
    FaceEraser,
    SuppressionStore,
    Unguarded,
    VectorIndex,
)
from facetrace.core.types import ErasureReceipt, FloatArray
from facetrace.core.vocabulary import AuditAction, ErasureMode
from facetrace.governance.audit import AuditLog

log = logging.getLogger(__name__)

ERASURE_FALSE_MATCH_RATE = 1e-6
_SEARCH_STEP = 256
# Receipts the admin screen lists at once: one per erasure request, which come by the dozen, not the thousand.
RECEIPTS_PAGE_SIZE = 200


class SuppressionList:
    """Implements SuppressionCheck: a face is suppressed if it matches an erased embedding at min_similarity.

    The erased embeddings are read once per change: each check reads the catalog's change counters (one small row
    read) and reloads only when another erasure, in any process, has been written since.
    """

    def __init__(self, store: SuppressionStore, model_id: str, min_similarity: float) -> None:
        self._store = store
        self._model_id = model_id
        self.min_similarity = min_similarity
        self._erased: FloatArray | None = None
        self._version = -1
        self._lock = threading.Lock()

    def suppressed(self, vectors: FloatArray) -> BoolArray:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            return np.zeros(matrix.shape[0] if matrix.ndim == 2 else 0, dtype=bool)
        erased = self._current()
        if erased.shape[0] == 0 or erased.shape[1] != matrix.shape[1]:
            return np.zeros(matrix.shape[0], dtype=bool)
        flags: BoolArray = (matrix @ erased.T).max(axis=1) >= self.min_similarity
        return flags

    def _current(self) -> FloatArray:
        with self._lock:
            version = self._store.change_counters().suppressions
            if self._erased is None or version != self._version:
                self._erased = self._store.suppressed_vectors(self._model_id)
                self._version = version
            return self._erased


class ErasureService:
    def __init__(
        self,
        eraser: FaceEraser,
        index: VectorIndex,
        suppressions: SuppressionStore,
        audit: AuditLog,
        thumbnails_dir: Path,
        *,
        model_id: str,
        min_similarity: float,
        uploads_dir: Path | None = None,
        guard: DataGuard | None = None,
        analyzer: FaceAnalyzer | None = None,
    ) -> None:
        self._eraser = eraser
        self._guard = guard or Unguarded()
        self._analyzer = analyzer
        # Photos uploaded to the server (HTTP ingest) are the server's copies, not the operator's originals: an erased
        # asset's file there goes too. Files anywhere else are the operator's to delete.
        self._uploads_dir = uploads_dir
        self._index = index
        self._suppressions = suppressions
        self._audit = audit
        self._thumbnails_dir = thumbnails_dir
        self._model_id = model_id
        self.min_similarity = min_similarity

    def erase_faces(self, actor: str, face_ids: Sequence[int], reason: str) -> ErasureReceipt:
        ids = sorted({int(face_id) for face_id in face_ids})
        if not ids:
            raise InvalidRequestError("name at least one face id to erase")
        return self._erase(actor, ErasureMode.FACES, ",".join(map(str, ids)), reason, ids, None)

    def erase_person(self, actor: str, label: str, reason: str) -> ErasureReceipt:
        label = label.strip()
        if not label:
            raise InvalidRequestError("a person's label cannot be blank")
        ids = self._eraser.face_ids_labelled(label)
        if not ids:
            raise NotFoundError(f"no face is labelled {label!r}")
        return self._erase(actor, ErasureMode.PERSON, label, reason, ids, None)

    def erase_matching(self, actor: str, probe_vectors: FloatArray, probe_name: str, reason: str) -> ErasureReceipt:
        """Every gallery face at or above min_similarity to any of the requester's faces; the requester's own
        embeddings are suppressed too, so photos not yet ingested never get in."""
        probes = np.asarray(probe_vectors, dtype=np.float32)
        if probes.ndim != 2 or probes.shape[0] == 0:
            raise InvalidRequestError("the requester's photo has no face to match")
        with self._guard.writing(f"erasure by photo {probe_name}"):
            return self._erase(actor, ErasureMode.PROBE, probe_name, reason, self._matching_ids(probes), probes)

    def erase_by_photo(self, actor: str, data: bytes, probe_name: str, reason: str) -> ErasureReceipt:
        """'Remove me': every face of the requester's photo is matched at the strict threshold and erased (the
        photo is analysed before anything is locked)."""
        if self._analyzer is None:
            raise InvalidRequestError("erasure by photo needs the face models")
        image = self._analyzer.analyze(data, probe_name)
        if not image.faces:
            raise NoFaceError(probe_name)
        vectors = np.vstack([face.embedding.vector for face in image.faces]).astype(np.float32)
        return self.erase_matching(actor, vectors, probe_name, reason)

    def _matching_ids(self, probes: FloatArray) -> list[int]:
        total = len(self._index)
        found: set[int] = set()
        k = min(_SEARCH_STEP, total)
        while k > 0:
            scores, ids = self._index.search(probes, k)
            above = (scores >= self.min_similarity) & (ids >= 0)
            found.update(int(i) for i in ids[above])
            # Widen only while some probe's k-th neighbour is still above the threshold (more may follow).
            if k >= total or not above[:, -1].any():
                break
            k = min(k * 4, total)
        return sorted(found)

    def _erase(
        self,
        actor: str,
        mode: ErasureMode,
        subject: str,
        reason: str,
        face_ids: Sequence[int],
        extra_suppressed: FloatArray | None,
    ) -> ErasureReceipt:
        reason = reason.strip()
        if not reason:
            raise InvalidRequestError("an erasure states its reason (e.g. the request it answers)")
        receipt_id = "er_" + secrets.token_hex(12)
        with self._guard.writing(f"erasure {receipt_id}"):
            return self._erase_locked(actor, mode, subject, reason, face_ids, extra_suppressed, receipt_id)

    def _erase_locked(
        self,
        actor: str,
        mode: ErasureMode,
        subject: str,
        reason: str,
        face_ids: Sequence[int],
        extra_suppressed: FloatArray | None,
        receipt_id: str,
    ) -> ErasureReceipt:
        found_ids, found = self._eraser.embeddings_by_id(list(face_ids), self._model_id)
        if mode == ErasureMode.FACES and not len(found_ids):
            raise NotFoundError(f"none of faces {', '.join(map(str, face_ids))} exists")
        # Suppress first: written before anything is deleted, so a crash part-way can't let the person back in.
        vectors = [found] if len(found_ids) else []
        if extra_suppressed is not None:
            vectors.append(extra_suppressed)
        suppressed = 0
        if vectors:
            suppressed = self._suppressions.add_suppressions(self._model_id, np.vstack(vectors), receipt_id)
        deleted = self._eraser.delete_faces(face_ids, actor=actor, reason=f"erasure {receipt_id}: {reason}")
        if deleted.face_ids:
            self._index.remove(np.asarray(deleted.face_ids, dtype=np.int64))
            self._index.save()
        removed = sum(remove_thumbnail(self._thumbnails_dir, rel) for rel in deleted.thumbnail_paths)
        uploads_removed = sum(self._remove_upload(uri) for uri in deleted.asset_uris)
        entry = self._audit.record(
            actor,
            AuditAction.ERASE,
            f"erasure:{receipt_id}",
            mode=mode,
            subject=subject,
            reason=reason,
            face_ids=list(deleted.face_ids),
            asset_ids=list(deleted.asset_ids),
            thumbnails_removed=removed,
            uploads_removed=uploads_removed,
            suppressed_embeddings=suppressed,
            clusters_left=list(deleted.cluster_ids),
            clusters_deleted=list(deleted.clusters_deleted),
        )
        receipt = ErasureReceipt(
            receipt_id=receipt_id,
            at=datetime.now(UTC),
            requested_by=actor,
            mode=mode,
            subject=subject,
            reason=reason,
            face_ids=deleted.face_ids,
            asset_ids=deleted.asset_ids,
            asset_uris=deleted.asset_uris,
            thumbnails_removed=removed,
            suppressed_embeddings=suppressed,
            audit_seq=entry.seq,
        )
        self._suppressions.add_receipt(receipt)
        log.info("erasure %s: %d faces, %d assets removed", receipt_id, len(deleted.face_ids), len(deleted.asset_ids))
        return receipt

    def receipt(self, receipt_id: str) -> ErasureReceipt:
        receipt = self._suppressions.receipt(receipt_id)
        if receipt is None:
            raise NotFoundError(f"no erasure receipt {receipt_id!r}")
        return receipt

    def receipts(self, limit: int = RECEIPTS_PAGE_SIZE) -> list[ErasureReceipt]:
        """The newest receipts first (the admin screen's list)."""
        return self._suppressions.receipts(limit)

    def _remove_upload(self, uri: str) -> bool:
        if self._uploads_dir is None or "://" in uri:
            return False
        path = Path(uri).resolve()
        if not path.is_relative_to(self._uploads_dir.resolve()):
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


def remove_thumbnail(thumbnails_dir: Path, rel: str) -> bool:
    """Delete one face crop by its stored relative path; False if it was already gone or lies outside the folder
    (a stored path is data, and data never names a file elsewhere to delete)."""
    root = thumbnails_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        log.warning("thumbnail path %s lies outside %s; left alone", rel, root)
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
