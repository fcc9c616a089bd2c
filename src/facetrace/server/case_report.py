"""What a case report holds, gathered once for the PDF (and any other format): the case, each search's probe face
crops, its candidates with their stored scores and verdicts, the faces' provenance and thumbnails, and the
reviewers' decisions.

Gathering is the audited part: each candidate face shown is a view_face (and its thumbnail a view_thumbnail), as in
the web UI, and the export itself is one export entry whose seq the report prints, so a printed report can be
matched to the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from facetrace.core.errors import NotFoundError
from facetrace.core.types import Case, CaseContext, FaceRecord, Review, SearchRecord, StoredHit, User
from facetrace.core.vocabulary import AuditAction
from facetrace.engine import Engine
from facetrace.server.ui.probes import ProbeStore


@dataclass
class ReportCandidate:
    hit: StoredHit
    face: FaceRecord | None  # None: erased since the search
    thumbnail: bytes | None
    reviews: list[Review] = field(default_factory=list)


@dataclass
class ReportProbe:
    face_index: int | None
    crop: bytes | None
    quality_flags: tuple[str, ...]
    candidates: list[ReportCandidate] = field(default_factory=list)


@dataclass
class ReportSearch:
    record: SearchRecord
    probes: list[ReportProbe]


@dataclass(frozen=True)
class CaseReport:
    case: Case
    searches: list[ReportSearch]
    exported_by: str
    exported_at: datetime
    audit_seq: int


def gather_report(engine: Engine, user: User, probes: ProbeStore, case_id: int, export_format: str) -> CaseReport:
    """The case's report for user (whose role must allow viewing faces; the caller checks it): 404 unless the user
    may see the case. Each face in it is viewed under the case with the purpose "case report"."""
    cases = engine.cases
    context = cases.reading(user, case_id, f"case report ({export_format})")
    case = cases.case(case_id)
    # The review rule that applies: the policy's when it requires independent review.
    case = dataclasses.replace(case, requires_independent_review=cases.independent_review_required(case))
    records = sorted(cases.searches(case_id), key=lambda s: s.search_id)
    searches: list[ReportSearch] = []
    shown: dict[int, tuple[FaceRecord | None, bytes | None]] = {}
    for record in records:
        reviews = cases.reviews(record.search_id)
        probe_faces = probes.faces(record.search_id)
        groups: dict[int | None, ReportProbe] = {}
        for hit in sorted(record.hits, key=lambda h: (h.probe_face_index or 0, h.rank)):
            index = hit.probe_face_index
            if index not in groups:
                probe = probe_faces.get(index) if index is not None else None
                crop = probes.crop(record.search_id, index) if index is not None else None
                groups[index] = ReportProbe(index, crop, probe.quality_flags if probe else ())
            if hit.face_id not in shown:
                shown[hit.face_id] = _view(engine, user, hit.face_id, context)
            face, thumbnail = shown[hit.face_id]
            mine = [review for review in reviews if review.face_id == hit.face_id]
            groups[index].candidates.append(ReportCandidate(hit, face, thumbnail, mine))
        searches.append(ReportSearch(record, list(groups.values())))
    entry = engine.audit.record(
        user.name,
        AuditAction.EXPORT,
        f"case:{case_id}",
        format=export_format,
        searches=[record.search_id for record in records],
        face_ids=sorted(shown),
    )
    return CaseReport(case, searches, user.name, entry.at, entry.seq)


def _view(engine: Engine, user: User, face_id: int, context: CaseContext) -> tuple[FaceRecord | None, bytes | None]:
    try:
        face = engine.gallery.face(user, face_id, context)
    except NotFoundError:
        return None, None  # erased since the search: its stored hit stays, the face is gone
    thumbnail = None
    if face.thumbnail_path:
        with contextlib.suppress(NotFoundError):
            thumbnail = engine.gallery.thumbnail(user, face_id, context)
    return face, thumbnail
