"""Clusters kept as identities: saving a clustering, placing new faces incrementally, and people's merges and splits.

Faces already in a cluster never move unless a person merges or splits: re-running keeps every cluster id stable.
A new face joins the existing cluster it would merge with under the batch rules (search.clustering.best_cluster).
The candidates come from the vector index's nearest neighbours of the face, so the cost of placing a face grows
with the size of the few clusters near it, not with the catalog. Faces that join no cluster are clustered among
themselves and start new clusters. Every change is stored with its evidence (cluster_events).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from facetrace.core.errors import InvalidRequestError, NotFoundError
from facetrace.core.limits import MAX_LABEL, MAX_TEXT, bounded
from facetrace.core.ports import Catalog, ClusterStore, DataGuard, IdArray, Unguarded, VectorIndex
from facetrace.core.types import ClusterAssignment, ClusterEvent, FloatArray, NewCluster
from facetrace.core.vocabulary import ClusterAssignedBy
from facetrace.search.clustering import (
    ClusteringThresholds,
    best_cluster,
    cluster,
    cross_evidence,
    groups_of,
    rules_allow,
)


@dataclass(frozen=True)
class ClusterUpdate:
    """What one save or incremental pass did."""

    faces_considered: int  # faces in no cluster when the pass began
    faces_assigned: int  # of those, how many joined an existing cluster
    clusters_created: tuple[int, ...]  # new clusters made of the rest (singletons included)
    seconds: float


class IdentityClusters:
    """The persisted clusters of one model."""

    def __init__(
        self,
        store: ClusterStore,
        catalog: Catalog,
        index: VectorIndex,
        model_id: str,
        thresholds: ClusteringThresholds,
        guard: DataGuard | None = None,
    ) -> None:
        self._store = store
        self._guard = guard or Unguarded()
        self._catalog = catalog
        self._index = index
        self._model_id = model_id
        self.thresholds = thresholds

    def update(self, face_ids: Sequence[int], actor: str, reason: str) -> ClusterUpdate:
        """Place the faces among face_ids that are in no cluster: each joins an existing cluster if the rules allow,
        the rest are clustered among themselves into new clusters."""
        started = time.perf_counter()
        placed = self._store.clusters_of_faces(list(face_ids))
        ids, vectors = self._catalog.embeddings_by_id([f for f in face_ids if int(f) not in placed], self._model_id)
        assignments: list[ClusterAssignment] = []
        if ids.size and self._store.count_clusters(self._model_id):
            assignments = self._assignments(ids, vectors)
        if assignments:
            self._store.assign_faces(assignments, actor, reason)
        joined = {a.face_id for a in assignments}
        rest = np.asarray([face_id not in joined for face_id in ids.tolist()], dtype=bool)
        created = self._create(ids[rest], vectors[rest], actor, reason) if rest.any() else []
        return ClusterUpdate(int(ids.size), len(assignments), tuple(created), time.perf_counter() - started)

    def merge(self, kept: int, absorbed: int, actor: str, reason: str) -> ClusterEvent:
        """A person's merge: allowed even where the rules would not merge, with the rules' evidence recorded."""
        reason = _reason(reason)
        members = self._members([kept, absorbed])
        evidence = self._evidence(members[kept], members[absorbed])
        return self._store.merge_clusters(kept, absorbed, actor, reason, evidence)

    def split(self, cluster_id: int, face_ids: Sequence[int], actor: str, reason: str) -> ClusterEvent:
        """A person's split: face_ids leave cluster_id for a new cluster; the similarity across the cut is kept."""
        reason = _reason(reason)
        members = self._members([cluster_id])[cluster_id]
        wanted = {int(face_id) for face_id in face_ids}
        strangers = sorted(wanted - set(members))
        if strangers:
            raise InvalidRequestError(f"faces {', '.join(map(str, strangers))} are not in cluster {cluster_id}")
        rest = [face_id for face_id in members if face_id not in wanted]
        evidence = self._evidence(sorted(wanted), rest) if rest else {}
        return self._store.split_cluster(cluster_id, sorted(wanted), actor, reason, evidence)

    def rename(self, cluster_id: int, name: str | None, actor: str, reason: str) -> ClusterEvent:
        named = None if name is None else bounded(name.strip(), "a person's name", MAX_LABEL)
        return self._store.rename_cluster(cluster_id, named, actor, _reason(reason))

    def hide(self, cluster_id: int, hidden: bool, actor: str, reason: str) -> ClusterEvent:
        return self._store.set_cluster_hidden(cluster_id, hidden, actor, _reason(reason))

    def _members(self, cluster_ids: Sequence[int]) -> dict[int, list[int]]:
        members = self._store.cluster_members(cluster_ids)
        for cluster_id in cluster_ids:
            if cluster_id not in members:
                raise NotFoundError(f"no cluster {cluster_id}")
        return members

    def _evidence(self, a: Sequence[int], b: Sequence[int]) -> dict[str, object]:
        _, first = self._catalog.embeddings_by_id(list(a), self._model_id)
        _, second = self._catalog.embeddings_by_id(list(b), self._model_id)
        if first.shape[0] == 0 or second.shape[0] == 0:
            return {}
        evidence = cross_evidence(first, second)
        return {
            **evidence,
            "rules_would_merge": rules_allow(evidence, self.thresholds),
            "thresholds": asdict(self.thresholds),
        }

    def _assignments(self, ids: IdArray, vectors: FloatArray) -> list[ClusterAssignment]:
        """Each face's nearest neighbours in the index name its candidate clusters; the rules pick among them."""
        with self._guard.reading():
            k = min(self.thresholds.neighbours + 1, len(self._index))
            if k == 0:
                return []
            sims, neighbours = self._index.search(vectors, k)
        close = (sims >= self.thresholds.min_edge_similarity) & (neighbours >= 0)
        cluster_of = self._store.clusters_of_faces(np.unique(neighbours[close]).tolist())
        candidates_of = [
            {cluster_of[int(f)] for f in row_ids[row_close].tolist() if int(f) in cluster_of}
            for row_ids, row_close in zip(neighbours, close, strict=True)
        ]
        wanted = sorted(set().union(*candidates_of)) if candidates_of else []
        if not wanted:
            return []
        members = self._store.cluster_members(wanted)
        member_ids, member_vectors = self._catalog.embeddings_by_id(
            [face_id for cluster_id in wanted for face_id in members.get(cluster_id, [])], self._model_id
        )
        row_of = {face_id: row for row, face_id in enumerate(member_ids.tolist())}
        by_cluster = {
            cluster_id: member_vectors[[row_of[f] for f in members.get(cluster_id, []) if f in row_of]]
            for cluster_id in wanted
        }
        assignments: list[ClusterAssignment] = []
        for face_id, vector, candidates in zip(ids.tolist(), vectors, candidates_of, strict=True):
            found = best_cluster(vector, {c: by_cluster[c] for c in candidates}, self.thresholds)
            if found is not None:
                cluster_id, evidence = found
                details: dict[str, object] = {**evidence, "members": int(by_cluster[cluster_id].shape[0])}
                assignments.append(ClusterAssignment(int(face_id), cluster_id, details))
        return assignments

    def _create(self, ids: IdArray, vectors: FloatArray, actor: str, reason: str) -> list[int]:
        result = cluster(vectors, self.thresholds)
        groups = groups_of(result)
        merges_of: dict[int, list[dict[str, object]]] = {}
        for merge in result.merges:
            merges_of.setdefault(int(result.labels[merge.kept]), []).append(
                {
                    "kept_face_id": int(ids[merge.kept]),
                    "absorbed_face_id": int(ids[merge.absorbed]),
                    "edge_similarity": round(merge.edge_similarity, 6),
                    "average_similarity": round(merge.average_similarity, 6),
                    "min_similarity": round(merge.min_similarity, 6),
                }
            )
        thresholds = asdict(self.thresholds)
        drafts = [
            NewCluster(
                face_ids=tuple(int(ids[p]) for p in positions),
                assigned_by=ClusterAssignedBy.BATCH,
                evidence={"thresholds": thresholds},
                merges=tuple(merges_of.get(label, ())),
            )
            for label, positions in groups.items()
        ]
        return self._store.create_clusters(self._model_id, drafts, actor, reason)


def _reason(reason: str) -> str:
    stripped = reason.strip()
    if not stripped:
        raise InvalidRequestError("a merge, split, rename or hide states its reason")
    return bounded(stripped, "a reason", MAX_TEXT)
