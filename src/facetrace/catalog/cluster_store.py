"""Persisted clusters on the catalog's database: clusters, their members and the events that changed them.

Every change is one transaction that also writes its event rows, so the history can never disagree with the
membership it explains. Events keep no foreign keys: the history of a merged-away or emptied cluster outlives it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from facetrace.catalog.database import reading, writing
from facetrace.catalog.tables import cluster_events, cluster_members, clusters, faces
from facetrace.core.errors import CatalogError, ConflictError, InvalidRequestError, NotFoundError
from facetrace.core.ports import IdArray
from facetrace.core.types import ClusterAssignment, ClusterEvent, NewCluster, StoredCluster
from facetrace.core.vocabulary import ClusterAssignedBy, ClusterEventKind

# Ids per IN (...) clause, as in sql_catalog.
_IN_CHUNK = 500
_T = TypeVar("_T")


class SqlClusterStore:
    """Implements ClusterStore. Shares the catalog's engine: get it from SqlCatalog.cluster_store()."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # Reading

    def count_clusters(self, model_id: str) -> int:
        with self._read() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).select_from(clusters).where(clusters.c.model_id == model_id)
                ).scalar_one()
            )

    def clusters(self, model_id: str) -> list[StoredCluster]:
        """Every cluster of one model, largest first (ties by id)."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(clusters).where(clusters.c.model_id == model_id).order_by(clusters.c.id)
            ).all()
            members = connection.execute(
                sa.select(cluster_members.c.cluster_id, cluster_members.c.face_id)
                .join(clusters, clusters.c.id == cluster_members.c.cluster_id)
                .where(clusters.c.model_id == model_id)
                .order_by(cluster_members.c.face_id)
            ).all()
        by_cluster: dict[int, list[int]] = {}
        for cluster_id, face_id in members:
            by_cluster.setdefault(int(cluster_id), []).append(int(face_id))
        found = [_cluster(row, by_cluster.get(int(row.id), [])) for row in rows]
        return sorted(found, key=lambda c: (-len(c.face_ids), c.cluster_id))

    def cluster(self, cluster_id: int) -> StoredCluster | None:
        with self._read() as connection:
            row = connection.execute(sa.select(clusters).where(clusters.c.id == cluster_id)).first()
            if row is None:
                return None
            return _cluster(row, _member_ids(connection, cluster_id))

    def cluster_members(self, cluster_ids: Sequence[int]) -> dict[int, list[int]]:
        """Face ids (ascending) of each of these clusters; unknown clusters are left out."""
        found: dict[int, list[int]] = {}
        with self._read() as connection:
            for chunk in _chunks(_unique_ints(cluster_ids), _IN_CHUNK):
                rows = connection.execute(
                    sa.select(cluster_members.c.cluster_id, cluster_members.c.face_id)
                    .where(cluster_members.c.cluster_id.in_(chunk))
                    .order_by(cluster_members.c.face_id)
                )
                for cluster_id, face_id in rows:
                    found.setdefault(int(cluster_id), []).append(int(face_id))
        return found

    def clusters_of_faces(self, face_ids: Sequence[int]) -> dict[int, int]:
        """face id -> cluster id, for the faces among face_ids that belong to a cluster."""
        found: dict[int, int] = {}
        with self._read() as connection:
            for chunk in _chunks(_unique_ints(face_ids), _IN_CHUNK):
                rows = connection.execute(
                    sa.select(cluster_members.c.face_id, cluster_members.c.cluster_id).where(
                        cluster_members.c.face_id.in_(chunk)
                    )
                )
                found.update((int(face_id), int(cluster_id)) for face_id, cluster_id in rows)
        return found

    def unclustered_face_ids(self, model_id: str) -> IdArray:
        """Ascending ids of this model's faces that belong to no cluster: what the next assignment must place."""
        query = (
            sa.select(faces.c.id)
            .outerjoin(cluster_members, cluster_members.c.face_id == faces.c.id)
            .where(faces.c.model_id == model_id, cluster_members.c.face_id.is_(None))
            .order_by(faces.c.id)
        )
        with self._read() as connection:
            return np.fromiter(connection.execute(query).scalars(), dtype=np.int64)

    def cluster_events(self, cluster_id: int | None = None) -> list[ClusterEvent]:
        """Events in the order recorded; with cluster_id, those naming it (as the cluster or the other one)."""
        query = sa.select(cluster_events).order_by(cluster_events.c.id)
        if cluster_id is not None:
            query = query.where(
                sa.or_(cluster_events.c.cluster_id == cluster_id, cluster_events.c.other_cluster_id == cluster_id)
            )
        with self._read() as connection:
            return [_event(row) for row in connection.execute(query)]

    # Writing

    def create_clusters(self, model_id: str, groups: Sequence[NewCluster], actor: str, reason: str) -> list[int]:
        """Create one cluster per group in one transaction, each with a 'create' event and a 'merge' event per
        recorded merge; returns the new ids in the order of groups.

        Raises ConflictError if a face already belongs to a cluster, CatalogError if a face is unknown or of
        another model.
        """
        if not groups:
            return []
        all_ids = [face_id for group in groups for face_id in group.face_ids]
        if len(set(all_ids)) != len(all_ids):
            raise InvalidRequestError("a face cannot be put in two new clusters")
        for group in groups:
            _check_assigned_by(group.assigned_by)
            if not group.face_ids:
                raise InvalidRequestError("a new cluster needs at least one face")
        now = _now()
        with self._write() as connection:
            _check_faces(connection, all_ids, model_id)
            ids = [
                int(cluster_id)
                for cluster_id in connection.execute(
                    sa.insert(clusters).returning(clusters.c.id, sort_by_parameter_order=True),
                    [{"model_id": model_id, "created_at": now, "updated_at": now} for _ in groups],
                ).scalars()
            ]
            members = [
                {
                    "face_id": int(face_id),
                    "cluster_id": cid,
                    "assigned_by": ClusterAssignedBy(group.assigned_by),
                    "assigned_at": now,
                }
                for cid, group in zip(ids, groups, strict=True)
                for face_id in group.face_ids
            ]
            _insert_members(connection, members)
            events: list[dict[str, Any]] = []
            for cluster_id, group in zip(ids, groups, strict=True):
                events.append(
                    _event_row(cluster_id, ClusterEventKind.CREATE, actor, reason, group.face_ids, group.evidence, now)
                )
                events.extend(
                    _event_row(cluster_id, ClusterEventKind.MERGE, actor, reason, (), merge, now)
                    for merge in group.merges
                )
            _insert_events(connection, events)
        return ids

    def assign_faces(self, assignments: Sequence[ClusterAssignment], actor: str, reason: str) -> int:
        """Add faces to existing clusters (incrementally assigned), one 'assign' event each; returns how many."""
        if not assignments:
            return 0
        now = _now()
        with self._write() as connection:
            targets = _unique_ints([a.cluster_id for a in assignments])
            models = _cluster_models(connection, targets)
            missing = [cluster_id for cluster_id in targets if cluster_id not in models]
            if missing:
                raise NotFoundError(f"no cluster {', '.join(map(str, missing))}")
            for model_id in set(models.values()):
                _check_faces(connection, [a.face_id for a in assignments if models[a.cluster_id] == model_id], model_id)
            _insert_members(
                connection,
                [
                    {
                        "face_id": a.face_id,
                        "cluster_id": a.cluster_id,
                        "assigned_by": ClusterAssignedBy.INCREMENTAL,
                        "assigned_at": now,
                    }
                    for a in assignments
                ],
            )
            _insert_events(
                connection,
                [
                    _event_row(a.cluster_id, ClusterEventKind.ASSIGN, actor, reason, (a.face_id,), a.evidence, now)
                    for a in assignments
                ],
            )
            _touch(connection, targets, now)
        return len(assignments)

    def merge_clusters(
        self, kept: int, absorbed: int, actor: str, reason: str, evidence: dict[str, object]
    ) -> ClusterEvent:
        """Move every face of absorbed into kept and delete absorbed; one 'merge' event names both."""
        if kept == absorbed:
            raise InvalidRequestError(f"cluster {kept} cannot be merged with itself")
        now = _now()
        with self._write() as connection:
            models = _cluster_models(connection, [kept, absorbed])
            for cluster_id in (kept, absorbed):
                if cluster_id not in models:
                    raise NotFoundError(f"no cluster {cluster_id}")
            if models[kept] != models[absorbed]:
                raise InvalidRequestError(f"clusters {kept} and {absorbed} hold faces of different models")
            moved = _member_ids(connection, absorbed)
            connection.execute(
                sa.update(cluster_members)
                .where(cluster_members.c.cluster_id == absorbed)
                .values(cluster_id=kept, assigned_by=ClusterAssignedBy.MANUAL, assigned_at=now)
            )
            connection.execute(sa.delete(clusters).where(clusters.c.id == absorbed))
            _touch(connection, [kept], now)
            row = _event_row(kept, ClusterEventKind.MERGE, actor, reason, tuple(moved), evidence, now, other=absorbed)
            return _insert_event(connection, row)

    def split_cluster(
        self, cluster_id: int, face_ids: Sequence[int], actor: str, reason: str, evidence: dict[str, object]
    ) -> ClusterEvent:
        """Move these faces of cluster_id into a new cluster (other_cluster_id of the 'split' event)."""
        wanted = _unique_ints(face_ids)
        if not wanted:
            raise InvalidRequestError("name the faces to split off")
        now = _now()
        with self._write() as connection:
            model_id = _cluster_models(connection, [cluster_id]).get(cluster_id)
            if model_id is None:
                raise NotFoundError(f"no cluster {cluster_id}")
            members = set(_member_ids(connection, cluster_id))
            strangers = [face_id for face_id in wanted if face_id not in members]
            if strangers:
                raise InvalidRequestError(f"faces {', '.join(map(str, strangers))} are not in cluster {cluster_id}")
            if len(wanted) == len(members):
                raise InvalidRequestError(f"splitting off every face of cluster {cluster_id} would leave it empty")
            new_id = _insert_cluster(connection, model_id, now)
            for chunk in _chunks(wanted, _IN_CHUNK):
                connection.execute(
                    sa.update(cluster_members)
                    .where(cluster_members.c.face_id.in_(chunk))
                    .values(cluster_id=new_id, assigned_by=ClusterAssignedBy.MANUAL, assigned_at=now)
                )
            _touch(connection, [cluster_id], now)
            row = _event_row(
                cluster_id, ClusterEventKind.SPLIT, actor, reason, tuple(sorted(wanted)), evidence, now, other=new_id
            )
            return _insert_event(connection, row)

    def rename_cluster(self, cluster_id: int, name: str | None, actor: str, reason: str) -> ClusterEvent:
        """Set (or with None clear) the cluster's confirmed label."""
        label = name.strip() if name is not None else None
        now = _now()
        with self._write() as connection:
            previous = connection.execute(sa.select(clusters.c.name).where(clusters.c.id == cluster_id)).first()
            if previous is None:
                raise NotFoundError(f"no cluster {cluster_id}")
            connection.execute(
                sa.update(clusters).where(clusters.c.id == cluster_id).values(name=label or None, updated_at=now)
            )
            evidence: dict[str, object] = {"previous_name": previous.name, "name": label or None}
            return _insert_event(
                connection, _event_row(cluster_id, ClusterEventKind.RENAME, actor, reason, (), evidence, now)
            )

    def set_cluster_hidden(self, cluster_id: int, hidden: bool, actor: str, reason: str) -> ClusterEvent:
        """Hide the cluster from the people view (or show it again); a 'hide' or 'unhide' event records who and why.
        Hiding a hidden cluster (or showing a shown one) is refused, so every event is a change."""
        now = _now()
        with self._write() as connection:
            previous = connection.execute(sa.select(clusters.c.hidden).where(clusters.c.id == cluster_id)).first()
            if previous is None:
                raise NotFoundError(f"no cluster {cluster_id}")
            if bool(previous.hidden) == hidden:
                raise ConflictError(f"cluster {cluster_id} is {'hidden' if hidden else 'shown'} already")
            connection.execute(
                sa.update(clusters).where(clusters.c.id == cluster_id).values(hidden=hidden, updated_at=now)
            )
            kind = ClusterEventKind.HIDE if hidden else ClusterEventKind.UNHIDE
            return _insert_event(connection, _event_row(cluster_id, kind, actor, reason, (), {}, now))

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)


