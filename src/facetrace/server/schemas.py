"""Request and response bodies: pydantic models that document the API (OpenAPI at /docs), built from core types.

A response model whose fields are the attributes of what a use case returns (a core type, an issued key, a chain
report, an ingest job...: same names, or one computed by its validator) subclasses FromCore and is made with
Model.model_validate(obj). The hit and evidence models keep their
of() constructors, which read the stored verdict and turn non-finite rates into null.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from facetrace.core.evidence import describe, detail
from facetrace.core.limits import (
    MAX_CATALOG_ID,
    MAX_LABEL,
    MAX_NOTE,
    MAX_PASSWORD,
    MAX_TEXT,
    MAX_TITLE,
)
from facetrace.core.types import (
    Evidence,
    ProbeResult,
    QualityCondition,
    Review,
    SearchHit,
    SearchRecord,
    StoredHit,
    Strength,
)
from facetrace.core.vocabulary import (
    CaseStatus,
    ErasureMatch,
    ErasureMode,
    JobKind,
    JobStatus,
    MinStrength,
    PhotoRole,
    ReviewDecision,
    Role,
    SameImage,
    WithheldReason,
)
from facetrace.search.service import Comparison

# Catalog ids are signed 64-bit integers: a larger number names nothing, and SQLite cannot even bind it (a 500
# schemathesis found), so the API refuses it with a 422 like any other invalid input.
MAX_ID = MAX_CATALOG_ID
CatalogId = Annotated[int, Field(ge=0, le=MAX_ID)]


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: an unknown rate (uncalibrated pack) is null."""
    return value if math.isfinite(value) else None


class FromCore(BaseModel):
    """A response body read from the attributes (and properties) of a result object: Model.model_validate(obj)."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, obj: object) -> Self:
        """The same as model_validate(obj): the hit and evidence models' of() build their parts with it."""
        return cls.model_validate(obj)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class UserOut(FromCore):
    name: str
    role: Role
    active: bool
    created_at: datetime


class NewUserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    # A plain string, checked by the user service (its message names the roles), as from the CLI and the web UI.
    role: str = Field(max_length=32, description="admin, investigator, reviewer or auditor")
    password: str | None = Field(
        default=None, min_length=12, max_length=MAX_PASSWORD, description="Optional, for HTTP Basic sign-in."
    )


class ApiKeyOut(FromCore):
    key_id: int
    prefix: str = Field(description="The key's first characters, to tell keys apart; never the key.")
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class IssuedKeyOut(FromCore):
    user: UserOut
    api_key: str = Field(description="Shown this once; only its hash is stored.")


class CaseIn(BaseModel):
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    purpose: str = Field(min_length=1, max_length=MAX_TEXT, description="Why faces are searched in this case.")
    legal_basis: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The law, warrant or consent that allows it."
    )
    requires_independent_review: bool | None = Field(
        default=None,
        description="A candidate must be reviewed by someone other than the user who searched. Set by policy "
        "(setting independent_review): when it is required, false is refused (403); omitted means on.",
    )


class CaseOut(FromCore):
    case_id: int
    title: str
    purpose: str
    legal_basis: str
    requires_independent_review: bool
    created_by: str
    created_at: datetime
    status: CaseStatus


class BoxOut(FromCore):
    x1: float
    y1: float
    x2: float
    y2: float


class QualityOut(FromCore):
    score: float
    face_size_px: float
    flags: list[str]


