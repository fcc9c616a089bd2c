"""Cases and purposes: every search belongs to a case, states why it is done, and is kept with what it found.

A reviewer confirms or rejects each candidate; a case that requires independent review (the default) refuses a
review by the user who ran the search (four eyes). Searches of the same probe across different cases, by identical
photo or by a probe face within a high similarity of an earlier one, are listed for auditors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from facetrace.core.errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from facetrace.core.limits import MAX_FILE_NAME, MAX_NOTE, MAX_TEXT, MAX_TITLE, bounded, required
from facetrace.core.ports import CaseStore
from facetrace.core.types import Case, FloatArray, ProbeResult, Review, SearchRecord, StoredHit, User
from facetrace.core.vocabulary import AuditAction, CaseStatus, ReviewDecision
from facetrace.governance.audit import AuditLog
from facetrace.governance.repeats import RepeatedProbe, find_repeated_probes

__all__ = ["CaseService", "RepeatedProbe", "stored_hits"]


def stored_hits(results: Sequence[ProbeResult]) -> list[StoredHit]:
    return [
        StoredHit(
            probe_face_index=result.probe_face_index,
            rank=hit.rank,
            face_id=hit.face.face_id,
            evidence=hit.evidence,
        )
        for result in results
        for hit in result.hits
    ]


class CaseService:
    def __init__(self, store: CaseStore, audit: AuditLog, repeat_similarity: float) -> None:
        self._store = store
        self._audit = audit
        self._repeat_similarity = repeat_similarity

    def open_case(
        self, user: User, title: str, purpose: str, legal_basis: str, *, requires_independent_review: bool = True
    ) -> Case:
        case = self._store.add_case(
            required(title, "a case title", MAX_TITLE),
            required(purpose, "a case's purpose", MAX_TEXT),
            required(legal_basis, "a case's legal basis", MAX_TEXT),
            requires_independent_review,
            user.name,
        )
        self._audit.record(
            user.name,
            AuditAction.OPEN_CASE,
            f"case:{case.case_id}",
            title=case.title,
            purpose=case.purpose,
            legal_basis=case.legal_basis,
            requires_independent_review=requires_independent_review,
        )
        return case

    def case(self, case_id: int) -> Case:
        case = self._store.case(case_id)
        if case is None:
            raise NotFoundError(f"no case {case_id}")
        return case

    def cases(self) -> list[Case]:
        return self._store.cases()

    def close_case(self, user: User, case_id: int, reason: str) -> Case:
        """Close a case: it keeps its searches, hits, reviews and probe crops, and accepts no new search or
        comparison (409). Reviews of its candidates stay possible, so a closed case can still be checked by a
        second pair of eyes. The audit entry (close_case) records who closed it, when and why."""
        reason = required(reason, "a reason for closing the case", MAX_TEXT)
        case = self.case(case_id)
        if not self._store.set_case_status(case_id, CaseStatus.CLOSED, expected=CaseStatus.OPEN):
            raise ConflictError(f"case {case_id} is {self.case(case_id).status}; only an open case can be closed")
        self._audit.record(user.name, AuditAction.CLOSE_CASE, f"case:{case_id}", reason=reason)
        return dataclasses.replace(case, status=CaseStatus.CLOSED)

    def check_search_allowed(self, case_id: int, purpose: str) -> tuple[Case, str]:
        """Before a search runs: the case exists and is open, and the search states its purpose."""
        case = self.case(case_id)
        if case.status != CaseStatus.OPEN:
            raise ConflictError(f"case {case_id} is {case.status}; searches need an open case")
        return case, required(purpose, "a search's purpose", MAX_TEXT)

    def record_search(
        self,
        user: User,
        case: Case,
        purpose: str,
        probe_sha256: str,
        probe_name: str,
        model_id: str,
        probe_embedding: FloatArray | None,
        results: Sequence[ProbeResult],
        action: AuditAction = AuditAction.SEARCH,
    ) -> SearchRecord:
        hits = stored_hits(results)
        probe_name = bounded(probe_name, "a probe's file name", MAX_FILE_NAME)
        record = self._store.add_search(
            case.case_id, user.name, purpose, probe_sha256, probe_name, model_id, probe_embedding, hits
        )
        self._audit.record(
            user.name,
            action,
            f"search:{record.search_id}",
            case_id=case.case_id,
            purpose=purpose,
            probe_sha256=probe_sha256,
            hit_face_ids=[hit.face_id for hit in hits],
        )
        return record

    def search(self, search_id: int) -> SearchRecord:
        record = self._store.search(search_id)
        if record is None:
            raise NotFoundError(f"no search {search_id}")
        return record

    def searches(self, case_id: int | None = None) -> list[SearchRecord]:
        return self._store.searches(case_id)

    def review(
        self, reviewer: User, search_id: int, face_id: int, decision: ReviewDecision | str, note: str = ""
    ) -> Review:
        try:
            decision = ReviewDecision(decision)
        except ValueError:
            raise InvalidRequestError(f"a decision is one of {', '.join(ReviewDecision)}, not {decision!r}") from None
        note = bounded(note.strip(), "a review's note", MAX_NOTE)
        record = self.search(search_id)
        if face_id not in {hit.face_id for hit in record.hits}:
            raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
        case = self.case(record.case_id)
        if case.requires_independent_review and reviewer.name == record.user:
            raise PermissionDeniedError(
                f"case {case.case_id} requires independent review: {reviewer.name!r} ran search {search_id} and "
                "cannot review its candidates"
            )
        review = self._store.add_review(search_id, face_id, reviewer.name, decision, note)
        self._audit.record(
            reviewer.name,
            AuditAction.REVIEW,
            f"search:{search_id}",
            case_id=case.case_id,
            face_id=face_id,
            decision=decision,
            note=review.note,
        )
        return review

    def reviews(self, search_id: int) -> list[Review]:
        self.search(search_id)
        return self._store.reviews(search_id)

    def repeated_probes(self) -> list[RepeatedProbe]:
        """Pairs of searches in different cases of the same photo or of faces above the repeat similarity
        (governance/repeats.py: grouped by photo hash, and a tiled matrix product per model)."""
        return find_repeated_probes(self._store.searches(with_hits=False), self._repeat_similarity)