def leave_clusters(
    connection: Connection, face_ids: Sequence[int], actor: str, reason: str
) -> tuple[list[int], list[int]]:
    """Inside the caller's transaction, before the faces are deleted: drop their memberships, record an 'erase'
    event per cluster they leave, and delete clusters left empty. Returns (clusters left, clusters deleted)."""
    left: dict[int, list[int]] = {}
    wanted = _unique_ints(face_ids)
    for chunk in _chunks(wanted, _IN_CHUNK):
        rows = connection.execute(
            sa.select(cluster_members.c.face_id, cluster_members.c.cluster_id).where(
                cluster_members.c.face_id.in_(chunk)
            )
        )
        for face_id, cluster_id in rows:
            left.setdefault(int(cluster_id), []).append(int(face_id))
    if not left:
        return [], []
    now = _now()
    for chunk in _chunks(wanted, _IN_CHUNK):
        connection.execute(sa.delete(cluster_members).where(cluster_members.c.face_id.in_(chunk)))
    touched = sorted(left)
    still_used = {
        int(cluster_id)
        for chunk in _chunks(touched, _IN_CHUNK)
        for cluster_id in connection.execute(
            sa.select(cluster_members.c.cluster_id).where(cluster_members.c.cluster_id.in_(chunk)).distinct()
        ).scalars()
    }
    emptied = [cluster_id for cluster_id in touched if cluster_id not in still_used]
    for chunk in _chunks(emptied, _IN_CHUNK):
        connection.execute(sa.delete(clusters).where(clusters.c.id.in_(chunk)))
    _touch(connection, [cluster_id for cluster_id in touched if cluster_id in still_used], now)
    _insert_events(
        connection,
        [
            _event_row(
                cluster_id,
                ClusterEventKind.ERASE,
                actor,
                reason,
                tuple(sorted(left[cluster_id])),
                {"cluster_deleted": cluster_id not in still_used},
                now,
            )
            for cluster_id in touched
        ],
    )
    return touched, emptied


