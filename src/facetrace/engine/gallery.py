"""engine.gallery: looking at the gallery's faces and people; every look is one audited view, made under a case and
a purpose (a CaseContext from engine.cases.browsing or engine.cases.reading) recorded with it."""

from __future__ import annotations

from pathlib import Path

from facetrace.core.errors import ImageDecodeError, NotFoundError
from facetrace.core.ports import Catalog
from facetrace.core.types import CaseContext, FaceRecord, User
from facetrace.core.vocabulary import AuditAction
from facetrace.governance.audit import AuditLog
from facetrace.ingest.sources import read_uri


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

    def photo(self, user: User, face_id: int, context: CaseContext) -> tuple[FaceRecord, bytes]:
        """The face and the whole photo it was found in, read from where it was ingested from (a file the server can
        read; a photo known only by its web address is not fetched: NotFoundError, as for a missing file)."""
        record = self._catalog.faces_by_id([face_id]).get(face_id)
        if record is None:
            raise NotFoundError(f"no face {face_id}")
        if record.asset_uri.startswith(("http://", "https://")):
            raise NotFoundError(f"face {face_id}: its photo is kept at its web address only, {record.asset_uri}")
        try:
            data = read_uri(record.asset_uri)
        except ImageDecodeError as exc:
            raise NotFoundError(f"face {face_id}: its photo cannot be read where it was ingested from") from exc
        self._audit.record(user.name, AuditAction.VIEW_PHOTO, f"face:{face_id}", **_within(context))
        return record, data

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