class EvidenceOut(BaseModel):
    """What a score means, as data (the fields the verdict sentence is rendered from) and as that sentence."""

    similarity: float
    strength: Strength = Field(
        description="strong, moderate or weak lead, or uncalibrated (the pack has no measured rates): decided from "
        "the two rates below; the verdict sentence begins with it."
    )
    false_match_rate: float | None = Field(
        description="Chance one comparison with a stranger scores this high (full precision; null if uncalibrated)."
    )
    false_match_rate_is_upper_bound: bool
    gallery_size: int
    gallery_false_match_probability: float | None = Field(
        description="Chance at least one stranger in a gallery of this size scores this high."
    )
    weak_probe: bool
    weak_candidate: bool
    calibrated: bool
    quality_condition: QualityCondition = Field(
        description="The impostor table the rate was read from: clean, or the table measured on pairs with one or "
        "both faces flagged, used only where it gives the higher (more pessimistic) rate."
    )
    pair_condition: QualityCondition = Field(
        description="The pair's own condition: how many of its two faces carry a quality flag (weak_probe, "
        "weak_candidate)."
    )
    condition_table_measured: bool = Field(
        description="The model pack has an impostor table for pair_condition (compared with the clean one); false "
        "for a flagged pair: its rate was measured on good photos and may understate the risk."
    )
    verdict: str = Field(description="The sentence a reviewer reads, rendered from the fields above.")
    detail: str = Field(
        description="The calibration note behind the verdict: the similarity, the rates to three figures and the "
        "impostor table they were read from."
    )

    @classmethod
    def of(cls, evidence: Evidence) -> EvidenceOut:
        return cls(
            similarity=evidence.similarity,
            strength=evidence.strength,
            false_match_rate=_finite(evidence.false_match_rate),
            false_match_rate_is_upper_bound=evidence.false_match_rate_is_upper_bound,
            gallery_size=evidence.gallery_size,
            gallery_false_match_probability=_finite(evidence.gallery_false_match_probability),
            weak_probe=evidence.weak_probe,
            weak_candidate=evidence.weak_candidate,
            calibrated=evidence.calibrated,
            quality_condition=evidence.quality_condition,
            pair_condition=evidence.pair_condition,
            condition_table_measured=evidence.condition_table_measured,
            verdict=describe(evidence),
            detail=detail(evidence),
        )


class FaceOut(FromCore):
    """A stored face with its provenance: where the photo came from, when, and what it was labelled."""

    face_id: int
    asset_id: int
    box: BoxOut
    detection_score: float
    quality_score: float
    quality_flags: list[str]
    model_id: str
    asset_uri: str
    asset_sha256: str
    source_page: str | None
    captured_at: datetime | None
    ingested_at: datetime | None
    label: str | None = Field(description="The face's own label (a labelled photo's subject); null for a bystander.")
    photo_label: str | None = Field(default=None, description="The label of the photo the face is in (provenance).")
    photo_role: PhotoRole | None = Field(
        default=None, description="The face's part in a labelled photo: subject, bystander or unattributed."
    )
    shown_as: str | None = Field(
        default=None, description='What the face is shown as: its label, or e.g. "bystander in a photo of X".'
    )
    legal_basis: str | None = Field(default=None, description="The legal basis the image was collected under.")
    # Read from a FaceRecord's thumbnail_path (see _thumbnail_url).
    thumbnail_url: str | None = Field(validation_alias=AliasChoices("thumbnail_url", "thumbnail_path"))
    retain_until: datetime | None = Field(default=None, description="When retention ends (null: until erased).")

    @field_validator("thumbnail_url")
    @classmethod
    def _thumbnail_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The API's address of the face's thumbnail, if it has one (the stored path is never shown)."""
        return f"/api/v1/faces/{info.data['face_id']}/thumbnail" if value else None


class HitOut(BaseModel):
    rank: int
    similarity: float
    face: FaceOut
    evidence: EvidenceOut
    same_image: SameImage = Field(
        description="identical: the probe's own photo (same sha256); near_duplicate: likely the same photo (a "
        "re-encoded, resized or cropped copy); none. A marked hit is not independent evidence."
    )

    @classmethod
    def of(cls, hit: SearchHit) -> HitOut:
        return cls(
            rank=hit.rank,
            similarity=hit.similarity,
            face=FaceOut.of(hit.face),
            evidence=EvidenceOut.of(hit.evidence),
            same_image=hit.same_image,
        )


class ProbeResultOut(BaseModel):
    probe_face_index: int | None
    probe_box: BoxOut | None
    probe_quality: QualityOut | None
    hits: list[HitOut]
    withheld: dict[WithheldReason, int] = Field(
        description="Candidates ranked among these hits that were not shown, by reason (erased_person, "
        "no_catalog_row); the next candidates took their places."
    )
    below_min_strength: int = Field(
        0, description="Candidates left out of hits by the request's min_strength (kept with the case's search)."
    )

    @classmethod
    def of(cls, result: ProbeResult, min_strength: MinStrength = MinStrength.WEAK) -> ProbeResultOut:
        hits = [hit for hit in result.hits if min_strength.keeps(hit.evidence.strength)]
        return cls(
            probe_face_index=result.probe_face_index,
            probe_box=BoxOut.of(result.probe_box) if result.probe_box else None,
            probe_quality=QualityOut.of(result.probe_quality) if result.probe_quality else None,
            hits=[HitOut.of(hit) for hit in hits],
            withheld=dict(result.withheld),
            below_min_strength=len(result.hits) - len(hits),
        )


class StoredHitOut(BaseModel):
    """A hit as kept with its search: its evidence as data, as computed then (rows stored before the evidence was
    kept as data are read back from their sentence; their probe quality is unknown). The flat rate fields and verdict
    repeat evidence's, for clients written before it was there."""

    probe_face_index: int | None
    rank: int
    face_id: int
    similarity: float
    evidence: EvidenceOut
    false_match_rate: float | None
    gallery_false_match_probability: float | None
    gallery_size: int
    verdict: str
    same_image: SameImage = Field(
        description="As the search marked it: identical, near_duplicate or none (none for hits stored before the mark "
        "was kept)."
    )

    @classmethod
    def of(cls, hit: StoredHit) -> StoredHitOut:
        evidence = EvidenceOut.of(hit.evidence)
        return cls(
            probe_face_index=hit.probe_face_index,
            rank=hit.rank,
            face_id=hit.face_id,
            similarity=hit.similarity,
            evidence=evidence,
            false_match_rate=evidence.false_match_rate,
            gallery_false_match_probability=evidence.gallery_false_match_probability,
            gallery_size=evidence.gallery_size,
            verdict=evidence.verdict,
            same_image=hit.same_image,
        )


