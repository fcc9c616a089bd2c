"""Value types. One convention, written once:

- boxes are (x1, y1, x2, y2) in float pixels of the decoded, EXIF-upright image;
- landmarks are five (x, y) points in the same pixels, in the order: subject's right eye (image left),
  left eye, nose tip, right mouth corner, left mouth corner (the ArcFace / InsightFace order);
- similarity is cosine similarity of L2-normalised embeddings, in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from facetrace.core.vocabulary import (
    CaseStatus,
    ClusterAssignedBy,
    ClusterEventKind,
    ErasureMatch,
    ErasureMode,
    PhotoRole,
    ReviewDecision,
    Role,
    RunStatus,
    SameImage,
    SubjectAttribution,
    WithheldReason,
)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BoundingBox:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def iou(self, other: BoundingBox) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found by a detector."""

    box: BoundingBox
    landmarks: FloatArray  # shape (5, 2), see the module docstring for the order
    score: float  # detector confidence in [0, 1]


@dataclass(frozen=True)
class FaceQuality:
    """How much a comparison with this face can be trusted, and why.

    score is in [0, 1] (1 = large, sharp, frontal, confidently detected). flags name the reasons a face is weak
    (e.g. "small", "blurry", "profile", "low_detection_score"); a face with flags is reported as weak evidence.
    """

    score: float
    face_size_px: float
    sharpness: float
    detection_score: float
    yaw_deg: float
    roll_deg: float
    flags: tuple[str, ...] = ()

    @property
    def is_weak(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True, eq=False)
class Embedding:
    """An L2-normalised face embedding tagged with the model pack that made it."""

    model_id: str
    vector: FloatArray  # shape (dim,), float32, unit length


@dataclass(frozen=True, eq=False)
class AnalyzedFace:
    """A detected face with its quality, embedding and a small JPEG crop for display."""

    detection: Detection
    quality: FaceQuality
    embedding: Embedding
    thumbnail_jpeg: bytes = b""


@dataclass(frozen=True, eq=False)
class AnalyzedImage:
    """Everything the vision layer learned from one image."""

    source: str
    width: int
    height: int
    faces: tuple[AnalyzedFace, ...]


@dataclass(frozen=True)
class MediaAsset:
    """One image and where it came from (provenance)."""

    sha256: str
    uri: str  # file path or URL of the image itself
    source_page: str | None = None  # page that showed or linked the image
    captured_at: datetime | None = None
    label: str | None = None  # a person's name or id supplied by the operator
    source_name: str | None = None  # the collection the asset came from
    legal_basis: str | None = None  # why the operator may hold it
    extra: dict[str, str] = field(default_factory=dict)
    retain_until: datetime | None = None  # the purge job deletes the asset and its faces after this (None: keep)


@dataclass(frozen=True)
class SubjectChoice:
    """Which of a labelled photo's faces its label names (its subject), and how that was decided (core/subject.py).

    face is a position in the photo's faces (detector order), or None when no face gets the label.
    """

    face: int | None
    attribution: SubjectAttribution


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """A face as stored in the catalog, joined with its asset's provenance.

    label is the face's own person (the subject of a labelled photo carries the photo's label); photo_label is what
    the photo's label said, shown on every face of the photo with photo_role (None for an unlabelled photo), so that
    a bystander reads as "bystander in a photo of <photo_label>" and never as that person.
    """

    face_id: int
    asset_id: int
    box: BoundingBox
    landmarks: FloatArray
    detection_score: float
    quality_score: float
    quality_flags: tuple[str, ...]
    model_id: str
    asset_uri: str
    asset_sha256: str
    source_page: str | None
    captured_at: datetime | None
    ingested_at: datetime | None
    label: str | None
    thumbnail_path: str | None = None
    legal_basis: str | None = None  # the law, licence or consent the image was collected under, if stated
    retain_until: datetime | None = None  # when the purge job deletes it (None: kept until erased)
    photo_label: str | None = None  # the label of the photo the face is in (provenance, not the face's name)
    photo_role: PhotoRole | None = None  # the face's part in a labelled photo

    @property
    def shown_as(self) -> str | None:
        """What a face is shown as: its label, else its part in a labelled photo ("bystander in a photo of X")."""
        if self.label is not None:
            return self.label
        if self.photo_label is None or self.photo_role is None:
            return None
        if self.photo_role is PhotoRole.UNATTRIBUTED:
            return f"unattributed face in a photo of {self.photo_label} (subject ambiguous)"
        return f"bystander in a photo of {self.photo_label}"


