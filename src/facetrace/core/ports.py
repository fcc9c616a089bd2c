"""Ports: what the use cases need from the adapters. Adapters implement them; services receive them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    ApiKey,
    AuditEntry,
    AuditQuery,
    Case,
    CaseMember,
    CatalogStats,
    ChangeCounters,
    ClusterAssignment,
    ClusterEvent,
    DeletedFaces,
    ErasureReceipt,
    FaceRecord,
    FloatArray,
    MediaAsset,
    NewCluster,
    Review,
    RunRecord,
    SearchRecord,
    StoredCluster,
    StoredHit,
    SubjectChoice,
    User,
)
from facetrace.core.vocabulary import CaseStatus, ReviewDecision, Role, RunStatus

IdArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# seal(seq, at, prev_hash) -> the entry's hash; the store calls it inside the transaction that appends the entry.
AuditSeal = Callable[[int, datetime, str], str]


@dataclass(frozen=True)
class AuditDraft:
    """An audit entry the store appends in the same transaction as the row it records (one transaction for both):
    target(row id) names that row, sealer(target) seals the entry, recorded(entry) is called after the commit."""

    actor: str
    action: str
    details: dict[str, object]
    target: Callable[[int], str]
    sealer: Callable[[str], AuditSeal]
    recorded: Callable[[AuditEntry], None]


@runtime_checkable
class FaceAnalyzer(Protocol):
    """Decode, detect, assess, align and embed. Implemented in vision/."""

    @property
    def model_id(self) -> str: ...

    @property
    def embedding_dim(self) -> int: ...

    def analyze(self, data: bytes, source: str) -> AnalyzedImage:
        """Every face in an encoded image. Raises ImageDecodeError naming source for unreadable input."""
        ...

    def analyze_batch(self, items: Sequence[tuple[bytes, str]]) -> list[AnalyzedImage | Exception]:
        """Several images at once (embeddings batched); a failing image yields its exception in place."""
        ...


class DataGuard(Protocol):
    """Who may touch the gallery (catalog faces, index, thumbnails) at once; implemented by the engine's lock.

    reading() around searches (shared; it first catches up with changes other processes made); writing() around
    each write (exclusive, also across processes); session() around a long run whose batches each take writing().
    Never hold either while running a model.
    """

    def reading(self) -> AbstractContextManager[None]: ...

    def writing(self, purpose: str) -> AbstractContextManager[None]: ...

    def session(self, purpose: str) -> AbstractContextManager[None]: ...


class Unguarded:
    """The DataGuard of a service used on its own (a unit test, a one-off script): nothing else shares its data."""

    def reading(self) -> AbstractContextManager[None]:
        return nullcontext()

    def writing(self, purpose: str) -> AbstractContextManager[None]:
        return nullcontext()

    def session(self, purpose: str) -> AbstractContextManager[None]:
        return nullcontext()


class VectorIndex(Protocol):
    """Nearest-neighbour search over embeddings of one model. Derived from the catalog, rebuildable."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Insert or replace (idempotent upsert by id)."""
        ...

    def remove(self, ids: IdArray) -> int: ...

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        """Top-k by cosine similarity; returns (similarities, ids), shape (q, k); empty slots have id -1 and
        similarity -inf."""
        ...

    def ids(self) -> IdArray: ...

    def save(self) -> None:
        """Persist atomically (temp file then os.replace). A no-op for stores that persist on write."""
        ...

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for background work (FAISS: a structure switch) to finish; True when none is left running."""
        ...


# -- governance ports (implemented by catalog/governance_store.py) ---------------------------------------------------


class SuppressionCheck(Protocol):
    """Whether faces match an erased person's embedding: such faces are never stored or shown again."""

    def suppressed(self, vectors: FloatArray) -> BoolArray:
        """One flag per row of vectors (n, dim)."""
        ...

    def active(self) -> bool:
        """Whether anyone is erased: while nobody is, no face is suppressed and callers need not read vectors."""
        ...


class FaceEraser(Protocol):
    """The catalog side of erasure."""

    def face_ids_labelled(self, label: str) -> list[int]:
        """Faces carrying this label as their person's name (a labelled photo's subject; never its bystanders)."""
        ...

    def embeddings_by_id(self, ids: Sequence[int], model_id: str | None = None) -> tuple[IdArray, FloatArray]: ...

    def faces_by_id(self, face_ids: Sequence[int]) -> dict[int, FaceRecord]:
        """The faces an erasure would remove, as its preview lists them (provenance, label, thumbnail)."""
        ...

    def delete_faces(self, face_ids: Sequence[int], *, actor: str = "erasure", reason: str = "") -> DeletedFaces:
        """Delete these faces, and every asset left without faces, in one transaction; the faces leave their
        persisted clusters in it too (recorded with actor and reason; emptied clusters are deleted)."""
        ...