class ReviewIn(BaseModel):
    face_id: CatalogId
    # A plain string, checked by the case service (its message names the decisions), as from the web UI.
    decision: str = Field(max_length=32, description="confirmed or rejected")
    note: str = Field(default="", max_length=MAX_NOTE)


class ReviewOut(FromCore):
    review_id: int
    search_id: int
    face_id: int
    reviewer: str
    decision: ReviewDecision
    note: str
    at: datetime


class SearchOut(BaseModel):
    """A search as stored with its case."""

    search_id: int
    case_id: int
    user: str
    purpose: str
    probe_sha256: str
    probe_name: str
    at: datetime
    model_id: str
    hits: list[StoredHitOut]
    reviews: list[ReviewOut] = []

    @classmethod
    def of(
        cls, record: SearchRecord, reviews: list[Review] | None = None, min_strength: MinStrength = MinStrength.WEAK
    ) -> SearchOut:
        return cls(
            search_id=record.search_id,
            case_id=record.case_id,
            user=record.user,
            purpose=record.purpose,
            probe_sha256=record.probe_sha256,
            probe_name=record.probe_name,
            at=record.at,
            model_id=record.model_id,
            hits=[StoredHitOut.of(hit) for hit in record.hits if min_strength.keeps(hit.evidence.strength)],
            reviews=[ReviewOut.of(review) for review in reviews or []],
        )


class SearchResultOut(BaseModel):
    """A new search: its stored record, and the hits with full provenance and evidence."""

    search: SearchOut
    results: list[ProbeResultOut]


class CaseMemberIn(BaseModel):
    user: str = Field(min_length=1, max_length=255, description="An investigator's or reviewer's user name.")


class CaseMemberOut(FromCore):
    case_id: int
    user_name: str
    added_by: str
    added_at: datetime