class Strength(StrEnum):
    """How far a hit is a lead, decided from its rates (thresholds in facetrace.search.calibration).

    UNCALIBRATED: the model pack has no impostor table, so the score has no measured rate and no strength.
    """

    STRONG = "strong"
    MODERATE = "moderate"
    WEAK = "weak"
    UNCALIBRATED = "uncalibrated"


@dataclass(frozen=True)
class Evidence:
    """What a similarity score means for this gallery and this probe: never a bare percentage.

    false_match_rate: chance that one comparison with a stranger scores at least this high (FMR(s)).
    gallery_false_match_probability: chance that at least one stranger in a gallery of gallery_size faces
    scores at least this high, 1 - (1 - FMR(s))^N.
    Both are NaN when the pack is uncalibrated. The sentence a reviewer reads is `verdict`, rendered from these
    fields by facetrace.core.evidence.describe (the one place it is worded).
    """

    similarity: float
    strength: Strength
    false_match_rate: float
    gallery_size: int
    gallery_false_match_probability: float
    probe_quality: float  # NaN when unknown (a case hit stored before it was kept)
    weak_probe: bool
    weak_candidate: bool
    # True when the similarity lies beyond the calibration's resolution: false_match_rate is then an upper bound.
    false_match_rate_is_upper_bound: bool = False
    # The impostor table the rate was read from (a QUALITY_CONDITIONS entry): "clean" unless the pair has a flagged
    # face and the table measured on such pairs gives a higher (more pessimistic) rate than the clean one.
    quality_condition: QualityCondition = "clean"
    # The pack has a table of its own for this pair's condition (pair_condition, not clean), compared with the clean
    # one: False for a flagged pair means its rate comes from good photos only and may understate the risk.
    condition_table_measured: bool = False

    @property
    def calibrated(self) -> bool:
        return self.strength is not Strength.UNCALIBRATED

    @property
    def pair_condition(self) -> QualityCondition:
        """The pair's own quality condition: how many of its two faces carry a quality flag."""
        return quality_condition(self.weak_probe, self.weak_candidate)

    @property
    def verdict(self) -> str:
        """The sentence a reviewer reads, rendered from the fields (facetrace.core.evidence.describe)."""
        from facetrace.core.evidence import describe  # here: evidence.py imports this module

        return describe(self)

    @property
    def expected_strangers_at_or_above(self) -> float:
        return self.false_match_rate * self.gallery_size


# Candidates a search returns per probe face: top_k is 1..MAX_TOP_K wherever it is given.
MAX_TOP_K: Final = 1000


@dataclass(frozen=True, eq=False)
class SearchHit:
    rank: int
    similarity: float
    face: FaceRecord
    evidence: Evidence
    # The probe's own photo (same sha256) or likely a copy of it: not independent evidence.
    same_image: SameImage = SameImage.NONE


@dataclass(frozen=True)
class FusionCheck:
    """Fusion's check that its photos show one person: a pair of faces belongs together at or above threshold (the
    pack's similarity at false_match_rate); odd_sources are the photos outside the largest such group. A fusion with
    odd photos is refused unless the caller allowed mixed photos; then the result carries this check."""

    threshold: float
    false_match_rate: float
    lowest_similarity: float  # of every pair of the fused faces
    odd_sources: tuple[str, ...] = ()

    @property
    def one_person(self) -> bool:
        return not self.odd_sources


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """The hits for one probe face (or one fused template of several photos)."""

    probe_source: str
    probe_face_index: int | None  # None for a fused template
    probe_box: BoundingBox | None
    probe_quality: FaceQuality | None
    hits: tuple[SearchHit, ...]
    # Candidates ranked among these hits that were not shown, by reason; the next candidates took their places.
    withheld: Mapping[WithheldReason, int] = field(default_factory=dict)
    # A fused template's one-person check (None for one photo's face, or a pack without calibration).
    fusion: FusionCheck | None = None
    # The faces chosen in each fused photo (0-based, detector order), in the order of probe_source's photos.
    fused_face_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProbeOutcome:
    """What became of one probe photo of a multi-probe search: its results, or why it could not be searched (error
    code as the API and the command line name it, e.g. no_face, image_unreadable, face_selection)."""

    probe_source: str
    results: tuple[ProbeResult, ...] = ()
    error_code: str | None = None
    error_message: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


