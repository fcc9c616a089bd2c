"""engine.clusters: group unknown faces into identities (conservatively), and the saved clusters' review verbs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrace.core.errors import CatalogError, ConflictError, InvalidRequestError, NotFoundError
from facetrace.core.ports import Catalog, ClusterStore, FaceAnalyzer, IdArray
from facetrace.core.types import BoundingBox, CaseContext, ClusterEvent, FaceRecord, StoredCluster
from facetrace.core.vocabulary import AuditAction
from facetrace.engine.actors import cli_actor
from facetrace.governance.audit import AuditLog
from facetrace.ingest.sources import iter_paths
from facetrace.search.clustering import Clustering, ClusteringThresholds, cluster, groups_of
from facetrace.search.identities import ClusterUpdate, IdentityClusters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusteredFace:
    """One face that was clustered, and where it came from."""

    source: str  # the image's path or URI
    face_id: int | None  # catalog id, when clustering the catalog
    box: BoundingBox
    main_face: bool  # the largest face of its image (the one `cluster --labels` scores against a photo's identity)
    label: str | None = None  # the catalog's label for it (its own; a bystander has none), if any


@dataclass(frozen=True)
class ClusteredFaces:
    """A clustering of faces: each face, the clustering, and its groups largest first (positions into faces)."""

    faces: list[ClusteredFace]
    clustering: Clustering

    @property
    def groups(self) -> list[list[int]]:
        return sorted(groups_of(self.clustering).values(), key=lambda members: (-len(members), members[0]))


class Clusters:
    def __init__(
        self,
        catalog: Catalog,
        store: ClusterStore,
        audit: AuditLog,
        *,
        analyzer: Callable[[], FaceAnalyzer],
        identities: Callable[[], IdentityClusters],
        thresholds: Callable[[], ClusteringThresholds],
        model_id: str,
        embedding_dim: int,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._audit = audit
        self._analyzer = analyzer
        self._identities = identities
        self.thresholds = thresholds
        self._model_id = model_id
        self._dim = embedding_dim

    def cluster(
        self,
        paths: Sequence[str | Path] = (),
        *,
        thresholds: ClusteringThresholds | None = None,
        run_id: int | None = None,
    ) -> ClusteredFaces:
        """Group faces into identities, conservatively. With paths, every face in those photos (analysed, not
        stored); with run_id, the faces that ingest run stored; otherwise every face in the catalog."""
        chosen = thresholds or self.thresholds()
        if paths and run_id is not None:
            raise InvalidRequestError("cluster either photos or the faces of an ingest run, not both")
        faces: list[ClusteredFace] = []
        vectors: list[np.ndarray] = []
        if paths:
            analyzer = self._analyzer()
            for item in iter_paths([Path(p) for p in paths]):
                image = analyzer.analyze(item.read(), item.uri)
                largest = max((f.detection.box.area for f in image.faces), default=0.0)
                for face in image.faces:
                    box = face.detection.box
                    faces.append(ClusteredFace(item.uri, None, box, box.area == largest))
                    vectors.append(face.embedding.vector)
        else:
            ids = self._catalog.face_ids(self._model_id) if run_id is None else self._run_face_ids(run_id)
            records = self._catalog.faces_by_id(ids.tolist())
            largest_by_asset: dict[int, float] = {}
            for record in records.values():
                largest_by_asset[record.asset_id] = max(largest_by_asset.get(record.asset_id, 0.0), record.box.area)
            stored_ids, stored = self._catalog.embeddings_by_id(ids.tolist(), self._model_id)
            for face_id, vector in zip(stored_ids.tolist(), stored, strict=True):
                record = records[face_id]
                main = record.box.area == largest_by_asset[record.asset_id]
                faces.append(ClusteredFace(record.asset_uri, face_id, record.box, main, record.label))
                vectors.append(vector)
        matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, self._dim), np.float32)
        return ClusteredFaces(faces, cluster(matrix, chosen))

    # -- saved clusters ---------------------------------------------------------------------------------------------

    def save(self, *, run_id: int | None = None, actor: str | None = None) -> ClusterUpdate:
        """Persist clusters: the first save clusters every face; later ones keep existing clusters (and their ids)
        and place only faces in no cluster yet. With run_id, only that run's faces are placed."""
        actor = actor or cli_actor()
        ids = self._run_face_ids(run_id) if run_id is not None else self._store.unclustered_face_ids(self._model_id)
        update = self._identities().update(
            ids.tolist(), actor, "cluster --save" + (f" --run {run_id}" if run_id else "")
        )
        self._audit.record(
            actor,
            AuditAction.CLUSTER_SAVE,
            f"model:{self._model_id}",
            run_id=run_id,
            faces_considered=update.faces_considered,
            faces_assigned=update.faces_assigned,
            clusters_created=len(update.clusters_created),
        )
        return update

    def place_new_faces(self, run_id: int) -> ClusterUpdate | None:
        """After an ingest, once clusters are saved: the run's new faces join them or start new ones."""
        if self._store.count_clusters(self._model_id) == 0:
            return None
        ids = self._catalog.face_ids_of_run(run_id, self._model_id)
        try:
            update = self._identities().update(ids.tolist(), f"ingest:run {run_id}", f"ingest run {run_id}")
        except (ConflictError, CatalogError) as exc:
            # The faces are stored either way; another process placing them at the same moment (or a catalog
            # hiccup) must not turn a finished ingest into a failure. The next `cluster --save` places what is left.
            log.warning("ingest run %d: new faces not placed in clusters: %s", run_id, exc)
            return None
        log.info(
            "clusters: %d new faces joined saved clusters, %d started new ones (%.2f s)",
            update.faces_assigned,
            len(update.clusters_created),
            update.seconds,
        )
        return update

    def saved(self) -> list[StoredCluster]:
        return self._store.clusters(self._model_id)

    def show(self, cluster_id: int) -> tuple[StoredCluster, list[ClusterEvent], dict[int, FaceRecord]]:
        """One saved cluster, its history and its faces' records."""
        found = self._store.cluster(cluster_id)
        if found is None:
            raise NotFoundError(f"no cluster {cluster_id}")
        return found, self._store.cluster_events(cluster_id), self._catalog.faces_by_id(list(found.face_ids))

    # The review verbs: a person's changes, each recorded as a cluster event and audited. From the web UI they are
    # made while browsing under a case and a purpose (context), which the audit entry names too.

    def merge(
        self, kept: int, absorbed: int, reason: str, *, actor: str | None = None, context: CaseContext | None = None
    ) -> ClusterEvent:
        """A person's merge of two clusters into kept (audited; the rules' evidence is kept whatever it says)."""
        actor = actor or cli_actor()
        event = self._identities().merge(kept, absorbed, actor, reason)
        self._audit_event(actor, AuditAction.CLUSTER_MERGE, event, context)
        return event

    def split(
        self,
        cluster_id: int,
        face_ids: Sequence[int],
        reason: str,
        *,
        actor: str | None = None,
        context: CaseContext | None = None,
    ) -> ClusterEvent:
        """A person's split: face_ids leave cluster_id for a new cluster (audited)."""
        actor = actor or cli_actor()
        event = self._identities().split(cluster_id, face_ids, actor, reason)
        self._audit_event(actor, AuditAction.CLUSTER_SPLIT, event, context)
        return event

    def rename(
        self,
        cluster_id: int,
        name: str | None,
        reason: str,
        *,
        actor: str | None = None,
        context: CaseContext | None = None,
    ) -> ClusterEvent:
        actor = actor or cli_actor()
        event = self._identities().rename(cluster_id, name, actor, reason)
        self._audit_event(actor, AuditAction.CLUSTER_RENAME, event, context)
        return event

    def hide(
        self,
        cluster_id: int,
        hidden: bool,
        reason: str,
        *,
        actor: str | None = None,
        context: CaseContext | None = None,
    ) -> ClusterEvent:
        """Leave a saved cluster out of the people view (hidden=True) or show it again; its faces, history and
        place in searches do not change."""
        actor = actor or cli_actor()
        event = self._identities().hide(cluster_id, hidden, actor, reason)
        self._audit_event(actor, AuditAction.CLUSTER_HIDE if hidden else AuditAction.CLUSTER_UNHIDE, event, context)
        return event

    def _audit_event(
        self, actor: str, action: AuditAction, event: ClusterEvent, context: CaseContext | None = None
    ) -> None:
        within = {} if context is None else {"case_id": context.case_id, "purpose": context.purpose}
        self._audit.record(
            actor,
            action,
            f"cluster:{event.cluster_id}",
            event_id=event.event_id,
            other_cluster_id=event.other_cluster_id,
            face_ids=list(event.face_ids),
            reason=event.reason,
            evidence=event.evidence,
            **within,
        )

    def _run_face_ids(self, run_id: int) -> IdArray:
        if run_id not in {run.run_id for run in self._catalog.runs()}:
            raise NotFoundError(f"no ingest run {run_id}")
        return self._catalog.face_ids_of_run(run_id, self._model_id)
