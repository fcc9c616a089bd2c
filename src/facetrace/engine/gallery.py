"""engine.gallery: looking at the gallery's faces and people; every look is one audited view, made under a case and
a purpose (a CaseContext from engine.cases.browsing or engine.cases.reading) recorded with it. Faces shown together
(a report, the review queue) are one look: one entry naming them all (show_faces).

The people view (people_grid, cluster_person) is built on saved clusters when there are any (engine.clusters: each
cluster is one person, named by a reviewer or not), and on the catalog's labels before the gallery is clustered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from facetrace.core.errors import ImageDecodeError, NotFoundError
from facetrace.core.ports import Catalog, ClusterStore
from facetrace.core.types import AuditEntry, CaseContext, ClusterEvent, FaceRecord, StoredCluster, User
from facetrace.core.vocabulary import AuditAction, PhotoRole
from facetrace.governance.audit import AuditLog
from facetrace.ingest.sources import read_uri


@dataclass(frozen=True)
class Person:
    """One tile of the people view: a saved cluster (cluster_id set), or the faces carrying a label."""

    cluster_id: int | None
    name: str | None  # the cluster's confirmed name, or the label
    face_count: int
    cover: FaceRecord | None  # the face shown for them: a subject face of the best quality
    labels: tuple[tuple[str, int], ...] = ()  # a cluster's faces' labels with their counts, most first
    hidden: bool = False


@dataclass(frozen=True)
class PeoplePage:
    people: list[Person]
    total: int  # people in the view (the hidden ones only when they are shown)
    clustered: bool  # built on saved clusters (else on labels)
    hidden: int  # hidden clusters
    smaller: int  # clusters left out for having fewer faces than asked (and no name)


@dataclass(frozen=True)
class FacesShown:
    """Faces shown together, their thumbnails, and the one audit entry that records the look."""

    faces: dict[int, FaceRecord]  # the faces still in the gallery (an erased one is missing)
    thumbnails: dict[int, bytes]
    entry: AuditEntry


class Gallery:
    def __init__(
        self, catalog: Catalog, audit: AuditLog, thumbnails_dir: Path, *, model_id: str, clusters: ClusterStore
    ) -> None:
        self._catalog = catalog
        self._audit = audit
        self._thumbnails_dir = thumbnails_dir
        self._model_id = model_id
        self._clusters = clusters

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

    def people_grid(
        self,
        user: User,
        context: CaseContext,
        offset: int = 0,
        limit: int = 48,
        *,
        include_hidden: bool = False,
        min_faces: int = 1,
    ) -> PeoplePage:
        """A page of the people view: the saved clusters, largest first, leaving out the hidden ones unless
        include_hidden and those with fewer than min_faces faces unless named; or, before any clustering is saved,
        the labels by name. Each with its face count and cover face. Audited as list_people, naming the clusters or
        labels listed."""
        if self._clusters.count_clusters(self._model_id):
            saved = self._clusters.clusters(self._model_id)
            shown = [c for c in saved if include_hidden or not c.hidden]
            small = [c for c in shown if len(c.face_ids) < min_faces and not c.name]
            shown = [c for c in shown if len(c.face_ids) >= min_faces or c.name]
            page = shown[offset : offset + limit]
            records = self._catalog.faces_by_id([f for c in page for f in c.face_ids])
            people = [_cluster_person(c, [records[f] for f in c.face_ids if f in records]) for c in page]
            result = PeoplePage(people, len(shown), True, sum(c.hidden for c in saved), len(small))
            listed: dict[str, object] = {"cluster_ids": [c.cluster_id for c in page]}
        else:
            labels, total = self._catalog.labels(self._model_id, offset, limit)
            people = []
            for label, count in labels:
                faces = self._catalog.faces_by_id(self._catalog.face_ids_labelled(label)).values()
                people.append(Person(None, label, count, _cover(list(faces))))
            result = PeoplePage(people, total, False, 0, 0)
            listed = {"labels": [label for label, _ in labels]}
        self._audit.record(
            user.name,
            AuditAction.LIST_PEOPLE,
            "people",
            offset=offset,
            limit=limit,
            returned=len(result.people),
            include_hidden=include_hidden,
            min_faces=min_faces,
            **listed,
            **_within(context),
        )
        return result

    def cluster_person(
        self, user: User, cluster_id: int, context: CaseContext
    ) -> tuple[Person, list[FaceRecord], list[ClusterEvent]]:
        """One saved cluster as a person: its faces with provenance and its history; one audited view."""
        found = self._clusters.cluster(cluster_id)
        if found is None or found.model_id != self._model_id:
            raise NotFoundError(f"no cluster {cluster_id}")
        records = self._catalog.faces_by_id(list(found.face_ids))
        faces = [records[f] for f in found.face_ids if f in records]
        self._audit.record(
            user.name,
            AuditAction.VIEW_PERSON,
            f"cluster:{cluster_id}",
            face_ids=[f.face_id for f in faces],
            **_within(context),
        )
        return _cluster_person(found, faces), faces, self._clusters.cluster_events(cluster_id)

    def clusters_of(self, face_ids: Sequence[int]) -> dict[int, int]:
        """face id -> the saved cluster it is in (a label's page links the clusters its faces are in)."""
        return self._clusters.clusters_of_faces(face_ids)


def _cluster_person(cluster: StoredCluster, faces: list[FaceRecord]) -> Person:
    labels = Counter(face.label for face in faces if face.label)
    return Person(
        cluster.cluster_id,
        cluster.name,
        len(cluster.face_ids),
        _cover(faces),
        tuple(labels.most_common()),
        cluster.hidden,
    )


def _cover(faces: list[FaceRecord]) -> FaceRecord | None:
    """The face a person is shown by: not a bystander, with a thumbnail, of the best quality."""
    return max(
        faces,
        key=lambda f: (f.photo_role != PhotoRole.BYSTANDER, bool(f.thumbnail_path), f.quality_score, -f.face_id),
        default=None,
    )


def _within(context: CaseContext) -> dict[str, object]:
    """The audit details naming the case and purpose a look was made under."""
    return {"case_id": context.case_id, "purpose": context.purpose}