@dataclass(frozen=True)
class IngestSummary:
    run_id: int
    images_seen: int
    images_added: int
    images_skipped: int
    faces_added: int
    errors: int
    error_messages: tuple[str, ...] = ()
    # What the sources left out before analysis, by reason ("opted_out", WARC "warc_revisits_skipped", ...).
    source_counts: dict[str, int] = field(default_factory=dict)
    # Labelled photos whose label went to no face: several faces and none dominant, or the named face not found.
    unattributed_labels: int = 0


@dataclass(frozen=True)
class ScoreCalibration:
    """A model's impostor (different-person) score distribution, as a table of false-match rates.

    similarities ascend; false_match_rates[i] is the share of impostor comparisons scoring >= similarities[i]
    (so it descends). Measured on a public benchmark (measured_on says which, with how many impostor pairs), it lets
    a hit at similarity s be reported as FMR(s) instead of a bare percentage.
    """

    model_id: str
    similarities: tuple[float, ...]
    false_match_rates: tuple[float, ...]
    impostor_pairs: int
    measured_on: str
    # Optional tables measured on impostor pairs in which one face (ONE_FLAGGED) or both (BOTH_FLAGGED) carry a
    # quality flag, keyed by that condition; their own `conditioned` is empty. Older calibration files have none.
    conditioned: tuple[tuple[str, ScoreCalibration], ...] = ()

    def table(self, condition: str) -> ScoreCalibration | None:
        """The table for a QUALITY_CONDITIONS entry: self for CLEAN, a conditioned table, or None if not measured."""
        if condition == CLEAN_CONDITION:
            return self
        return dict(self.conditioned).get(condition)


# Which impostor table a comparison's rate comes from: how many of its two faces carry a quality flag.
QualityCondition = Literal["clean", "one_flagged", "both_flagged"]
CLEAN_CONDITION: Final = "clean"
ONE_FLAGGED: Final = "one_flagged"
BOTH_FLAGGED: Final = "both_flagged"
QUALITY_CONDITIONS: tuple[QualityCondition, ...] = (CLEAN_CONDITION, ONE_FLAGGED, BOTH_FLAGGED)


def quality_condition(probe_flagged: bool, candidate_flagged: bool) -> QualityCondition:
    """The condition of a pair of faces by how many of them carry a quality flag."""
    return QUALITY_CONDITIONS[int(probe_flagged) + int(candidate_flagged)]


# -- governance: who may search, why, what they did, and what was erased ---------------------------------------------


@dataclass(frozen=True)
class User:
    user_id: int
    name: str
    role: Role
    created_at: datetime
    active: bool = True
    sessions_valid_after: datetime | None = None  # web sessions issued earlier are refused


