"""Erasure ("remove me"): delete a person's faces everywhere and keep them from coming back.

Erase by face ids, by person (the faces shown with a label; on request also the faces that match them), or by the
requester's photo. A request is first a preview: the faces it would remove, each with why it is listed (face id,
label, its similarity to the requester's face, or the listed face it matched), changing nothing but an
`erase_preview` audit entry. Confirming erases exactly the previewed faces, or those of them the admin keeps, never
the result of a new search, so a gallery that changed in between cannot slip a face in: erase_previewed takes the
preview itself (the web UI keeps it), erase_person / erase_by_photo take its face ids (CLI, API), each of which
must be on the request's list as it is now. Without face ids those two erase the whole list at once.

By photo, only the requester's face is searched: the photo's subject (core.subject: the face that clearly dominates
it) or the face the admin names (face_index); a photo with several faces and no clear subject is refused, asking
which. Bystanders in the requester's photo are never searched nor suppressed. A gallery face is listed when it scores
at least ERASURE_FALSE_MATCH_RATE's similarity to the requester's face, or at least ERASURE_LINKED_FALSE_MATCH_RATE's
to a face so listed (one step, never further): photos of one person resemble each other more than they resemble the
requester's photo, so the step finds the gallery photos a poor request photo misses. Both rates were chosen on LFW
(bench/erasure_threshold.py, docs/service.md "Erasure": recall matters here, and the preview is where a person
catches a stranger); erasure by label with matches lists faces one step from the labelled ones alike.

For each erased face the catalog rows go (faces, then assets left without faces; the faces leave their saved
clusters in the same transaction, and a cluster left empty is deleted, its history kept), then index entries and
thumbnail files. Their embeddings, and the requester's own face's, join the suppression list first: embeddings
only, never photos, and never a bystander's. Ingest checks the list at the strict threshold (STRICT_FALSE_MATCH_RATE:
nobody reviews what ingest drops) and does not store a matching face; search never shows one. The requester gets a
receipt naming what was removed, when, and the audit entry that records it.

Order of writes: suppression list, catalog (source of truth), index (derived), files, audit, receipt. A crash
after the suppression list keeps the person from reappearing; a repeated request finishes the job.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facetrace.core.errors import FaceSelectionError, InvalidRequestError, NoFaceError, NotFoundError
from facetrace.core.limits import MAX_CATALOG_ID, MAX_LABEL, MAX_TEXT, bounded
from facetrace.core.ports import (
    BoolArray,
    DataGuard,
    FaceAnalyzer,
    FaceEraser,
    SuppressionStore,
    Unguarded,
    VectorIndex,
)
from facetrace.core.subject import subject_index
from facetrace.core.types import (
    AnalyzedImage,
    ErasureCandidate,
    ErasurePreview,
    ErasureReceipt,
    FloatArray,
)
from facetrace.core.vocabulary import AuditAction, ErasureMatch, ErasureMode
from facetrace.governance.audit import AuditLog

log = logging.getLogger(__name__)

# Suppression (ingest and search) and repeated probes: a match nobody reviews, so a stranger must almost never reach it.
STRICT_FALSE_MATCH_RATE = 1e-6
# Erasure by photo: the requester's face against the gallery, then one step from each face so found (and, by label
# with matches, from each labelled face). Measured on LFW, docs/service.md "Erasure".
ERASURE_FALSE_MATCH_RATE = 3e-5
ERASURE_LINKED_FALSE_MATCH_RATE = 5e-6
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

    def active(self) -> bool:
        return bool(self._current().shape[0])

    def _current(self) -> FloatArray:
        with self._lock:
            version = self._store.change_counters().suppressions
            if self._erased is None or version != self._version:
                self._erased = self._store.suppressed_vectors(self._model_id)
                self._version = version
            return self._erased


@dataclass(frozen=True)
class ErasureThresholds:
    """The similarities an erasure searches at, with the false-match rates of the pack's calibration they stand for."""

    similarity: float  # to the requester's face
    linked_similarity: float  # to a face already listed (found, or labelled), one step
    false_match_rate: float = ERASURE_FALSE_MATCH_RATE
    linked_false_match_rate: float = ERASURE_LINKED_FALSE_MATCH_RATE