def _check_assigned_by(how: str) -> None:
    try:
        ClusterAssignedBy(how)
    except ValueError:
        raise InvalidRequestError(f"assigned_by must be one of {', '.join(ClusterAssignedBy)}, not {how!r}") from None


def _check_faces(connection: Connection, face_ids: Sequence[int], model_id: str) -> None:
    """Every face exists, is of model_id and is in no cluster yet."""
    wanted = _unique_ints(face_ids)
    seen: dict[int, str] = {}
    taken: list[int] = []
    for chunk in _chunks(wanted, _IN_CHUNK):
        for face_id, face_model, member in connection.execute(
            sa.select(faces.c.id, faces.c.model_id, cluster_members.c.cluster_id)
            .outerjoin(cluster_members, cluster_members.c.face_id == faces.c.id)
            .where(faces.c.id.in_(chunk))
        ):
            seen[int(face_id)] = str(face_model)
            if member is not None:
                taken.append(int(face_id))
    unknown = [face_id for face_id in wanted if face_id not in seen]
    if unknown:
        raise CatalogError(f"no face {', '.join(map(str, unknown[:10]))} in the catalog")
    foreign = [face_id for face_id, face_model in seen.items() if face_model != model_id]
    if foreign:
        raise CatalogError(f"faces {', '.join(map(str, sorted(foreign)[:10]))} are not of model {model_id!r}")
    if taken:
        raise ConflictError(f"faces {', '.join(map(str, sorted(taken)[:10]))} already belong to a cluster")