@dataclass(frozen=True)
class ApiKey:
    """One of a user's API keys as listings show it: never the key, only its first characters."""

    key_id: int
    user_id: int
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class AuditEntry:
    """One row of the tamper-evident audit log. hash = sha256(prev_hash + canonical JSON of the other fields but
    prev_hash and hash); see facetrace.governance.audit."""

    seq: int
    at: datetime
    actor: str
    action: str  # an AuditAction when written; read back as stored, since a verifier must read an edited row too
    target: str
    details: dict[str, object]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to list: each field set narrows the list (None or empty: any).

    case_id matches an entry about the case (target `case:N`) or made within it (details' case_id, as searches,
    reviews and the views of a case's faces record it). since and until bound `at`: since <= at < until."""

    actor: str | None = None
    actions: tuple[str, ...] = ()
    case_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def described(self) -> dict[str, object]:
        """The filter as recorded with what was done under it (the set fields only; times in ISO 8601)."""
        shown: dict[str, object] = {}
        if self.actor is not None:
            shown["actor"] = self.actor
        if self.actions:
            shown["actions"] = list(self.actions)
        if self.case_id is not None:
            shown["case_id"] = self.case_id
        if self.since is not None:
            shown["since"] = self.since.isoformat()
        if self.until is not None:
            shown["until"] = self.until.isoformat()
        return shown


@dataclass(frozen=True)
class Case:
    """An investigation: every search belongs to one and states why it is done."""

    case_id: int
    title: str
    purpose: str
    legal_basis: str
    requires_independent_review: bool  # the reviewer of a candidate must not be the user who searched
    created_by: str  # its owner
    created_at: datetime
    status: CaseStatus = CaseStatus.OPEN


@dataclass(frozen=True)
class CaseMember:
    """A user an admin added to a case: they work in it as their role allows, like its owner (created_by)."""

    case_id: int
    user_name: str
    added_by: str
    added_at: datetime


@dataclass(frozen=True)
class CaseContext:
    """A case and a purpose a look at the gallery is made under (engine.gallery's verbs take one; CaseService
    hands them out after checking the user may act in the case), recorded with the look in the audit log. case is
    None only for an admin's list of people (erasure work belongs to no case)."""

    case: Case | None
    purpose: str

    @property
    def case_id(self) -> int | None:
        return None if self.case is None else self.case.case_id


@dataclass(frozen=True)
class StoredHit:
    """A search hit as kept with its case: enough to show later what the investigator saw."""

    probe_face_index: int | None
    rank: int
    face_id: int
    evidence: Evidence  # as computed at search time: the verdict shown then is rendered from it again
    same_image: SameImage = SameImage.NONE  # the probe's own photo or a copy of it (NONE in hits stored before 0010)

    @property
    def similarity(self) -> float:
        return self.evidence.similarity


@dataclass(frozen=True, eq=False)
class SearchRecord:
    search_id: int
    case_id: int
    user: str
    purpose: str
    probe_sha256: str
    probe_name: str
    at: datetime
    model_id: str
    probe_embedding: FloatArray | None  # the main probe face, to spot the same person searched again
    hits: tuple[StoredHit, ...] = ()


@dataclass(frozen=True)
class Review:
    review_id: int
    search_id: int
    face_id: int
    reviewer: str
    decision: ReviewDecision
    note: str
    at: datetime


@dataclass(frozen=True, eq=False)
class DeletedFaces:
    """What the catalog removed for an erasure: ids, and what the caller must clean up outside the catalog."""

    face_ids: tuple[int, ...]
    asset_ids: tuple[int, ...]  # assets deleted because none of their faces remained
    asset_uris: tuple[str, ...]
    thumbnail_paths: tuple[str, ...]  # relative to the thumbnails folder
    model_ids: tuple[str, ...]  # one per face id
    embeddings: FloatArray  # (n, dim), one per face id (all faces must be of one model)
    cluster_ids: tuple[int, ...] = ()  # persisted clusters the faces left
    clusters_deleted: tuple[int, ...] = ()  # those of them left without faces, and so deleted


@dataclass(frozen=True)
class ErasureReceipt:
    """What the person who asked for erasure gets back: what was removed, when, and where the audit log says so."""

    receipt_id: str
    at: datetime
    requested_by: str
    mode: ErasureMode
    subject: str
    reason: str
    face_ids: tuple[int, ...]
    asset_ids: tuple[int, ...]
    asset_uris: tuple[str, ...]
    thumbnails_removed: int
    suppressed_embeddings: int
    audit_seq: int


@dataclass(frozen=True)
class ErasureCandidate:
    """A face an erasure would remove, and why it is on the list: shown before anything is deleted."""

    face_id: int
    asset_id: int
    asset_uri: str
    label: str | None
    found_by: ErasureMatch
    similarity: float | None = None  # to the requester's face (erasure by photo), else None
    linked_to: int | None = None  # LINKED: the face on the list it matched, at linked_similarity
    linked_similarity: float | None = None
    thumbnail_path: str | None = None  # relative to the thumbnails folder


@dataclass(frozen=True, eq=False)
class ErasurePreview:
    """What an erasure request would remove, computed and changing nothing; confirming it erases exactly these faces
    (or those of them the admin keeps ticked). The similarities are the thresholds the search used (None: none)."""

    mode: ErasureMode
    subject: str
    candidates: tuple[ErasureCandidate, ...]
    min_similarity: float | None = None  # a gallery face at or above it to the requester's face is listed
    linked_min_similarity: float | None = None  # ... and one at or above it to a face already listed (one step)
    false_match_rate: float | None = None  # the rates of the pack's calibration those similarities stand for
    linked_false_match_rate: float | None = None
    requester_face_index: int | None = None  # the requester's face in their photo (0-based, detector order)
    requester_faces: int = 0  # faces found in the requester's photo; the others are bystanders, left alone
    requester_box: BoundingBox | None = None
    requester_embedding: FloatArray | None = None  # suppressed on confirmation with the erased faces; never shown

    @property
    def face_ids(self) -> tuple[int, ...]:
        return tuple(candidate.face_id for candidate in self.candidates)


# -- persisted clusters: unknown faces grouped into identities, and every change to a group -------------------------


@dataclass(frozen=True)
class StoredCluster:
    """A persisted cluster: a group of faces taken to be one (possibly unnamed) person."""

    cluster_id: int
    model_id: str
    name: str | None  # a reviewer's confirmed label, if any
    created_at: datetime
    updated_at: datetime
    face_ids: tuple[int, ...]  # ascending
    hidden: bool = False  # left out of the people view by default (hidden by a reviewer or admin)


@dataclass(frozen=True)
class NewCluster:
    """A cluster to create: its faces, how they were grouped, and the merges that made it (as event evidence)."""

    face_ids: tuple[int, ...]
    assigned_by: ClusterAssignedBy
    evidence: dict[str, object] = field(default_factory=dict)
    merges: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True)
