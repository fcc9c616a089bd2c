"""Cases and purposes: every search belongs to a case, states why it is done, and is kept with what it found.

Access by case: a case has an owner (its creator) and members an admin adds. Investigators and reviewers who are
neither get NotFoundError for the case and everything in it (its searches, reviews, reports, closing it), worded as
for a case that does not exist, so its existence is not revealed; auditors read every case, admins see the list,
manage members and may close a case. Looking at the gallery (faces, thumbnails, people) happens under a CaseContext:
a case the user may act in and a stated purpose.

A reviewer confirms or rejects each candidate, or rejects the rest of a search's unreviewed candidates at once (one
review and one audit entry each). Four eyes is set by policy (setting independent_review): when it is required (the
default) nobody reviews the candidates of a search they ran, in any case, and asking to open a case without it is
refused; when optional, the investigator opening a case chooses (default on). A reviewer's queue is every candidate
nobody has reviewed yet in the cases they work in, that four eyes lets them review, strongest first.

Searches of the same probe across different cases, by identical photo or by a probe face within a high similarity of
an earlier one, are listed for auditors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from facetrace.core.errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from facetrace.core.limits import MAX_FILE_NAME, MAX_NOTE, MAX_TEXT, MAX_TITLE, bounded, required
from facetrace.core.ports import CaseStore, UserStore
from facetrace.core.types import (
    Case,
    CaseContext,
    CaseMember,
    FloatArray,
    ProbeResult,
    Review,
    SearchRecord,
    StoredHit,
    Strength,
    User,
)
from facetrace.core.vocabulary import AuditAction, CaseStatus, IndependentReview, ReviewDecision, Role
from facetrace.governance.audit import AuditLog
from facetrace.governance.repeats import RepeatedProbe, find_repeated_probes

__all__ = [
    "AwaitingReview",
    "CaseService",
    "CaseStoreWithUsers",
    "RepeatedProbe",
    "stored_hits",
    "strongest_first",
    "strongest_per_face",
]

# Roles that may read every case (auditors: read-only; admins: the list, members and closing, as routes allow).
_OVERSEERS = (Role.AUDITOR, Role.ADMIN)
# Roles a case's member may have: the ones that work in cases.
MEMBER_ROLES = (Role.INVESTIGATOR, Role.REVIEWER)


class CaseStoreWithUsers(CaseStore, UserStore, Protocol):
    """What the case service reads: the cases, and the users an admin adds to them."""


# Strongest first: strength, then similarity (an uncalibrated pack's hits have only their similarity).
_STRENGTH_ORDER = {Strength.STRONG: 0, Strength.MODERATE: 1, Strength.WEAK: 2, Strength.UNCALIBRATED: 3}


def strongest_first(hit: StoredHit) -> tuple[int, float]:
    """A sort key putting the strongest evidence first."""
    return _STRENGTH_ORDER[hit.evidence.strength], -hit.similarity


def strongest_per_face(hits: Sequence[StoredHit]) -> list[StoredHit]:
    """Each candidate face once, at its strongest hit (a face can be a hit of two faces of a group photo, and a
    review is of a face in a search), strongest first."""
    best: dict[int, StoredHit] = {}
    for hit in hits:
        if hit.face_id not in best or strongest_first(hit) < strongest_first(best[hit.face_id]):
            best[hit.face_id] = hit
    return sorted(best.values(), key=strongest_first)


@dataclass(frozen=True)
class AwaitingReview:
    """A search whose candidates await one reviewer: its case, and those candidates strongest first."""

    case: Case
    search: SearchRecord
    candidates: tuple[StoredHit, ...]


def stored_hits(results: Sequence[ProbeResult]) -> list[StoredHit]:
    return [
        StoredHit(
            probe_face_index=result.probe_face_index,
            rank=hit.rank,
            face_id=hit.face.face_id,
            evidence=hit.evidence,
            same_image=hit.same_image,
        )
        for result in results
        for hit in result.hits
    ]


class CaseService:
    def __init__(
        self,
        store: CaseStoreWithUsers,
        audit: AuditLog,
        repeat_similarity: float,
        independent_review: IndependentReview = IndependentReview.REQUIRED,
    ) -> None:
        self._store = store
        self._audit = audit
        self._repeat_similarity = repeat_similarity
        self._independent_review = IndependentReview(independent_review)

    @property
    def independent_review(self) -> IndependentReview:
        return self._independent_review

    def open_case(
        self,
        user: User,
        title: str,
        purpose: str,
        legal_basis: str,
        *,
        requires_independent_review: bool | None = None,
    ) -> Case:
        """Open a case owned by user. requires_independent_review None follows the policy (on); False is refused
        when the policy requires independent review: the searcher does not decide whether their results get a
        second pair of eyes."""
        if requires_independent_review is None:
            requires_independent_review = True
        elif not requires_independent_review and self._independent_review == IndependentReview.REQUIRED:
            raise PermissionDeniedError(
                "independent review (four eyes) is required by policy (setting independent_review) and cannot be "
                "switched off when opening a case"
            )
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

    # -- who may see a case ---------------------------------------------------------------------------------------

    def case(self, case_id: int) -> Case:
        """The case, unchecked (the engine's own use, tests); users reach cases through case_for."""
        case = self._store.case(case_id)
        if case is None:
            raise NotFoundError(f"no case {case_id}")
        return case

    def cases(self) -> list[Case]:
        """Every case, unchecked; users see cases_for."""
        return self._store.cases()

    def works_in(self, user: User, case: Case) -> bool:
        """The user owns the case or is one of its members."""
        if user.name == case.created_by:
            return True
        return any(member.user_name == user.name for member in self._store.case_members(case.case_id))

    def case_for(self, user: User, case_id: int) -> Case:
        """The case if the user may see it: its owner and members, auditors and admins. Anyone else gets the same
        NotFoundError as for a case that does not exist."""
        case = self._store.case(case_id)
        if case is None or not (user.role in _OVERSEERS or self.works_in(user, case)):
            raise NotFoundError(f"no case {case_id}")
        return case

    def _working_case(self, user: User, case_id: int) -> Case:
        """The case if the user works in it (owner or member); auditors only read, admins only manage."""
        case = self._store.case(case_id)
        if case is None or not self.works_in(user, case):
            raise NotFoundError(f"no case {case_id}")
        return case

    def cases_for(self, user: User) -> list[Case]:
        """The cases the user may see: all for auditors and admins, else those they own or are a member of."""
        if user.role in _OVERSEERS:
            return self._store.cases()
        return self._store.cases_of(user.name)

    # -- members ---------------------------------------------------------------------------------------------------

    def members(self, case_id: int) -> list[CaseMember]:
        self.case(case_id)
        return self._store.case_members(case_id)

    def add_member(self, admin: User, case_id: int, name: str) -> CaseMember:
        """Add an investigator or reviewer to a case (admins); audited as add_case_member."""
        case = self.case(case_id)
        member = self._store.user(name.strip())
        if member is None or not member.active:
            raise NotFoundError(f"no active user {name.strip()!r}")
        if member.role not in MEMBER_ROLES:
            raise InvalidRequestError(
                f"{member.name!r} is {member.role}: members are investigators or reviewers (auditors read every case)"
            )
        if member.name == case.created_by:
            raise ConflictError(f"{member.name!r} owns case {case_id}")
        added = self._store.add_case_member(case_id, member.name, admin.name)
        if added is None:
            raise ConflictError(f"{member.name!r} is a member of case {case_id} already")
        self._audit.record(admin.name, AuditAction.ADD_CASE_MEMBER, f"case:{case_id}", user=member.name)
        return added

    def remove_member(self, admin: User, case_id: int, name: str) -> None:
        """Remove a member (admins); their searches and reviews stay in the case. Audited as remove_case_member."""
        self.case(case_id)
        if not self._store.remove_case_member(case_id, name.strip()):
            raise NotFoundError(f"{name.strip()!r} is not a member of case {case_id}")
        self._audit.record(admin.name, AuditAction.REMOVE_CASE_MEMBER, f"case:{case_id}", user=name.strip())

    # -- looking at the gallery under a case and purpose -------------------------------------------------------------

    def browsing(self, user: User, case_id: int | None, purpose: str | None) -> CaseContext:
        """Before a look at the gallery (a face, a thumbnail, the people, a person): like a search, it names an open
        case the user works in and states a purpose. Admins, who manage erasures and belong to no case, state a
        purpose (routes let them list people only)."""
        if purpose is None or not purpose.strip():
            raise InvalidRequestError("looking at the gallery needs a case (case_id) and a purpose, as a search does")
        if user.role == Role.ADMIN:  # belongs to no case: the case, when named, must exist
            return CaseContext(None if case_id is None else self.case(case_id), purpose.strip())
        if case_id is None:
            raise InvalidRequestError("looking at the gallery needs a case (case_id) and a purpose, as a search does")
        case = self._working_case(user, case_id)
        if case.status != CaseStatus.OPEN:
            raise ConflictError(f"case {case_id} is {case.status}; looking at the gallery needs an open case")
        return CaseContext(case, purpose.strip())

    def reading(self, user: User, case_id: int, purpose: str) -> CaseContext:
        """A look at the faces a case already holds (its candidates, in its pages and reports), open or closed."""
        return CaseContext(self.case_for(user, case_id), purpose)

    def close_case(self, user: User, case_id: int, reason: str) -> Case:
        """Close a case (its owner, a member, or an admin): it keeps its searches, hits, reviews and probe crops,
        and accepts no new search or comparison (409). Reviews of its candidates stay possible, so a closed case
        can still be checked by a second pair of eyes. The audit entry (close_case) records who closed it, when
        and why."""
        case = self.case(case_id) if user.role == Role.ADMIN else self._working_case(user, case_id)
        reason = required(reason, "a reason for closing the case", MAX_TEXT)
        if not self._store.set_case_status(case_id, CaseStatus.CLOSED, expected=CaseStatus.OPEN):
            raise ConflictError(f"case {case_id} is {self.case(case_id).status}; only an open case can be closed")
        self._audit.record(user.name, AuditAction.CLOSE_CASE, f"case:{case_id}", reason=reason)
        return dataclasses.replace(case, status=CaseStatus.CLOSED)

    def check_search_allowed(self, user: User, case_id: int, purpose: str) -> tuple[Case, str]:
        """Before a search or comparison runs: the user works in the case, it is open, and the search states its
        purpose."""
        case = self._working_case(user, case_id)
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
        # The search, its hits and its audit entry: one transaction (one write lock taken per search).
        audit = self._audit.draft(
            user.name,
            action,
            lambda search_id: f"search:{search_id}",
            case_id=case.case_id,
            purpose=purpose,
            probe_sha256=probe_sha256,
            hit_face_ids=[hit.face_id for hit in hits],
        )
        return self._store.add_search(
            case.case_id, user.name, purpose, probe_sha256, probe_name, model_id, probe_embedding, hits, audit
        )

    def search(self, search_id: int) -> SearchRecord:
        """The search, unchecked; users reach searches through search_for."""
        record = self._store.search(search_id)
        if record is None:
            raise NotFoundError(f"no search {search_id}")
        return record

    def search_for(self, user: User, search_id: int) -> tuple[SearchRecord, Case]:
        """The search and its case, if the user may see the case (else the NotFoundError of a missing search)."""
        record = self._store.search(search_id)
        if record is not None:
            try:
                return record, self.case_for(user, record.case_id)
            except NotFoundError:
                pass
        raise NotFoundError(f"no search {search_id}")

    def searches(self, case_id: int | None = None) -> list[SearchRecord]:
        return self._store.searches(case_id)

    def independent_review_required(self, case: Case) -> bool:
        """Four eyes in this case: the policy's, or the case's own when the policy leaves it optional."""
        return self._independent_review == IndependentReview.REQUIRED or case.requires_independent_review

    def review(
        self, reviewer: User, search_id: int, face_id: int, decision: ReviewDecision | str, note: str = ""
    ) -> Review:
        try:
            decision = ReviewDecision(decision)
        except ValueError:
            raise InvalidRequestError(f"a decision is one of {', '.join(ReviewDecision)}, not {decision!r}") from None
        note = bounded(note.strip(), "a review's note", MAX_NOTE)
        record, case = self._reviewable(reviewer, search_id)
        if face_id not in {hit.face_id for hit in record.hits}:
            raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
        return self._decide(reviewer, case, search_id, face_id, decision, note)

    def reject_rest(
        self, reviewer: User, search_id: int, note: str = "", *, shown: Collection[int] | None = None
    ) -> list[Review]:
        """Reject every candidate of the search that nobody has reviewed yet (only those among shown, the ones the
        reviewer saw, when given): one review and one audit entry per candidate, as if rejected one by one, so the
        log reads the same either way; each entry says it was part of "reject the rest". A candidate someone reviewed
        meanwhile keeps that decision."""
        note = bounded(note.strip(), "a review's note", MAX_NOTE)
        record, case = self._reviewable(reviewer, search_id)
        candidates = {hit.face_id for hit in record.hits}
        if shown is not None and (strangers := sorted(set(shown) - candidates)):
            raise NotFoundError(f"faces {strangers} are not candidates of search {search_id}")
        reviewed = {review.face_id for review in self._store.reviews(search_id)}
        rest = sorted((candidates if shown is None else set(shown)) - reviewed)
        return [
            self._decide(reviewer, case, search_id, face_id, ReviewDecision.REJECTED, note, rest_of=len(rest))
            for face_id in rest
        ]

    def _reviewable(self, reviewer: User, search_id: int) -> tuple[SearchRecord, Case]:
        """The search and its case if reviewer may review its candidates (404 outside their cases, 403 for the
        searcher where four eyes apply)."""
        record, case = self.search_for(reviewer, search_id)
        if not self.works_in(reviewer, case):
            raise NotFoundError(f"no search {search_id}")  # reviewers review only the cases they are members of
        if self.independent_review_required(case) and reviewer.name == record.user:
            raise PermissionDeniedError(
                f"case {case.case_id} requires independent review: {reviewer.name!r} ran search {search_id} and "
                "cannot review its candidates"
            )
        return record, case

    def _decide(
        self,
        reviewer: User,
        case: Case,
        search_id: int,
        face_id: int,
        decision: ReviewDecision,
        note: str,
        **details: object,
    ) -> Review:
        review = self._store.add_review(search_id, face_id, reviewer.name, decision, note)
        self._audit.record(
            reviewer.name,
            AuditAction.REVIEW,
            f"search:{search_id}",
            case_id=case.case_id,
            face_id=face_id,
            decision=decision,
            note=review.note,
            **details,
        )
        return review

    def review_queue(self, user: User) -> list[AwaitingReview]:
        """The candidates nobody has reviewed yet that user may review, across the cases they work in (open or
        closed), in searches they may review (four eyes): one entry per search, each face once (at its strongest
        hit), strongest first. Cases come in the order of their strongest candidate, and within a case its searches
        likewise."""
        if user.role not in MEMBER_ROLES:
            return []
        cases = {case.case_id: case for case in self._store.cases_of(user.name)}
        waiting: list[AwaitingReview] = []
        for record in self._store.awaiting_review(list(cases)):
            case = cases[record.case_id]
            if self.independent_review_required(case) and record.user == user.name:
                continue
            waiting.append(AwaitingReview(case, record, tuple(strongest_per_face(record.hits))))
        case_rank: dict[int, tuple[int, float]] = {}
        for item in waiting:
            top = strongest_first(item.candidates[0])
            case_rank[item.case.case_id] = min(case_rank.get(item.case.case_id, top), top)
        return sorted(
            waiting,
            key=lambda item: (
                case_rank[item.case.case_id],
                item.case.case_id,
                strongest_first(item.candidates[0]),
                item.search.search_id,
            ),
        )

    def awaiting_count(self, user: User) -> int:
        """How many candidates await user's review: review_queue's, counted in the catalog (every page's nav shows
        it)."""
        if user.role not in MEMBER_ROLES:
            return 0
        cases = {case.case_id: case for case in self._store.cases_of(user.name)}
        return sum(
            n
            for (case_id, searcher), n in self._store.awaiting_review_counts(list(cases)).items()
            if not (searcher == user.name and self.independent_review_required(cases[case_id]))
        )

    def reviews(self, search_id: int) -> list[Review]:
        self.search(search_id)
        return self._store.reviews(search_id)

    def repeated_probes(self) -> list[RepeatedProbe]:
        """Pairs of searches in different cases of the same photo or of faces above the repeat similarity
        (governance/repeats.py: grouped by photo hash, and a tiled matrix product per model)."""
        return find_repeated_probes(self._store.searches(with_hits=False), self._repeat_similarity)
