"""What a case report holds, gathered once for the HTML page and the PDF, which show the same sections in the same
order (SECTIONS): the confirmed identifications with their evidence (probe face, candidate face, the evidence in
words, who confirmed it, when, and their note), the rejected candidates counted, the unreviewed candidates (listed
only when asked for, else counted), the searches run, and what the scores mean.

A candidate's decision is its latest review: a confirmation later rejected by someone else is a rejected candidate
(and every decision is shown with a finding). Gathering is the audited part: the report is one export entry, whose
seq it prints so a printed report can be matched to the audit log, naming the searches and the faces shown in it
(engine.gallery.show_faces) rather than one view per face. Rejected candidates are counted, not shown.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from facetrace.core.types import Case, FaceRecord, Review, SearchRecord, StoredHit, User
from facetrace.core.vocabulary import AuditAction, ReviewDecision
from facetrace.engine import Engine
from facetrace.governance.cases import strongest_first, strongest_per_face
from facetrace.server.hit_badges import HitBadges
from facetrace.server.ui.probes import ProbeFace, ProbeStore

CONFIRMED = "Confirmed identifications"
REJECTED = "Rejected candidates"
UNREVIEWED = "Unreviewed candidates"
SEARCHES = "Searches in this case"
SCORES = "What the scores mean"
SECTIONS = (CONFIRMED, REJECTED, UNREVIEWED, SEARCHES, SCORES)
SCORES_MEANING = (
    "Similarity is the cosine of two face embeddings (-1 to 1); it is not a probability. Each candidate's verdict "
    "translates it into a false-match rate: how often a face of a different person scores at least this high, "
    "measured on a labelled benchmark for this model. Over a gallery of N faces the chance that some stranger "
    "scores this high is larger, and is stated too. 'Strong lead' and 'moderate lead' describe that gallery-wide "
    "chance; neither is an identification. Low-quality faces (small, blurred, turned, badly lit) are flagged: rates "
    "measured on good photos may understate their risk. Only a person's confirmation, recorded in this report, turns "
    "a candidate into a finding."
)


@dataclass(frozen=True)
class ReportCandidate(HitBadges):
    """One candidate of one search: the face (None once erased, or when not shown), the probe face it matched,
    and every review of it, oldest first."""

    search: SearchRecord
    hit: StoredHit
    face: FaceRecord | None
    thumbnail: bytes | None
    probe: ProbeFace | None
    probe_crop: bytes | None
    reviews: tuple[Review, ...]

    @property
    def decision(self) -> Review | None:
        """The latest review, which decides where the candidate stands."""
        return self.reviews[-1] if self.reviews else None


@dataclass(frozen=True)
class SearchSummary:
    record: SearchRecord
    confirmed: int
    rejected: int
    unreviewed: int


@dataclass(frozen=True)
class CaseReport:
    case: Case  # with the review rule that applies (the policy's when it requires independent review)
    confirmed: list[ReportCandidate]  # strongest first
    rejected: list[ReportCandidate]  # counted; their faces are not in the report
    unreviewed: list[ReportCandidate]  # strongest first; faces shown only when include_unreviewed
    include_unreviewed: bool
    searches: list[SearchSummary]
    exported_by: str
    exported_at: datetime
    audit_seq: int

    def rejected_summary(self) -> str:
        """The rejected candidates in one sentence, counted by search."""
        if not self.rejected:
            return "No candidate has been rejected."
        per_search = "; ".join(f"search {s.record.search_id}: {s.rejected}" for s in self.searches if s.rejected)
        return f"{_candidates(len(self.rejected))} rejected ({per_search}); they are not listed."

    def unreviewed_summary(self) -> str:
        """The unreviewed candidates in one sentence (when they are not listed)."""
        if not self.unreviewed:
            return "Every candidate has been reviewed."
        return (
            f"{_candidates(len(self.unreviewed))} not reviewed: leads, not findings. They are listed only in the "
            "report with the unreviewed candidates."
        )


def _candidates(n: int) -> str:
    return f"{n} candidate{'s' if n != 1 else ''}"


def gather_report(
    engine: Engine,
    user: User,
    probes: ProbeStore,
    case_id: int,
    export_format: str,
    *,
    include_unreviewed: bool = False,
) -> CaseReport:
    """The case's report for user (whose role must allow viewing faces; the caller checks it): 404 unless the user
    may see the case. Its faces are viewed under the case with the purpose "case report (<format>)"."""
    cases = engine.cases
    context = cases.reading(user, case_id, f"case report ({export_format})")
    case = cases.case(case_id)
    case = dataclasses.replace(case, requires_independent_review=cases.independent_review_required(case))
    records = sorted(cases.searches(case_id), key=lambda s: s.search_id)
    placed: dict[ReviewDecision | None, list[tuple[SearchRecord, StoredHit, tuple[Review, ...]]]] = {
        ReviewDecision.CONFIRMED: [],
        ReviewDecision.REJECTED: [],
        None: [],
    }
    summaries = []
    for record in records:
        reviews = cases.reviews(record.search_id)
        counts = {decision: 0 for decision in placed}
        for hit in strongest_per_face(record.hits):
            mine = tuple(review for review in reviews if review.face_id == hit.face_id)
            decision = mine[-1].decision if mine else None
            placed[decision].append((record, hit, mine))
            counts[decision] += 1
        summaries.append(
            SearchSummary(record, counts[ReviewDecision.CONFIRMED], counts[ReviewDecision.REJECTED], counts[None])
        )
    shown_ids = {hit.face_id for _, hit, _ in placed[ReviewDecision.CONFIRMED]}
    if include_unreviewed:
        shown_ids |= {hit.face_id for _, hit, _ in placed[None]}
    shown = engine.gallery.show_faces(
        user,
        shown_ids,
        context,
        AuditAction.EXPORT,
        f"case:{case_id}",
        format=export_format,
        searches=[record.search_id for record in records],
        include_unreviewed=include_unreviewed,
    )

    probe_faces: dict[int, dict[int, ProbeFace]] = {}

    def candidates(decision: ReviewDecision | None, with_faces: bool) -> list[ReportCandidate]:
        found = []
        for record, hit, reviews in sorted(placed[decision], key=lambda item: strongest_first(item[1])):
            probe = crop = None
            if with_faces and hit.probe_face_index is not None:
                if record.search_id not in probe_faces:
                    probe_faces[record.search_id] = probes.faces(record.search_id)
                probe = probe_faces[record.search_id].get(hit.probe_face_index)
                crop = probes.crop(record.search_id, hit.probe_face_index)
            face = shown.faces.get(hit.face_id) if with_faces else None
            thumbnail = shown.thumbnails.get(hit.face_id) if with_faces else None
            found.append(ReportCandidate(record, hit, face, thumbnail, probe, crop, reviews))
        return found

    return CaseReport(
        case=case,
        confirmed=candidates(ReviewDecision.CONFIRMED, True),
        rejected=candidates(ReviewDecision.REJECTED, False),
        unreviewed=candidates(None, include_unreviewed),
        include_unreviewed=include_unreviewed,
        searches=summaries,
        exported_by=user.name,
        exported_at=shown.entry.at,
        audit_seq=shown.entry.seq,
    )