class ClusterAssignment:
    """One face joining an existing cluster, with the similarities that justified it."""

    face_id: int
    cluster_id: int
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterEvent:
    """One recorded change to a cluster. other_cluster_id is the absorbed cluster of a merge or the new cluster of
    a split; face_ids are the faces the change moved."""

    event_id: int
    cluster_id: int
    kind: ClusterEventKind
    actor: str
    reason: str
    face_ids: tuple[int, ...]
    other_cluster_id: int | None
    evidence: dict[str, object]
    at: datetime


@dataclass(frozen=True)
class ChangeCounters:
    """How often the catalog's faces and suppressions have changed (by any process); compared, never interpreted.

    A process that holds derived state (an in-memory index, a suppression list) reads these to learn cheaply whether
    another process has changed what that state derives from.
    """

    faces_added: int
    faces_removed: int
    suppressions: int


@dataclass(frozen=True)
class RunRecord:
    """One ingest run as stored."""

    run_id: int
    status: RunStatus
    description: str
    model_id: str
    started_at: datetime
    finished_at: datetime | None
    stats: Mapping[str, int] = field(default_factory=dict)
    host: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class IngestErrorRecord:
    """An input an ingest run could not use, and why."""

    run_id: int | None
    uri: str
    message: str
    at: datetime


@dataclass(frozen=True)
class CatalogStats:
    """What the catalog holds, for `facetrace status` and health checks."""

    assets: int
    faces_by_model: Mapping[str, int]
    runs_by_status: Mapping[RunStatus, int]
    errors: int
    people: int
    # Labelled photos whose label went to no face (ambiguous subject, or the manifest's face not found).
    unattributed_labels: int = 0

    @property
    def faces(self) -> int:
        return sum(self.faces_by_model.values())
