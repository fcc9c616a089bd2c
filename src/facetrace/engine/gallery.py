"""engine.gallery: looking at the gallery's faces and people; every look is one audited view, made under a case and
a purpose (a CaseContext from engine.cases.browsing or engine.cases.reading) recorded with it. Faces shown together
(a report, the review queue) are one look: one entry naming them all (show_faces)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from facetrace.core.errors import NotFoundError
from facetrace.core.ports import Catalog
from facetrace.core.types import AuditEntry, CaseContext, FaceRecord, User
from facetrace.core.vocabulary import AuditAction
from facetrace.governance.audit import AuditLog


@dataclass(frozen=True)
class FacesShown:
    """Faces shown together, their thumbnails, and the one audit entry that records the look."""

    faces: dict[int, FaceRecord]  # the faces still in the gallery (an erased one is missing)
    thumbnails: dict[int, bytes]
    entry: AuditEntry


class Gallery:
    def __init__(self, catalog: Catalog, audit: AuditLog, thumbnails_dir: Path, *, model_id: str) -> None:
        self._catalog = catalog
        self._audit = audit
        self._thumbnails_dir = thumbnails_dir
        self._model_id = model_id

    def face(self, user: User, face_id: int, context: CaseContext) -> FaceRecord:
        record = self._catalog.faces_by_id([face_id]).get(face_id)
        if record is None:
            raise NotFoundError(f"no face {face_id}")
        self._audit.record(user.name, AuditAction.VIEW_FACE, f"face:{face_id}", **_within(context))
        return record

    def thumbnail(self, user: User, face_id: int, context: CaseContext) -> bytes:
        record = self._catalog.faces_by_id([face_id]).get(face_id)
        if record is None or not record.thumbnail_path:
            raise NotFoundError(f"face {face_id} has no thumbnail")
        path = self._thumbnails_dir / record.thumbnail_path
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"face {face_id}: its thumbnail file is missing") from exc
        self._audit.record(user.name, AuditAction.VIEW_THUMBNAIL, f"face:{face_id}", **_within(context))
        return data

    def show_faces(
        self,
        user: User,
        face_ids: Collection[int],
        context: CaseContext,
        action: AuditAction,
        target: str,
        **details: object,
    ) -> FacesShown:
        """Faces and their thumbnails shown together on one page or in one export: one audit entry (action on
        target, with details) lists the faces shown and those gone since (erased), instead of a view_face and a
        view_thumbnail per face."""
        records = self._catalog.faces_by_id(sorted(set(face_ids)))
        thumbnails: dict[int, bytes] = {}
        for face_id, record in records.items():
            if record.thumbnail_path:
                try:
                    thumbnails[face_id] = (self._thumbnails_dir / record.thumbnail_path).read_bytes()
                except FileNotFoundError:
                    continue
        entry = self._audit.record(
            user.name,
            action,
            target,
            face_ids=sorted(records),
            gone=sorted(set(face_ids) - set(records)),
            **details,
            **_within(context),
        )
        return FacesShown(records, thumbnails, entry)

    def people(
        self, user: User, context: CaseContext, offset: int = 0, limit: int = 100
    ) -> tuple[list[tuple[str, int]], int]:
        """A page of the gallery's labels with their face counts, and the number of labels; audited, since the
        list says who is in the gallery."""
        page, total = self._catalog.labels(self._model_id, offset, limit)
        self._audit.record(
            user.name,
            AuditAction.LIST_PEOPLE,
            "people",
            offset=offset,
            limit=limit,
            returned=len(page),
            **_within(context),
        )
        return page, total

    def person_faces(self, user: User, label: str, context: CaseContext) -> list[FaceRecord]:
        """Every face shown with this label, with provenance; one audited view of the person."""
        records = self._catalog.faces_by_id(self._catalog.face_ids_labelled(label))
        if not records:
            raise NotFoundError(f"no face is labelled {label!r}")
        faces = [records[face_id] for face_id in sorted(records)]
        self._audit.record(
            user.name,
            AuditAction.VIEW_PERSON,
            f"person:{label}",
            face_ids=[f.face_id for f in faces],
            **_within(context),
        )
        return faces


def _within(context: CaseContext) -> dict[str, object]:
    """The audit details naming the case and purpose a look was made under."""
    return {"case_id": context.case_id, "purpose": context.purpose}