class RetentionStore(Protocol):
    """The catalog side of the purge job: what has outlived its retention, and deleting it."""

    def expired_face_ids(self, now: datetime, model_id: str) -> list[int]: ...

    def expired_asset_ids(self, now: datetime) -> list[int]: ...

    def delete_faces(self, face_ids: Sequence[int], *, actor: str = "erasure", reason: str = "") -> DeletedFaces:
        """As FaceEraser.delete_faces: the faces, and every asset left without faces, in one transaction."""
        ...

    def delete_faceless_assets(self, asset_ids: Sequence[int]) -> list[tuple[int, str]]:
        """Delete those of these assets without a face left; returns their (id, uri)."""
        ...


class UserStore(Protocol):
    def add_user(self, name: str, role: Role, password_hash: str | None = None) -> User: ...

    def user(self, name: str) -> User | None: ...

    def users(self) -> list[User]: ...

    def password_hash(self, name: str) -> str | None: ...

    def add_api_key(self, user_id: int, key_sha256: str, prefix: str) -> None: ...

    def user_by_key(self, key_sha256: str) -> User | None:
        """The active user owning this (unrevoked) key."""
        ...

    def deactivate_user(self, name: str) -> int:
        """Mark the user inactive and revoke all their keys; returns how many keys were revoked."""
        ...

    def set_password_hash(self, name: str, password_hash: str) -> None:
        """Store a new hash and end the user's web sessions issued before now."""
        ...

    def end_session(self, token_sha256: str, forget_before: datetime) -> None:
        """Record one web session as signed out; forget records older than forget_before (expired anyway)."""
        ...

    def session_ended(self, token_sha256: str) -> bool: ...

    def api_keys(self, user_id: int) -> list[ApiKey]:
        """The user's keys, oldest first, revoked ones included."""
        ...

    def revoke_api_key(self, user_id: int, key_id: int) -> bool:
        """Revoke one of the user's keys; False when it is not theirs or was revoked already."""
        ...