@dataclass(frozen=True)
class _Found:
    found_by: ErasureMatch
    similarity: float | None = None
    linked_to: int | None = None
    linked_similarity: float | None = None


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
        thresholds: ErasureThresholds,
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
        self.thresholds = thresholds

    # -- previews: what a request would remove; nothing changes but one audit entry ------------------------------

    def preview_faces(self, actor: str, face_ids: Sequence[int]) -> ErasurePreview:
        with self._guard.reading():
            preview = self._faces_preview(face_ids)
        return self._audited(actor, preview)

    def preview_person(self, actor: str, label: str, *, with_matches: bool = False) -> ErasurePreview:
        """The faces shown with this label; with_matches, also every face one step from them (listed apart)."""
        with self._guard.reading():
            preview = self._person_preview(label, with_matches)
        return self._audited(actor, preview)

    def preview_photo(
        self, actor: str, data: bytes, probe_name: str, *, face_index: int | None = None
    ) -> ErasurePreview:
        """The faces matching the requester's face in this photo (its subject, or face_index); the photo is analysed
        before anything is locked."""
        image = self._analyse(data, probe_name)
        with self._guard.reading():
            preview = self._photo_preview(image, face_index)
        return self._audited(actor, preview)

    # -- erasures -----------------------------------------------------------------------------------------------

    def erase_previewed(
        self, actor: str, preview: ErasurePreview, reason: str, *, face_ids: Sequence[int] | None = None
    ) -> ErasureReceipt:
        """Erase exactly the faces of a preview shown to a person (or those of them in face_ids: the ones the admin
        kept ticked), never a new search's; faces erased meanwhile are skipped. The requester's face is suppressed."""
        chosen = _chosen(preview, face_ids)
        return self._erase(actor, preview, reason, chosen)

    def erase_faces(self, actor: str, face_ids: Sequence[int], reason: str) -> ErasureReceipt:
        return self._erase_confirmed(actor, reason, None, lambda: self._faces_preview(face_ids), "erasure of faces")

    def erase_person(
        self,
        actor: str,
        label: str,
        reason: str,
        *,
        with_matches: bool = False,
        face_ids: Sequence[int] | None = None,
    ) -> ErasureReceipt:
        """Every face shown with this label (with_matches: and every face one step from them). face_ids confirms a
        preview: exactly those faces are erased, each of which must be on the list this request makes now."""
        return self._erase_confirmed(
            actor, reason, face_ids, lambda: self._person_preview(label, with_matches), f"erasure of {label}"
        )

    def erase_by_photo(
        self,
        actor: str,
        data: bytes,
        probe_name: str,
        reason: str,
        *,
        face_index: int | None = None,
        face_ids: Sequence[int] | None = None,
    ) -> ErasureReceipt:
        """'Remove me': every gallery face matching the requester's face (the photo's subject, or face_index) is
        erased, and that face is suppressed; bystanders in the photo are left alone. face_ids confirms a preview
        (see erase_person). The photo is analysed before anything is locked."""
        image = self._analyse(data, probe_name)
        return self._erase_confirmed(
            actor, reason, face_ids, lambda: self._photo_preview(image, face_index), f"erasure by photo {probe_name}"
        )

    def erase_matching(self, actor: str, probe_vectors: FloatArray, probe_name: str, reason: str) -> ErasureReceipt:
        """Every gallery face matching the requester's face: probe_vectors holds it (one row, or several faces all
        the requester's); they are suppressed too, so photos not yet ingested never get in."""
        probes = np.asarray(probe_vectors, dtype=np.float32)
        if probes.ndim != 2 or probes.shape[0] == 0:
            raise InvalidRequestError("the requester's photo has no face to match")
        return self._erase_confirmed(
            actor,
            reason,
            None,
            lambda: self._matching_preview(probes, probe_name, ErasurePreview(ErasureMode.PROBE, probe_name, ())),
            f"erasure by photo {probe_name}",
        )

    # -- what a request lists ---------------------------------------------------------------------------------------

    def _analyse(self, data: bytes, probe_name: str) -> AnalyzedImage:
        if self._analyzer is None:
            raise InvalidRequestError("erasure by photo needs the face models")
        image = self._analyzer.analyze(data, probe_name)
        if not image.faces:
            raise NoFaceError(probe_name)
        return image

    def _faces_preview(self, face_ids: Sequence[int]) -> ErasurePreview:
        ids = sorted({int(face_id) for face_id in face_ids})
        if not ids:
            raise InvalidRequestError("name at least one face id to erase")
        if ids[0] < 0 or ids[-1] > MAX_CATALOG_ID:
            raise InvalidRequestError(f"a face id is a whole number from 0 to {MAX_CATALOG_ID}")
        found = {face_id: _Found(ErasureMatch.FACE_ID) for face_id in ids}
        candidates = self._candidates(found)
        if not candidates:
            raise NotFoundError(f"none of faces {', '.join(map(str, ids))} exists")
        return ErasurePreview(ErasureMode.FACES, ",".join(map(str, ids)), candidates)

    def _person_preview(self, label: str, with_matches: bool) -> ErasurePreview:
        label = label.strip()
        if not label:
            raise InvalidRequestError("a person's label cannot be blank")
        bounded(label, "a person's label", MAX_LABEL)
        labelled = self._eraser.face_ids_labelled(label)
        if not labelled:
            raise NotFoundError(f"no face is labelled {label!r}")
        found = {face_id: _Found(ErasureMatch.LABEL) for face_id in labelled}
        if with_matches:
            found |= self._linked(labelled, set(found))
        preview = ErasurePreview(ErasureMode.PERSON, label, self._candidates(found))
        if not with_matches:
            return preview
        return _with_thresholds(preview, self.thresholds, linked_only=True)

    def _photo_preview(self, image: AnalyzedImage, face_index: int | None) -> ErasurePreview:
        index = requester_face_index(image, face_index)
        face = image.faces[index]
        vector = np.asarray(face.embedding.vector, dtype=np.float32)[None, :]
        base = ErasurePreview(
            ErasureMode.PROBE,
            image.source,
            (),
            requester_face_index=index,
            requester_faces=len(image.faces),
            requester_box=face.detection.box,
        )
        return self._matching_preview(vector, image.source, base)

    def _matching_preview(self, probes: FloatArray, name: str, base: ErasurePreview) -> ErasurePreview:
        found = {
            face_id: _Found(ErasureMatch.PHOTO, similarity=score)
            for face_id, (score, _) in self._above(probes, self.thresholds.similarity).items()
        }
        linked = self._linked(sorted(found), set(found))
        if linked:
            ids, vectors = self._eraser.embeddings_by_id(sorted(linked), self._model_id)
            to_requester = (vectors @ probes.T).max(axis=1) if len(ids) else np.zeros(0)
            for face_id, score in zip(ids.tolist(), to_requester.tolist(), strict=True):
                linked[int(face_id)] = _replace_similarity(linked[int(face_id)], float(score))
        preview = ErasurePreview(
            base.mode,
            base.subject or name,
            self._candidates(found | linked),
            requester_face_index=base.requester_face_index,
            requester_faces=base.requester_faces or probes.shape[0],
            requester_box=base.requester_box,
            requester_embedding=probes,
        )
        return _with_thresholds(preview, self.thresholds, linked_only=False)

    def _linked(self, listed: Sequence[int], exclude: set[int]) -> dict[int, _Found]:
        """Faces at or above the linked similarity to one of the listed faces (one step), not already listed."""
        if not listed:
            return {}
        ids, vectors = self._eraser.embeddings_by_id(list(listed), self._model_id)
        if not len(ids):
            return {}
        linked: dict[int, _Found] = {}
        for face_id, (score, row) in self._above(vectors, self.thresholds.linked_similarity).items():
            if face_id not in exclude:
                linked[face_id] = _Found(ErasureMatch.LINKED, linked_to=int(ids[row]), linked_similarity=score)
        return linked

    def _above(self, queries: FloatArray, min_similarity: float) -> dict[int, tuple[float, int]]:
        """face id -> (best similarity, the query row it came from) for every indexed face at or above
        min_similarity to one of the queries."""
        total = len(self._index)
        best: dict[int, tuple[float, int]] = {}
        k = min(_SEARCH_STEP, total)
        while k > 0:
            scores, ids = self._index.search(queries, k)
            above = (scores >= min_similarity) & (ids >= 0)
            for row, column in zip(*np.nonzero(above), strict=True):
                face_id, score = int(ids[row, column]), float(scores[row, column])
                if face_id not in best or score > best[face_id][0]:
                    best[face_id] = (score, int(row))
            # Widen only while some query's k-th neighbour is still above the threshold (more may follow).
            if k >= total or not above[:, -1].any():
                break
            k = min(k * 4, total)
        return best

    def _candidates(self, found: dict[int, _Found]) -> tuple[ErasureCandidate, ...]:
        """The listed faces that exist, with their provenance: first by how they were found (id or label, then the
        requester's face, then one step), then by similarity, best first."""
        records = self._eraser.faces_by_id(sorted(found))
        order = list(ErasureMatch)

        def key(face_id: int) -> tuple[int, float, int]:
            item = found[face_id]
            score = item.linked_similarity if item.found_by == ErasureMatch.LINKED else item.similarity
            return (order.index(item.found_by), -(score if score is not None else 0.0), face_id)

        return tuple(
            ErasureCandidate(
                face_id=face_id,
                asset_id=records[face_id].asset_id,
                asset_uri=records[face_id].asset_uri,
                label=records[face_id].label,
                found_by=found[face_id].found_by,
                similarity=found[face_id].similarity,
                linked_to=found[face_id].linked_to,
                linked_similarity=found[face_id].linked_similarity,
                thumbnail_path=records[face_id].thumbnail_path,
            )
            for face_id in sorted(records, key=key)
        )

    def _audited(self, actor: str, preview: ErasurePreview) -> ErasurePreview:
        self._audit.record(
            actor,
            AuditAction.ERASE_PREVIEW,
            f"erasure_preview:{preview.mode}",
            mode=preview.mode,
            subject=preview.subject,
            face_ids=list(preview.face_ids),
            requester_face_index=preview.requester_face_index,
            min_similarity=preview.min_similarity,
            linked_min_similarity=preview.linked_min_similarity,
        )
        return preview

    # -- erasing ----------------------------------------------------------------------------------------------------

    def _erase_confirmed(
        self,
        actor: str,
        reason: str,
        face_ids: Sequence[int] | None,
        listing: Callable[[], ErasurePreview],
        purpose: str,
    ) -> ErasureReceipt:
        """List under the writer lock, then erase that list, or the confirmed face_ids of an earlier preview: each
        must be on the list as it is now (a face erased meanwhile is refused too: preview again)."""
        _check_reason(reason)
        with self._guard.writing(purpose):
            preview = listing()
            return self._erase(actor, preview, reason, _chosen(preview, face_ids))

    def _erase(self, actor: str, preview: ErasurePreview, reason: str, face_ids: Sequence[int]) -> ErasureReceipt:
        reason = _check_reason(reason)
        receipt_id = "er_" + secrets.token_hex(12)
        with self._guard.writing(f"erasure {receipt_id}"):
            return self._erase_locked(actor, preview, reason, face_ids, receipt_id)

    def _erase_locked(
        self, actor: str, preview: ErasurePreview, reason: str, face_ids: Sequence[int], receipt_id: str
    ) -> ErasureReceipt:
        found_ids, found = self._eraser.embeddings_by_id(list(face_ids), self._model_id)
        # Suppress first: written before anything is deleted, so a crash part-way can't let the person back in.
        # The erased faces' embeddings and the requester's own face: never a bystander of the requester's photo.
        vectors = [found] if len(found_ids) else []
        if preview.requester_embedding is not None:
            vectors.append(np.atleast_2d(np.asarray(preview.requester_embedding, dtype=np.float32)))
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
            mode=preview.mode,
            subject=preview.subject,
            reason=reason,
            face_ids=list(deleted.face_ids),
            asset_ids=list(deleted.asset_ids),
            thumbnails_removed=removed,
            uploads_removed=uploads_removed,
            suppressed_embeddings=suppressed,
            clusters_left=list(deleted.cluster_ids),
            clusters_deleted=list(deleted.clusters_deleted),
            # Listed but not confirmed (the admin left them out), and confirmed but erased meanwhile.
            listed_not_erased=sorted(set(preview.face_ids) - set(face_ids)),
            already_gone=sorted(set(face_ids) - set(deleted.face_ids)),
            requester_face_index=preview.requester_face_index,
            min_similarity=preview.min_similarity,
            linked_min_similarity=preview.linked_min_similarity,
        )
        receipt = ErasureReceipt(
            receipt_id=receipt_id,
            at=datetime.now(UTC),
            requested_by=actor,
            mode=preview.mode,
            subject=preview.subject,
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


def requester_face_index(image: AnalyzedImage, face_index: int | None) -> int:
    """Which face of the requester's photo is theirs: face_index when given, else the photo's subject (the face that
    clearly dominates it, core.subject). Several faces and none dominating: FaceSelectionError asking which."""
    count = len(image.faces)
    if count == 0:
        raise NoFaceError(image.source)
    if face_index is not None:
        if not 0 <= face_index < count:
            raise FaceSelectionError(
                f"{image.source}: face {face_index} asked for, but the photo has {count} face(s) numbered 0-{count - 1}"
            )
        return face_index
    boxes = [face.detection.box for face in image.faces]
    chosen = subject_index(boxes, image.width, image.height)
    if chosen is None:
        listed = "; ".join(
            f"{number}: box ({box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f})"
            for number, box in enumerate(boxes)
        )
        raise FaceSelectionError(
            f"{image.source}: {count} faces and none clearly is the requester's (the photo's subject); say which "
            f"face is theirs with a face index, 0-{count - 1} in detector order ({listed})"
        )
    return chosen


def _check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidRequestError("an erasure states its reason (e.g. the request it answers)")
    return bounded(reason, "an erasure's reason", MAX_TEXT)


def _chosen(preview: ErasurePreview, face_ids: Sequence[int] | None) -> list[int]:
    """The faces to erase: the preview's, or the confirmed face_ids, each of which must be on its list."""
    if face_ids is None:
        return list(preview.face_ids)
    wanted = sorted({int(face_id) for face_id in face_ids})
    if not wanted and preview.mode != ErasureMode.PROBE:
        # By photo, confirming none of the list still suppresses the requester's face; otherwise it does nothing.
        raise InvalidRequestError("confirm at least one face of the list")
    extra = sorted(set(wanted) - set(preview.face_ids))
    if extra:
        raise InvalidRequestError(
            f"face(s) {', '.join(map(str, extra))} are not on this request's list ({len(preview.face_ids)} faces "
            "now); confirm only listed faces (preview again if the gallery changed), or erase others by face id"
        )
    return wanted


def _replace_similarity(found: _Found, similarity: float) -> _Found:
    return _Found(found.found_by, similarity, found.linked_to, found.linked_similarity)


def _with_thresholds(preview: ErasurePreview, thresholds: ErasureThresholds, *, linked_only: bool) -> ErasurePreview:
    return dataclasses.replace(
        preview,
        min_similarity=None if linked_only else thresholds.similarity,
        false_match_rate=None if linked_only else thresholds.false_match_rate,
        linked_min_similarity=thresholds.linked_similarity,
        linked_false_match_rate=thresholds.linked_false_match_rate,
    )