def _insert_cluster(connection: Connection, model_id: str, now: datetime) -> int:
    return int(
        connection.execute(
            sa.insert(clusters).values(model_id=model_id, created_at=now, updated_at=now).returning(clusters.c.id)
        ).scalar_one()
    )


def _insert_members(connection: Connection, rows: list[dict[str, Any]]) -> None:
    try:
        with connection.begin_nested():
            connection.execute(sa.insert(cluster_members), rows)
    except IntegrityError as exc:
        # Another writer placed one of these faces since they were checked.
        raise ConflictError(f"a face already belongs to a cluster: {exc.orig}") from exc


def _insert_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(sa.insert(cluster_events), rows)


def _insert_event(connection: Connection, row: dict[str, Any]) -> ClusterEvent:
    event_id = connection.execute(sa.insert(cluster_events).values(**row).returning(cluster_events.c.id)).scalar_one()
    return ClusterEvent(
        event_id=int(event_id),
        cluster_id=row["cluster_id"],
        kind=row["kind"],
        actor=row["actor"],
        reason=row["reason"],
        face_ids=tuple(row["face_ids"]),
        other_cluster_id=row["other_cluster_id"],
        evidence=dict(row["evidence"]),
        at=row["at"],
    )


def _event_row(
    cluster_id: int,
    kind: ClusterEventKind,
    actor: str,
    reason: str,
    face_ids: Sequence[int],
    evidence: dict[str, object],
    at: datetime,
    *,
    other: int | None = None,
) -> dict[str, Any]:
    return {
        "cluster_id": int(cluster_id),
        "other_cluster_id": other,
        "kind": kind,
        "actor": actor,
        "reason": reason,
        "face_ids": [int(face_id) for face_id in face_ids],
        "evidence": dict(evidence),
        "at": at,
    }


