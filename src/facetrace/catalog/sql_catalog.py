"""The catalog on SQLite or PostgreSQL through SQLAlchemy Core: the source of truth the index is rebuilt from."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from facetrace.catalog import blobs, changes
from facetrace.catalog.cluster_store import SqlClusterStore, leave_clusters
from facetrace.catalog.database import create_catalog_engine, describe, reading, writing
from facetrace.catalog.governance_store import SqlGovernanceStore
from facetrace.catalog.records import (
    FINAL_RUN_STATUSES,
)
from facetrace.catalog.schema import upgrade_to_head
from facetrace.catalog.tables import assets, ingest_errors, ingest_runs, people, sources
from facetrace.catalog.tables import faces as faces_table
from facetrace.core.errors import CatalogError, ModelMismatchError, StorageFullError
from facetrace.core.ports import IdArray
from facetrace.core.subject import decide_subject
from facetrace.core.types import (
    AnalyzedFace,
    BoundingBox,
    CatalogStats,
    ChangeCounters,
    DeletedFaces,
    FaceRecord,
    FloatArray,
    IngestErrorRecord,
    MediaAsset,
    RunRecord,
    SubjectChoice,
)
from facetrace.core.vocabulary import PhotoRole, RunStatus, SubjectAttribution

logger = logging.getLogger(__name__)

# Ids per IN (...) clause: well under SQLite's bound-parameter limit and PostgreSQL's, on every version.
_IN_CHUNK = 500
# Every search reads its candidates' rows with this: built once (with the ids as one expanding parameter), a call
# costs a third less than building the query each time (measured 0.87 -> 0.54 ms for 10 faces).
_FACES_BY_ID = (
    sa.select(
        faces_table,
        assets.c.uri,
        assets.c.sha256,
        assets.c.source_page,
        assets.c.captured_at,
        assets.c.ingested_at,
        assets.c.retain_until,
        assets.c.label.label("asset_label"),
        assets.c.attribution.label("asset_attribution"),
        assets.c.extra.label("asset_extra"),
        people.c.name.label("person_name"),
        sources.c.legal_basis.label("source_legal_basis"),
    )
    .join(assets, faces_table.c.asset_id == assets.c.id)
    .outerjoin(people, faces_table.c.person_id == people.c.id)
    .outerjoin(sources, assets.c.source_id == sources.c.id)
    .where(faces_table.c.id.in_(sa.bindparam("face_ids", expanding=True)))
)
_T = TypeVar("_T")


def open_catalog(uri: str) -> SqlCatalog:
    """Open the catalog at uri (sqlite:///path/catalog.db or postgresql://user@host/db), creating it if missing
    and upgrading its schema to the one this code knows.

    Runs left 'running' by a process of this host that no longer exists are marked interrupted on the way in;
    their ids are in SqlCatalog.interrupted_at_open.
    Raises CatalogError for an unusable URI, an unreachable server, or a schema newer than this facetrace.
    """
    engine = create_catalog_engine(uri)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    catalog = SqlCatalog(engine)
    catalog.interrupted_at_open = tuple(catalog.mark_abandoned_runs())
    if catalog.interrupted_at_open and not catalog.interrupted_unwritten:
        logger.warning(
            "ingest runs %s were left running by processes that no longer exist; marked interrupted",
            ", ".join(map(str, catalog.interrupted_at_open)),
        )
    return catalog


class SqlCatalog:
    """Implements the Catalog port. Build it with open_catalog(); the engine must already be at the schema head."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._run_models: dict[int, str] = {}
        self._model_dims: dict[str, int] = {}
        self.interrupted_at_open: tuple[int, ...] = ()
        # Runs found abandoned whose status could not be written (a full disk): reported interrupted all the same.
        self._interrupted_unwritten: set[int] = set()

    @property
    def url(self) -> str:
        """Where the catalog lives, without any password."""
        return describe(self._engine.url)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"SqlCatalog({self.url!r})"

    def __enter__(self) -> SqlCatalog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    # Runs and errors

    def start_run(self, description: str, model_id: str) -> int:
        with self._write() as connection:
            run_id = connection.execute(
                sa.insert(ingest_runs)
                .values(
                    started_at=_now(),
                    status=RunStatus.RUNNING,
                    description=description,
                    model_id=model_id,
                    stats={},
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
                .returning(ingest_runs.c.id)
            ).scalar_one()
        self._run_models[int(run_id)] = model_id
        return int(run_id)

    def finish_run(self, run_id: int, status: RunStatus, stats: dict[str, int]) -> None:
        if status not in FINAL_RUN_STATUSES:
            raise CatalogError(f"a run finishes as one of {sorted(map(str, FINAL_RUN_STATUSES))}, not {str(status)!r}")
        with self._write() as connection:
            updated = connection.execute(
                sa.update(ingest_runs)
                .where(ingest_runs.c.id == run_id)
                .values(status=status, finished_at=_now(), stats={key: int(value) for key, value in stats.items()})
            ).rowcount
        if updated != 1:
            raise CatalogError(f"no ingest run {run_id} in the catalog at {self.url}")

    def runs(self, status: RunStatus | None = None) -> list[RunRecord]:
        """Ingest runs, newest first, optionally only those with this status."""
        query = sa.select(ingest_runs).order_by(ingest_runs.c.id.desc())
        if status is not None and not self._interrupted_unwritten:
            query = query.where(ingest_runs.c.status == status)
        with self._read() as connection:
            records = [_run_record(row) for row in connection.execute(query)]
        if self._interrupted_unwritten:
            records = [
                dataclasses.replace(record, status=RunStatus.INTERRUPTED)
                if record.run_id in self._interrupted_unwritten and record.status == RunStatus.RUNNING
                else record
                for record in records
            ]
        return [record for record in records if status is None or record.status == status]

    def mark_abandoned_runs(self) -> list[int]:
        """Mark interrupted the runs still 'running' whose process on this host is gone; returns their ids.

        Runs started on other hosts are left alone: whether their process lives cannot be known from here.
        """
        host = socket.gethostname()
        with self._read() as connection:
            candidates = connection.execute(
                sa.select(ingest_runs.c.id, ingest_runs.c.pid).where(
                    ingest_runs.c.status == RunStatus.RUNNING, ingest_runs.c.host == host
                )
            ).all()
        abandoned = [int(run_id) for run_id, pid in candidates if pid is not None and not _process_alive(int(pid))]
        if abandoned:
            try:
                with self._write() as connection:
                    connection.execute(
                        sa.update(ingest_runs)
                        .where(ingest_runs.c.id.in_(abandoned), ingest_runs.c.status == RunStatus.RUNNING)
                        .values(status=RunStatus.INTERRUPTED)
                    )
            except StorageFullError as exc:
                # A full disk must not stop the commands that only read (check, stats): these runs are reported
                # interrupted by this process, and written so by the first that can write.
                self._interrupted_unwritten.update(abandoned)
                logger.info("ingest runs %s are interrupted; not recorded yet: %s", abandoned, exc)
        return abandoned

    def _runs_by_status(self, by_status: Sequence[Any]) -> dict[RunStatus, int]:
        counts = {RunStatus(row[0]): int(row[1]) for row in by_status}
        moved = min(len(self._interrupted_unwritten), counts.get(RunStatus.RUNNING, 0))
        if moved:  # runs found abandoned whose status a full disk kept from being written
            counts[RunStatus.RUNNING] -= moved
            counts[RunStatus.INTERRUPTED] = counts.get(RunStatus.INTERRUPTED, 0) + moved
            counts = {status: count for status, count in counts.items() if count}
        return counts

    @property
    def interrupted_unwritten(self) -> frozenset[int]:
        """Runs found abandoned at open that a full disk kept from being marked: reported interrupted all the same."""
        return frozenset(self._interrupted_unwritten)

    def record_error(self, run_id: int, uri: str, message: str) -> None:
        with self._write() as connection:
            connection.execute(sa.insert(ingest_errors).values(run_id=run_id, uri=uri, message=message, at=_now()))

    def ingest_errors(self, run_id: int | None = None, limit: int | None = None) -> list[IngestErrorRecord]:
        """Recorded ingest errors, oldest first, optionally of one run."""
        query = sa.select(ingest_errors).order_by(ingest_errors.c.id)
        if run_id is not None:
            query = query.where(ingest_errors.c.run_id == run_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as connection:
            return [
                IngestErrorRecord(run_id=row.run_id, uri=row.uri, message=row.message, at=row.at)
                for row in connection.execute(query)
            ]

    # Assets and faces

    def known_sha256(self, sha256s: Sequence[str]) -> set[str]:
        known: set[str] = set()
        with self._read() as connection:
            for chunk in _chunks(sorted(set(sha256s)), _IN_CHUNK):
                known.update(connection.execute(sa.select(assets.c.sha256).where(assets.c.sha256.in_(chunk))).scalars())
        return known

    def add_asset_with_faces(
        self,
        run_id: int,
        asset: MediaAsset,
        faces: Sequence[AnalyzedFace],
        model_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        thumbnail_paths: Sequence[str | None] | None = None,
        subject: SubjectChoice | None = None,
    ) -> tuple[int, list[int]]:
        """Store an asset and its faces in one transaction; returns (asset_id, face_ids).

        thumbnail_paths, when given, has one entry per face (None for a face without a crop); storing them in the
        same transaction means a crash can never leave a face without its thumbnail.

        An asset whose sha256 is already stored is not stored again: its existing id comes back with no face ids.
        The asset's label names one face, its subject: subject.face (a position in faces), or without subject the
        face core/subject.py's rule finds among faces (with width and height). That face is assigned to the person
        (get_or_create_person); the other faces are bystanders and get no person. How the subject was decided is
        stored with the asset (assets.attribution: ambiguous when no face dominates, and then no face gets the
        label). The label itself stays with the asset as provenance (FaceRecord.photo_label).
        """
        self._check_run_model(run_id, model_id)
        face_rows = [self._face_row(face, model_id, asset.uri) for face in faces]
        if thumbnail_paths is not None:
            if len(thumbnail_paths) != len(face_rows):
                raise CatalogError(f"{asset.uri}: {len(thumbnail_paths)} thumbnail paths for {len(face_rows)} faces")
            for row, thumbnail in zip(face_rows, thumbnail_paths, strict=True):
                row["thumbnail_path"] = thumbnail
        person_name = (asset.label or "").strip()
        if not person_name:
            subject = None
        elif subject is None:
            boxes = [face.detection.box for face in faces]
            subject = decide_subject(boxes, float(width or 0), float(height or 0))
        elif subject.face is not None and not 0 <= subject.face < len(face_rows):
            raise CatalogError(f"{asset.uri}: the subject is face {subject.face}, but the photo has {len(face_rows)}")
        captured_at = _aware(asset.captured_at, f"{asset.uri}: captured_at")
        retain_until = _aware(asset.retain_until, f"{asset.uri}: retain_until")
        try:
            with self._write() as connection:
                existing = _asset_id(connection, asset.sha256)
                if existing is not None:
                    return existing, []
                source_id = None
                if asset.source_name:
                    source_id = _get_or_create_source(connection, asset.source_name, asset.legal_basis, None)
                person_id = None
                if subject is not None and subject.face is not None:
                    person_id = _get_or_create_person(connection, person_name)
                asset_id = int(
                    connection.execute(
                        sa.insert(assets)
                        .values(
                            sha256=asset.sha256,
                            uri=asset.uri,
                            source_page=asset.source_page,
                            captured_at=captured_at,
                            ingested_at=_now(),
                            source_id=source_id,
                            run_id=run_id,
                            label=asset.label,
                            width=width,
                            height=height,
                            extra=_extra_with_legal_basis(asset) or None,
                            retain_until=retain_until,
                            attribution=None if subject is None else SubjectAttribution(subject.attribution),
                        )
                        .returning(assets.c.id)
                    ).scalar_one()
                )
                face_ids: list[int] = []
                if face_rows:
                    subject_face = None if subject is None else subject.face
                    rows = [
                        {**row, "asset_id": asset_id, "person_id": person_id if number == subject_face else None}
                        for number, row in enumerate(face_rows)
                    ]
                    face_ids = [
                        int(face_id)
                        for face_id in connection.execute(
                            sa.insert(faces_table).returning(faces_table.c.id, sort_by_parameter_order=True), rows
                        ).scalars()
                    ]
                    changes.bump(connection, changes.FACES_ADDED)
        except IntegrityError as exc:
            # Another process stored the same image between our lookup and insert (PostgreSQL; SQLite writers
            # are serialised): the outcome is the same as finding it stored.
            with self._read() as connection:
                existing = _asset_id(connection, asset.sha256)
            if existing is None:
                raise CatalogError(f"{asset.uri}: the catalog refused the asset: {exc.orig}") from exc
            return existing, []
        return asset_id, face_ids

    def set_thumbnail_paths(self, paths: dict[int, str]) -> None:
        if not paths:
            return
        statement = (
            sa.update(faces_table)
            .where(faces_table.c.id == sa.bindparam("face_id"))
            .values(thumbnail_path=sa.bindparam("path"))
        )
        with self._write() as connection:
            connection.execute(statement, [{"face_id": face_id, "path": path} for face_id, path in paths.items()])

    def faces_by_id(self, face_ids: Sequence[int]) -> dict[int, FaceRecord]:
        """The stored faces among face_ids with their assets' provenance; absent ids are simply not in the result.

        FaceRecord.label is the name of the person assigned to the face (a labelled photo's subject carries its
        label); photo_label is the photo's label and photo_role the face's part in that photo.
        """
        records: dict[int, FaceRecord] = {}
        with self._read() as connection:
            for chunk in _chunks(_unique_ints(face_ids), _IN_CHUNK):
                for row in connection.execute(_FACES_BY_ID, {"face_ids": chunk}):
                    records[int(row.id)] = _face_record(row)
        return records

    def embeddings_by_id(self, face_ids: Sequence[int], model_id: str | None = None) -> tuple[IdArray, FloatArray]:
        """(ids, vectors) of the stored faces among face_ids, in the order asked; absent ids are left out.

        Raises CatalogError if the faces found have embeddings of different dimensions (different models).
        """
        wanted = _unique_ints(face_ids)
        found: dict[int, tuple[bytes, int]] = {}
        query = sa.select(faces_table.c.id, faces_table.c.embedding, faces_table.c.dim)
        if model_id is not None:
            query = query.where(faces_table.c.model_id == model_id)
        with self._read() as connection:
            for chunk in _chunks(wanted, _IN_CHUNK):
                for face_id, embedding, dim in connection.execute(query.where(faces_table.c.id.in_(chunk))):
                    found[int(face_id)] = (bytes(embedding), int(dim))
        ids = [face_id for face_id in wanted if face_id in found]
        dims = {found[face_id][1] for face_id in ids}
        if len(dims) > 1:
            raise CatalogError(f"faces {ids[:10]} hold embeddings of dimensions {sorted(dims)}; ask for one model")
        dim = dims.pop() if dims else 0
        matrix = blobs.decode_matrix([found[face_id][0] for face_id in ids], dim)
        return np.asarray(ids, dtype=np.int64), matrix

    def iter_embeddings(self, model_id: str, batch_size: int = 10_000) -> Iterator[tuple[IdArray, FloatArray]]:
        if batch_size < 1:
            raise CatalogError(f"batch_size must be at least 1, got {batch_size}")
        last_id = -1
        while True:
            # Keyset paging by id: each batch is its own short read, so a slow consumer holds no transaction open.
            with self._read() as connection:
                rows = connection.execute(
                    sa.select(faces_table.c.id, faces_table.c.embedding, faces_table.c.dim)
                    .where(faces_table.c.model_id == model_id, faces_table.c.id > last_id)
                    .order_by(faces_table.c.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                return
            dims = {int(row.dim) for row in rows}
            if len(dims) != 1:
                raise CatalogError(f"model {model_id!r} has embeddings of dimensions {sorted(dims)} in the catalog")
            ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
            yield ids, blobs.decode_matrix([bytes(row.embedding) for row in rows], dims.pop())
            last_id = int(ids[-1])

    def face_ids(self, model_id: str, *, after: int | None = None) -> IdArray:
        """Every face id of one model, ascending: what a consistent index of that model must hold; with after, only
        the ids above it (what was added since a reader last looked)."""
        query = sa.select(faces_table.c.id).where(faces_table.c.model_id == model_id)
        if after is not None:
            query = query.where(faces_table.c.id > after)
        with self._read() as connection:
            return np.fromiter(connection.execute(query.order_by(faces_table.c.id)).scalars(), dtype=np.int64)

    def count_faces(self, model_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(faces_table)
        if model_id is not None:
            query = query.where(faces_table.c.model_id == model_id)
        with self._read() as connection:
            return int(connection.execute(query).scalar_one())

    # Erasure (implements the FaceEraser port)

    def face_ids_labelled(self, label: str) -> list[int]:
        """Faces carrying this label (FaceRecord.label: their person's name); a bystander in a photo labelled so is
        not one of them."""
        query = (
            sa.select(faces_table.c.id)
            .join(people, faces_table.c.person_id == people.c.id)
            .where(people.c.name == label)
            .order_by(faces_table.c.id)
        )
        with self._read() as connection:
            return [int(face_id) for face_id in connection.execute(query).scalars()]

    def labels(self, model_id: str, offset: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """A page of labels (as face_ids_labelled matches them) with the number of faces of one model carrying
        each, by name, and how many labels there are in all. Unlabelled faces (bystanders too) are not counted."""
        labelled = (
            sa.select(people.c.name.label("shown"), faces_table.c.id)
            .join(people, faces_table.c.person_id == people.c.id)
            .where(faces_table.c.model_id == model_id)
            .subquery()
        )
        page = (
            sa.select(labelled.c.shown, sa.func.count(labelled.c.id))
            .group_by(labelled.c.shown)
            .order_by(labelled.c.shown)
            .offset(offset)
            .limit(limit)
        )
        total = sa.select(sa.func.count(sa.distinct(labelled.c.shown)))
        with self._read() as connection:
            rows = [(str(name), int(count)) for name, count in connection.execute(page)]
            return rows, int(connection.execute(total).scalar_one())

    def delete_faces(self, face_ids: Sequence[int], *, actor: str = "erasure", reason: str = "") -> DeletedFaces:
        """Delete these faces and every asset left without faces, in one transaction; absent ids are ignored.

        The faces leave their persisted clusters in the same transaction ('erase' events naming actor and reason);
        a cluster left without faces is deleted (its events stay).
        """
        wanted = _unique_ints(face_ids)
        rows: list[Any] = []
        deleted_assets: list[tuple[int, str]] = []
        with self._write() as connection:
            for chunk in _chunks(wanted, _IN_CHUNK):
                rows.extend(
                    connection.execute(
                        sa.select(
                            faces_table.c.id,
                            faces_table.c.asset_id,
                            faces_table.c.thumbnail_path,
                            faces_table.c.model_id,
                            faces_table.c.embedding,
                            faces_table.c.dim,
                        ).where(faces_table.c.id.in_(chunk))
                    ).all()
                )
            dims = {int(row.dim) for row in rows}
            if len(dims) > 1:
                # Checked before deleting anything: the caller gets one model's embeddings or nothing changes.
                raise CatalogError(f"faces {wanted[:10]} hold embeddings of dimensions {sorted(dims)}; erase one model")
            left, emptied = leave_clusters(connection, [int(row.id) for row in rows], actor, reason)
            for chunk in _chunks(wanted, _IN_CHUNK):
                connection.execute(sa.delete(faces_table).where(faces_table.c.id.in_(chunk)))
            if rows:
                changes.bump(connection, changes.FACES_REMOVED)
            touched = sorted({int(row.asset_id) for row in rows})
            for chunk in _chunks(touched, _IN_CHUNK):
                remaining = sa.select(faces_table.c.id).where(faces_table.c.asset_id == assets.c.id).exists()
                empty = connection.execute(
                    sa.select(assets.c.id, assets.c.uri).where(assets.c.id.in_(chunk), ~remaining)
                ).all()
                if empty:
                    connection.execute(sa.delete(assets).where(assets.c.id.in_([int(a.id) for a in empty])))
                    deleted_assets.extend((int(a.id), str(a.uri)) for a in empty)
        rows.sort(key=lambda row: int(row.id))
        embeddings = blobs.decode_matrix([bytes(row.embedding) for row in rows], dims.pop() if dims else 0)
        return DeletedFaces(
            face_ids=tuple(int(row.id) for row in rows),
            asset_ids=tuple(asset_id for asset_id, _ in deleted_assets),
            asset_uris=tuple(uri for _, uri in deleted_assets),
            thumbnail_paths=tuple(str(row.thumbnail_path) for row in rows if row.thumbnail_path),
            model_ids=tuple(str(row.model_id) for row in rows),
            embeddings=embeddings,
            cluster_ids=tuple(left),
            clusters_deleted=tuple(emptied),
        )

    def change_counters(self) -> ChangeCounters:
        """How often faces were added and removed and suppressions written, by any process (one small read)."""
        with self._read() as connection:
            return changes.read(connection)

    def cluster_store(self) -> SqlClusterStore:
        """Persisted clusters, their members and events, in this catalog's database."""
        return SqlClusterStore(self._engine)

    def face_ids_of_run(self, run_id: int, model_id: str | None = None) -> IdArray:
        """Ascending ids of the faces stored by one ingest run (of one model, if given)."""
        query = (
            sa.select(faces_table.c.id)
            .join(assets, faces_table.c.asset_id == assets.c.id)
            .where(assets.c.run_id == run_id)
            .order_by(faces_table.c.id)
        )
        if model_id is not None:
            query = query.where(faces_table.c.model_id == model_id)
        with self._read() as connection:
            return np.fromiter(connection.execute(query).scalars(), dtype=np.int64)

    # Retention (the purge job): assets whose retain_until has passed, and their faces

    def expired_face_ids(self, now: datetime, model_id: str) -> list[int]:
        """Faces of this model whose asset's retention ended at or before now, in id order."""
        query = (
            sa.select(faces_table.c.id)
            .join(assets, faces_table.c.asset_id == assets.c.id)
            .where(assets.c.retain_until <= _aware(now, "now"), faces_table.c.model_id == model_id)
            .order_by(faces_table.c.id)
        )
        with self._read() as connection:
            return [int(face_id) for face_id in connection.execute(query).scalars()]

    def expired_asset_ids(self, now: datetime) -> list[int]:
        """Assets whose retention ended at or before now (with or without faces), in id order."""
        query = sa.select(assets.c.id).where(assets.c.retain_until <= _aware(now, "now")).order_by(assets.c.id)
        with self._read() as connection:
            return [int(asset_id) for asset_id in connection.execute(query).scalars()]

    def delete_faceless_assets(self, asset_ids: Sequence[int]) -> list[tuple[int, str]]:
        """Delete those of these assets that have no face left (of any model); returns their (id, uri)."""
        deleted: list[tuple[int, str]] = []
        remaining = sa.select(faces_table.c.id).where(faces_table.c.asset_id == assets.c.id).exists()
        with self._write() as connection:
            for chunk in _chunks(_unique_ints(asset_ids), _IN_CHUNK):
                empty = connection.execute(
                    sa.select(assets.c.id, assets.c.uri).where(assets.c.id.in_(chunk), ~remaining)
                ).all()
                if empty:
                    connection.execute(sa.delete(assets).where(assets.c.id.in_([int(a.id) for a in empty])))
                    deleted.extend((int(a.id), str(a.uri)) for a in empty)
        return sorted(deleted)

    def governance_store(self) -> SqlGovernanceStore:
        """Users, cases, audit chain, suppressions and receipts, in this catalog's database."""
        return SqlGovernanceStore(self._engine)

    # People and sources

    def get_or_create_person(self, name: str) -> int:
        name = _nonblank(name, "a person's name")
        with self._write() as connection:
            return _get_or_create_person(connection, name)

    def assign_person(self, face_ids: Sequence[int], person_id: int | None) -> int:
        """Set (or with None, clear) the person of these faces; returns how many faces changed."""
        changed = 0
        with self._write() as connection:
            for chunk in _chunks(_unique_ints(face_ids), _IN_CHUNK):
                changed += connection.execute(
                    sa.update(faces_table).where(faces_table.c.id.in_(chunk)).values(person_id=person_id)
                ).rowcount
        return changed

    def get_or_create_source(self, name: str, legal_basis: str | None = None, retention_days: int | None = None) -> int:
        name = _nonblank(name, "a source's name")
        with self._write() as connection:
            return _get_or_create_source(connection, name, legal_basis, retention_days)

    # Health

    def stats(self) -> CatalogStats:
        with self._read() as connection:
            asset_count = connection.execute(sa.select(sa.func.count()).select_from(assets)).scalar_one()
            by_model = connection.execute(
                sa.select(faces_table.c.model_id, sa.func.count())
                .group_by(faces_table.c.model_id)
                .order_by(faces_table.c.model_id)
            ).all()
            by_status = connection.execute(
                sa.select(ingest_runs.c.status, sa.func.count()).group_by(ingest_runs.c.status)
            ).all()
            error_count = connection.execute(sa.select(sa.func.count()).select_from(ingest_errors)).scalar_one()
            people_count = connection.execute(sa.select(sa.func.count()).select_from(people)).scalar_one()
            unattributed = connection.execute(
                sa.select(sa.func.count())
                .select_from(assets)
                .where(assets.c.attribution.in_([a for a in SubjectAttribution if not a.names_a_face]))
            ).scalar_one()
        return CatalogStats(
            assets=int(asset_count),
            faces_by_model={str(model): int(count) for model, count in by_model},
            runs_by_status=self._runs_by_status(by_status),
            errors=int(error_count),
            people=int(people_count),
            unattributed_labels=int(unattributed),
        )

    # Internals

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)

    def _check_run_model(self, run_id: int, model_id: str) -> None:
        run_model = self._run_models.get(run_id)
        if run_model is None:
            with self._read() as connection:
                stored = connection.execute(
                    sa.select(ingest_runs.c.model_id).where(ingest_runs.c.id == run_id)
                ).scalar_one_or_none()
            if stored is None:
                raise CatalogError(f"no ingest run {run_id} in the catalog at {self.url}; start one with start_run()")
            run_model = self._run_models[run_id] = str(stored)
        if run_model != model_id:
            raise ModelMismatchError(expected=run_model, actual=model_id, where=f"ingest run {run_id}")

    def _face_row(self, face: AnalyzedFace, model_id: str, uri: str) -> dict[str, Any]:
        if face.embedding.model_id != model_id:
            raise ModelMismatchError(expected=model_id, actual=face.embedding.model_id, where=f"{uri}: this asset")
        vector = np.asarray(face.embedding.vector)
        if vector.ndim != 1 or vector.dtype != np.float32 or not np.isfinite(vector).all():
            raise CatalogError(
                f"{uri}: an embedding must be a finite 1-D float32 vector, got {vector.dtype} {vector.shape}"
            )
        self._check_dim(model_id, int(vector.shape[0]))
        landmarks = np.asarray(face.detection.landmarks, dtype=np.float32)
        if landmarks.shape != blobs.LANDMARK_SHAPE:
            raise CatalogError(f"{uri}: landmarks must have shape {blobs.LANDMARK_SHAPE}, got {landmarks.shape}")
        box = face.detection.box
        try:
            flags = blobs.encode_flags(face.quality.flags)
        except ValueError as exc:
            raise CatalogError(f"{uri}: {exc}") from exc
        return {
            "x1": float(box.x1),
            "y1": float(box.y1),
            "x2": float(box.x2),
            "y2": float(box.y2),
            "landmarks": blobs.encode_floats(landmarks),
            "detection_score": float(face.detection.score),
            "quality_score": float(face.quality.score),
            "quality_flags": flags,
            "model_id": model_id,
            "embedding": blobs.encode_floats(vector),
            "dim": int(vector.shape[0]),
        }

    def _check_dim(self, model_id: str, dim: int) -> None:
        known = self._model_dims.get(model_id)
        if known is None:
            with self._read() as connection:
                stored = connection.execute(
                    sa.select(faces_table.c.dim).where(faces_table.c.model_id == model_id).limit(1)
                ).scalar_one_or_none()
            if stored is None:
                return
            known = self._model_dims[model_id] = int(stored)
        if known != dim:
            raise CatalogError(f"model {model_id!r} makes {known}-dimensional embeddings in this catalog, not {dim}")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise CatalogError(
            f"{what} {value.isoformat()} has no time zone; give it one (UTC if unknown is a choice the caller makes)"
        )
    return value


def _nonblank(value: str, what: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise CatalogError(f"{what} cannot be blank")
    return stripped


def _asset_id(connection: Connection, sha256: str) -> int | None:
    found = connection.execute(sa.select(assets.c.id).where(assets.c.sha256 == sha256)).scalar_one_or_none()
    return None if found is None else int(found)


def _get_or_create_person(connection: Connection, name: str) -> int:
    return _get_or_create(connection, people, name, {"created_at": _now()})


def _get_or_create_source(
    connection: Connection, name: str, legal_basis: str | None, retention_days: int | None
) -> int:
    source_id = _get_or_create(
        connection,
        sources,
        name,
        {"legal_basis": legal_basis, "retention_days": retention_days, "created_at": _now()},
    )
    if legal_basis is not None:
        # A source first seen without its legal basis gets it from the first asset that states one.
        connection.execute(
            sa.update(sources)
            .where(sources.c.id == source_id, sources.c.legal_basis.is_(None))
            .values(legal_basis=legal_basis)
        )
    return source_id


def _get_or_create(connection: Connection, table: sa.Table, name: str, values: Mapping[str, Any]) -> int:
    lookup = sa.select(table.c.id).where(table.c.name == name)
    found = connection.execute(lookup).scalar_one_or_none()
    if found is not None:
        return int(found)
    try:
        # A savepoint, so that losing a race to another writer does not abort the caller's transaction.
        with connection.begin_nested():
            return int(
                connection.execute(sa.insert(table).values(name=name, **values).returning(table.c.id)).scalar_one()
            )
    except IntegrityError:
        return int(connection.execute(lookup).scalar_one())


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=int(row.id),
        status=RunStatus(row.status),
        description=row.description,
        model_id=row.model_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        stats=dict(row.stats or {}),
        host=row.host,
        pid=row.pid,
    )


def _face_record(row: Row[Any]) -> FaceRecord:
    return FaceRecord(
        face_id=int(row.id),
        asset_id=int(row.asset_id),
        box=BoundingBox(row.x1, row.y1, row.x2, row.y2),
        landmarks=blobs.decode_landmarks(bytes(row.landmarks)),
        detection_score=float(row.detection_score),
        quality_score=float(row.quality_score),
        quality_flags=blobs.decode_flags(row.quality_flags),
        model_id=row.model_id,
        asset_uri=row.uri,
        asset_sha256=row.sha256,
        source_page=row.source_page,
        captured_at=row.captured_at,
        ingested_at=row.ingested_at,
        # The face's own person only: a photo's label names its subject, never a bystander.
        label=row.person_name,
        thumbnail_path=row.thumbnail_path,
        legal_basis=row.source_legal_basis or _extra_legal_basis(row.asset_extra),
        retain_until=row.retain_until,
        photo_label=row.asset_label,
        photo_role=_photo_role(row.person_name, row.asset_label, row.asset_attribution),
    )


def _photo_role(person: str | None, photo_label: str | None, attribution: str | None) -> PhotoRole | None:
    """A face's part in its photo: the subject carries the photo's label as its person; in a photo whose subject
    nobody could name, the other faces are unattributed; otherwise they are bystanders. None for unlabelled photos."""
    label = (photo_label or "").strip()
    if not label:
        return None
    if person == label:
        return PhotoRole.SUBJECT
    if attribution is not None and not SubjectAttribution(attribution).names_a_face:
        return PhotoRole.UNATTRIBUTED
    return PhotoRole.BYSTANDER


def _extra_with_legal_basis(asset: MediaAsset) -> dict[str, Any]:
    """The asset's extra metadata; an item's legal basis without a named source is kept here (a source's legal
    basis lives in the sources table), so that no stated legal basis is dropped."""
    extra: dict[str, Any] = dict(asset.extra)
    if asset.legal_basis and not asset.source_name:
        extra.setdefault("legal_basis", asset.legal_basis)
    return extra


def _extra_legal_basis(extra: Any) -> str | None:
    value = extra.get("legal_basis") if isinstance(extra, dict) else None
    return str(value) if value else None


def _unique_ints(values: Sequence[int]) -> list[int]:
    """Distinct ints in first-seen order (accepts numpy integers and arrays)."""
    return list(dict.fromkeys(int(value) for value in values))


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        # os.kill on Windows terminates the process instead of probing it; assume alive rather than guess.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True