class CaseDetailOut(BaseModel):
    case: CaseOut
    members: list[CaseMemberOut] = Field(description="Who works in the case besides its owner (created_by).")
    searches: list[SearchOut]


class ComparisonOut(BaseModel):
    face_index_a: int = Field(description="The face compared in photo a (0-based, detector order).")
    face_index_b: int = Field(description="The face compared in photo b.")
    box_a: BoxOut
    box_b: BoxOut
    quality_a: QualityOut
    quality_b: QualityOut
    similarity: float
    evidence: EvidenceOut

    @classmethod
    def of(cls, comparison: Comparison) -> ComparisonOut:
        return cls(
            face_index_a=comparison.face_index_a,
            face_index_b=comparison.face_index_b,
            box_a=BoxOut.of(comparison.box_a),
            box_b=BoxOut.of(comparison.box_b),
            quality_a=QualityOut.of(comparison.quality_a),
            quality_b=QualityOut.of(comparison.quality_b),
            similarity=comparison.similarity,
            evidence=EvidenceOut.of(comparison.evidence),
        )


class AuditEntryOut(FromCore):
    seq: int
    at: datetime
    actor: str
    action: str = Field(description="What was done: an AuditAction (e.g. search, view_face, review, erase).")
    target: str
    details: dict[str, object]
    prev_hash: str
    hash: str


class PurposeSearchesOut(BaseModel):
    purpose: str
    total: int
    with_hits: int = Field(description="Searches that showed at least one candidate.")
    without_hits: int
    failed: int = Field(description="Probes that could not be searched (unreadable, no face, no such face).")


class SearchFiguresOut(BaseModel):
    total: int
    with_hits: int
    without_hits: int
    failed: int
    by_purpose: list[PurposeSearchesOut]


class ReviewFiguresOut(BaseModel):
    confirmed: int
    rejected: int


class ErasureFiguresOut(BaseModel):
    requests: int = Field(description="Requests opened in the period (first preview, or the erasure itself).")
    erased: int
    faces_erased: int
    pending: int = Field(description="Requests opened in the period and not erased by its end.")
    timed: int = Field(description="Erasures whose request was previewed: the times are theirs.")
    median_seconds: float | None = Field(description="From the request's first preview to its erasure.")
    max_seconds: float | None


class SuppressedFiguresOut(BaseModel):
    ingest_runs: int
    faces: int = Field(description="Faces of erased people met by an ingest run and not stored.")
    photos: int


class PurgeFiguresOut(BaseModel):
    purges: int
    faces: int
    assets: int


class ActiveUserOut(BaseModel):
    user: str
    audit_entries: int


class TransparencyOut(BaseModel):
    """What the gallery was used for in a period (engine/transparency.py): whole UTC days, both included."""

    model_config = ConfigDict(populate_by_name=True)

    since: date = Field(alias="from")
    until: date = Field(alias="to")
    searches: SearchFiguresOut
    reviews: ReviewFiguresOut
    erasure: ErasureFiguresOut
    suppressed_reingests: SuppressedFiguresOut
    retention_purges: PurgeFiguresOut
    active_users: list[ActiveUserOut]
    audit_entries: int


class ChainReportOut(FromCore):
    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None
    problem: str
    keyed_from: int | None = Field(
        default=None,
        description="Entries from this seq on are sealed with the audit key (HMAC) kept outside the catalog.",
    )
    key_fingerprint: str | None = None


class AuditHeadOut(FromCore):
    """The newest entry: export it and keep it elsewhere; `facetrace audit verify --head` checks the log still
    holds it unchanged (deleting the newest entries can only be seen that way)."""

    seq: int
    hash: str
    at: datetime | None
    key_fingerprint: str | None


class RepeatedProbeOut(FromCore):
    earlier_search_id: int
    later_search_id: int
    earlier_case_id: int
    later_case_id: int
    earlier_user: str
    later_user: str
    same_photo: bool
    similarity: float | None


class EraseFacesIn(BaseModel):
    face_ids: list[CatalogId] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=MAX_TEXT, description="The request this erasure answers.")