def _cluster_models(connection: Connection, cluster_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(_unique_ints(cluster_ids), _IN_CHUNK):
        rows = connection.execute(sa.select(clusters.c.id, clusters.c.model_id).where(clusters.c.id.in_(chunk)))
        found.update((int(cluster_id), str(model_id)) for cluster_id, model_id in rows)
    return found


def _member_ids(connection: Connection, cluster_id: int) -> list[int]:
    return [
        int(face_id)
        for face_id in connection.execute(
            sa.select(cluster_members.c.face_id)
            .where(cluster_members.c.cluster_id == cluster_id)
            .order_by(cluster_members.c.face_id)
        ).scalars()
    ]


def _touch(connection: Connection, cluster_ids: Sequence[int], now: datetime) -> None:
    for chunk in _chunks(_unique_ints(cluster_ids), _IN_CHUNK):
        connection.execute(sa.update(clusters).where(clusters.c.id.in_(chunk)).values(updated_at=now))


def _cluster(row: Row[Any], face_ids: Sequence[int]) -> StoredCluster:
    return StoredCluster(
        cluster_id=int(row.id),
        model_id=row.model_id,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        face_ids=tuple(face_ids),
        hidden=bool(row.hidden),
    )


def _event(row: Row[Any]) -> ClusterEvent:
    return ClusterEvent(
        event_id=int(row.id),
        cluster_id=int(row.cluster_id),
        kind=ClusterEventKind(row.kind),
        actor=row.actor,
        reason=row.reason,
        face_ids=tuple(int(face_id) for face_id in row.face_ids),
        other_cluster_id=None if row.other_cluster_id is None else int(row.other_cluster_id),
        evidence=dict(row.evidence),
        at=row.at,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _unique_ints(values: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(value) for value in values))


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