class AuditStore(Protocol):
    def append_audit(
        self, actor: str, action: str, target: str, details: dict[str, object], seal: AuditSeal
    ) -> AuditEntry:
        """Append one entry after the last, atomically with respect to other appenders."""
        ...

    def audit_entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        """Entries in seq order (as stored: a verifier must see edits, not hide them)."""
        ...

    def audit_length(self) -> int:
        """The newest entry's seq (0 for an empty log)."""
        ...

    def find_audit(
        self,
        query: AuditQuery,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[AuditEntry]:
        """The entries query selects with after_seq < seq < before_seq (None: no bound), newest first unless
        newest_first is False."""
        ...


class CaseStore(Protocol):
    def add_case(
        self, title: str, purpose: str, legal_basis: str, requires_independent_review: bool, created_by: str
    ) -> Case: ...

    def case(self, case_id: int) -> Case | None: ...

    def cases(self) -> list[Case]: ...

    def set_case_status(self, case_id: int, status: CaseStatus, expected: CaseStatus) -> bool: ...

    def add_case_member(self, case_id: int, user_name: str, added_by: str) -> CaseMember | None:
        """Add a member; None if they are one already."""
        ...

    def remove_case_member(self, case_id: int, user_name: str) -> bool:
        """False if they were not a member."""
        ...

    def case_members(self, case_id: int) -> list[CaseMember]:
        """The case's members by name (not its owner)."""
        ...

    def cases_of(self, user_name: str) -> list[Case]:
        """The cases the user owns or is a member of, in id order."""
        ...

    def add_search(
        self,
        case_id: int,
        user: str,
        purpose: str,
        probe_sha256: str,
        probe_name: str,
        model_id: str,
        probe_embedding: FloatArray | None,
        hits: Sequence[StoredHit],
        audit: AuditDraft | None = None,
    ) -> SearchRecord:
        """Store a search and its hits; with audit, its audit entry too, in the same transaction."""
        ...

    def search(self, search_id: int) -> SearchRecord | None: ...

    def searches(self, case_id: int | None = None, *, with_hits: bool = True) -> list[SearchRecord]:
        """Searches in id order; with_hits=False leaves each record's hits empty (cheaper, for probe-only work)."""
        ...

    def add_review(
        self, search_id: int, face_id: int, reviewer: str, decision: ReviewDecision, note: str
    ) -> Review: ...

    def reviews(self, search_id: int) -> list[Review]: ...

    def awaiting_review(self, case_ids: Sequence[int]) -> list[SearchRecord]:
        """The searches of these cases that have candidates nobody has reviewed yet, in id order, each record
        holding only those candidates."""
        ...

    def awaiting_review_counts(self, case_ids: Sequence[int]) -> dict[tuple[int, str], int]:
        """How many candidates (each face once per search) nobody has reviewed yet in these cases, by case and by
        the user who ran the search."""
        ...


class SuppressionStore(Protocol):
    def change_counters(self) -> ChangeCounters:
        """The catalog's change counters; `suppressions` moves whenever add_suppressions writes."""
        ...

    def add_suppressions(self, model_id: str, vectors: FloatArray, receipt_id: str) -> int: ...

    def suppressed_vectors(self, model_id: str) -> FloatArray:
        """Every suppressed embedding of one model, (n, dim); (0, 0) when there is none."""
        ...

    def add_receipt(self, receipt: ErasureReceipt) -> None: ...

    def receipt(self, receipt_id: str) -> ErasureReceipt | None: ...

    def receipts(self, limit: int) -> list[ErasureReceipt]:
        """The newest receipts first."""
        ...


class GovernanceStore(UserStore, AuditStore, CaseStore, SuppressionStore, Protocol):
    """Everything governance keeps, in the catalog's database."""


class ClusterStore(Protocol):
    """Persisted clusters: groups of faces taken to be one person, and every change to them (catalog/)."""

    def count_clusters(self, model_id: str) -> int: ...

    def clusters(self, model_id: str) -> list[StoredCluster]:
        """Every cluster of one model, largest first."""
        ...

    def cluster(self, cluster_id: int) -> StoredCluster | None: ...

    def cluster_members(self, cluster_ids: Sequence[int]) -> dict[int, list[int]]:
        """Face ids of each of these clusters; unknown clusters are left out."""
        ...

    def clusters_of_faces(self, face_ids: Sequence[int]) -> dict[int, int]:
        """face id -> cluster id for the faces among face_ids that belong to a cluster."""
        ...

    def unclustered_face_ids(self, model_id: str) -> IdArray: ...

    def cluster_events(self, cluster_id: int | None = None) -> list[ClusterEvent]: ...

    def create_clusters(self, model_id: str, groups: Sequence[NewCluster], actor: str, reason: str) -> list[int]:
        """One new cluster per group, with 'create' and 'merge' events, in one transaction."""
        ...

    def assign_faces(self, assignments: Sequence[ClusterAssignment], actor: str, reason: str) -> int:
        """Faces join existing clusters, one 'assign' event each."""
        ...

    def merge_clusters(
        self, kept: int, absorbed: int, actor: str, reason: str, evidence: dict[str, object]
    ) -> ClusterEvent: ...

    def split_cluster(
        self, cluster_id: int, face_ids: Sequence[int], actor: str, reason: str, evidence: dict[str, object]
    ) -> ClusterEvent: ...

    def rename_cluster(self, cluster_id: int, name: str | None, actor: str, reason: str) -> ClusterEvent: ...

    def set_cluster_hidden(self, cluster_id: int, hidden: bool, actor: str, reason: str) -> ClusterEvent:
        """Hide a cluster from the people view, or show it again ('hide' / 'unhide' event)."""
        ...


class Catalog(FaceEraser, RetentionStore, Protocol):
    """The source of truth: assets, faces, embeddings, provenance, runs. Implemented in catalog/.

    It holds the governance and cluster tables too, and counts its changes (change_counters) so that a process can
    tell cheaply whether another one has changed the faces or suppressions it derives state from.
    """

    def start_run(self, description: str, model_id: str) -> int: ...

    def finish_run(self, run_id: int, status: RunStatus, stats: dict[str, int]) -> None: ...

    def known_sha256(self, sha256s: Sequence[str]) -> set[str]:
        """Which of these content hashes are already in the catalog."""
        ...

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
        """Store an asset and its faces (with their thumbnail paths, one per face) in one transaction;
        returns (asset_id, face_ids). A known sha256 returns the existing asset id and no face ids.
        A labelled asset's label goes to its subject face only (subject, else core/subject.py's rule)."""
        ...

    def set_thumbnail_paths(self, paths: dict[int, str]) -> None: ...

    def record_error(self, run_id: int, uri: str, message: str) -> None: ...

    def faces_by_id(self, face_ids: Sequence[int]) -> dict[int, FaceRecord]: ...

    def iter_embeddings(self, model_id: str, batch_size: int = 10_000) -> Iterator[tuple[IdArray, FloatArray]]:
        """All stored embeddings of one model, in batches of (face_ids, vectors)."""
        ...

    def count_faces(self, model_id: str | None = None) -> int: ...

    def face_ids(self, model_id: str, *, after: int | None = None) -> IdArray:
        """Sorted ids of every stored face of one model (to reconcile with an index); with after, those above it."""
        ...

    def face_ids_of_run(self, run_id: int, model_id: str | None = None) -> IdArray: ...

    def change_counters(self) -> ChangeCounters: ...

    def runs(self, status: RunStatus | None = None) -> list[RunRecord]: ...

    def labels(self, model_id: str, offset: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """A page of (label, face count), and how many labels there are."""
        ...

    def stats(self) -> CatalogStats: ...

    def governance_store(self) -> GovernanceStore: ...

    def cluster_store(self) -> ClusterStore: ...

    def close(self) -> None: ...