class ErasePersonIn(BaseModel):
    label: str = Field(min_length=1, max_length=MAX_LABEL)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)
    with_matches: bool = Field(
        default=False, description="Also the faces matching a labelled face (one step): preview them first."
    )
    face_ids: list[CatalogId] | None = Field(
        default=None,
        description="Confirm a preview: erase exactly these faces of its list (each must still be on it). "
        "Without it, the whole list is erased at once.",
    )


class ErasePersonPreviewIn(BaseModel):
    label: str = Field(min_length=1, max_length=MAX_LABEL)
    with_matches: bool = False


class ErasureCandidateOut(FromCore):
    """A face the erasure would remove, and why it is listed (found_by: face_id, label, photo or linked)."""

    face_id: int
    asset_id: int
    asset_uri: str
    label: str | None
    found_by: ErasureMatch
    similarity: float | None = Field(description="To the requester's face (erasure by photo).")
    linked_to: int | None = Field(description="found_by linked: the listed face this one matched.")
    linked_similarity: float | None


class ErasurePreviewOut(FromCore):
    """What an erasure request would remove; nothing was changed. Confirm with the same request and face_ids."""

    mode: ErasureMode
    subject: str
    face_ids: list[int]
    candidates: list[ErasureCandidateOut]
    min_similarity: float | None = Field(description="Listed at or above this similarity to the requester's face.")
    false_match_rate: float | None
    linked_min_similarity: float | None = Field(description="... or to a face already listed (one step).")
    linked_false_match_rate: float | None
    requester_face_index: int | None = Field(description="The requester's face in their photo (0-based).")
    requester_faces: int = Field(description="Faces in the requester's photo; the others are left alone.")
    requester_box: BoxOut | None


class ReceiptOut(FromCore):
    receipt_id: str
    at: datetime
    requested_by: str
    mode: ErasureMode
    subject: str
    reason: str
    face_ids: list[int]
    asset_ids: list[int]
    asset_uris: list[str]
    thumbnails_removed: int
    suppressed_embeddings: int
    audit_seq: int


class HealthOut(BaseModel):
    status: str
    model_id: str
    version: str


class IngestJobOut(FromCore):
    """A background ingest job: what it was asked to read, by whom, and how far it got."""

    job_id: str
    kind: JobKind
    sources: list[str] = Field(description="Original file names of an upload, or the server path or manifest.")
    started_by: str
    created_at: datetime
    label: str | None
    legal_basis: str | None
    status: JobStatus
    files_total: int | None = Field(description="Known ahead for uploads only.")
    percent: int | None = Field(description="Progress, when files_total is known.")
    started_at: datetime | None
    finished_at: datetime | None
    run_id: int | None = Field(description="The catalog's ingest run (its per-file errors are kept there).")
    images_seen: int
    images_added: int
    images_skipped: int = Field(description="Already in the catalog (same sha256).")
    faces_added: int
    faces_suppressed: int = Field(description="Faces of erased people, not stored.")
    errors: int
    error_messages: list[str]
    message: str = Field(description="Why a failed job failed.")


class PersonOut(BaseModel):
    label: str
    faces: int


class PeoplePageOut(BaseModel):
    total: int = Field(description="Labels in the gallery.")
    offset: int
    limit: int
    people: list[PersonOut]


class PersonDetailOut(BaseModel):
    label: str
    faces: list[FaceOut]


class CloseCaseIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=MAX_TEXT, description="Why the case is closed (kept in the audit log)."
    )


class PurgeIn(BaseModel):
    dry_run: bool = Field(default=False, description="Count what would be deleted; change nothing.")


class PurgeOut(FromCore):
    """What a purge of photos past their retention removed (or would remove, for a dry run)."""

    purge_id: str
    at: datetime
    requested_by: str
    dry_run: bool
    face_ids: list[int]
    asset_ids: list[int]
    thumbnails_removed: int
    index_entries_removed: int
    audit_seq: int | None
