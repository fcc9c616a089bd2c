"""Cases, searches within them, reviews of candidates, 1:1 comparison, and a case's members.

Access by case (governance/cases.py): investigators and reviewers reach only the cases they own or are members of;
anything else is 404, as for a case that does not exist. Auditors read every case; admins list them, manage their
members and may close them."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from facetrace.core.limits import MAX_TEXT
from facetrace.core.types import MAX_TOP_K, Case, User
from facetrace.core.vocabulary import AuditAction, MinStrength, Role
from facetrace.server.api.common import IdPath, read_upload
from facetrace.server.auth import engine_of, require
from facetrace.server.reads import audited_read
from facetrace.server.schemas import (
    MAX_ID,
    CaseDetailOut,
    CaseIn,
    CaseMemberIn,
    CaseMemberOut,
    CaseOut,
    CloseCaseIn,
    ComparisonOut,
    ProbeResultOut,
    ReviewIn,
    ReviewOut,
    SearchOut,
    SearchResultOut,
)

router = APIRouter(tags=["cases"])
_readers = require(Role.INVESTIGATOR, Role.REVIEWER, Role.AUDITOR)
_admins = require(Role.ADMIN)
_OVERSEERS = (Role.AUDITOR, Role.ADMIN)


def _case_out(request: Request, case: Case) -> CaseOut:
    """The case as its readers see it: requires_independent_review is what applies (the policy's when required)."""
    required = engine_of(request).cases.independent_review_required(case)
    return CaseOut.model_validate(dataclasses.replace(case, requires_independent_review=required))


@router.post("/cases", response_model=CaseOut, status_code=201)
def open_case(body: CaseIn, request: Request, user: Annotated[User, Depends(require(Role.INVESTIGATOR))]) -> CaseOut:
    """Open a case, owned by the caller: its purpose and legal basis are required, and bind every search made in
    it. Four eyes follows the policy: asking to switch it off when the policy requires it is 403."""
    case = engine_of(request).cases.open_case(
        user, body.title, body.purpose, body.legal_basis, requires_independent_review=body.requires_independent_review
    )
    return _case_out(request, case)


@router.get("/cases", response_model=list[CaseOut])
def list_cases(
    request: Request, user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER, *_OVERSEERS))]
) -> list[CaseOut]:
    """The cases the caller owns or is a member of; every case for auditors and admins."""
    cases = engine_of(request).cases.cases_for(user)
    audited_read(request, user, AuditAction.LIST_CASES, "cases", cases=len(cases))
    return [_case_out(request, case) for case in cases]


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def get_case(case_id: IdPath, request: Request, user: Annotated[User, Depends(_readers)]) -> CaseDetailOut:
    cases = engine_of(request).cases
    case = cases.case_for(user, case_id)
    audited_read(request, user, AuditAction.VIEW_CASE, f"case:{case_id}")
    return CaseDetailOut(
        case=_case_out(request, case),
        members=[CaseMemberOut.model_validate(m) for m in cases.members(case_id)],
        searches=[SearchOut.of(s) for s in cases.searches(case_id)],
    )


@router.get("/cases/{case_id}/members", response_model=list[CaseMemberOut])
def list_members(
    case_id: IdPath, request: Request, _user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> list[CaseMemberOut]:
    """Who works in the case besides its owner."""
    return [CaseMemberOut.model_validate(m) for m in engine_of(request).cases.members(case_id)]


@router.post("/cases/{case_id}/members", response_model=CaseMemberOut, status_code=201)
def add_member(
    case_id: IdPath, body: CaseMemberIn, request: Request, user: Annotated[User, Depends(_admins)]
) -> CaseMemberOut:
    """Add an investigator or reviewer to the case (404 unknown user or case, 409 already a member or the owner,
    422 another role); audited as add_case_member."""
    return CaseMemberOut.model_validate(engine_of(request).cases.add_member(user, case_id, body.user))


@router.post("/cases/{case_id}/members/{name}/remove", status_code=204, response_class=Response)
def remove_member(case_id: IdPath, name: str, request: Request, user: Annotated[User, Depends(_admins)]) -> Response:
    """Remove a member: they no longer reach the case; their searches and reviews stay in it. Audited as
    remove_case_member."""
    engine_of(request).cases.remove_member(user, case_id, name)
    return Response(status_code=204)


@router.post("/cases/{case_id}/close", response_model=CaseOut)
def close_case(
    case_id: IdPath,
    body: CloseCaseIn,
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.ADMIN))],
) -> CaseOut:
    """Close a case: it keeps its record (searches, hits, reviews, probe crops) and refuses new searches and
    comparisons (409); closing a closed case is 409 too. Its owner, a member, or an admin. Audited as close_case
    with the reason."""
    return _case_out(request, engine_of(request).cases.close_case(user, case_id, body.reason))


@router.post("/cases/{case_id}/searches", response_model=SearchResultOut, status_code=201)
def search(
    case_id: IdPath,
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR))],
    probe: Annotated[UploadFile, File(description="The probe photo.")],
    purpose: Annotated[
        str, Form(min_length=1, max_length=MAX_TEXT, description="Why this search, within the case's purpose.")
    ],
    top_k: Annotated[int | None, Form(ge=1, le=MAX_TOP_K, description="Candidates per probe face (1-1000).")] = None,
    face_index: Annotated[
        int | None, Form(ge=0, le=MAX_ID, description="Search only this face of the probe (0-based).")
    ] = None,
    min_strength: Annotated[
        MinStrength,
        Form(description="Return only hits at least this strong (strong, moderate; weak: all). The case keeps all."),
    ] = MinStrength.WEAK,
) -> SearchResultOut:
    """Search the gallery with a probe photo. The search, its probe's sha256 and every hit (face id, similarity,
    evidence) are stored with the case and written to the audit log; min_strength trims only what is returned."""
    data, name = read_upload(probe, "the probe photo")
    # The engine runs the models outside its lock; only the index search is locked (shared), so concurrent
    # searches overlap.
    record, results = engine_of(request).search.in_case(
        user, case_id, purpose, data, name, top_k=top_k, faces=None if face_index is None else [face_index]
    )
    return SearchResultOut(
        search=SearchOut.of(record, min_strength=min_strength),
        results=[ProbeResultOut.of(r, min_strength) for r in results],
    )


@router.get("/searches/{search_id}", response_model=SearchOut)
def get_search(
    search_id: IdPath,
    request: Request,
    user: Annotated[User, Depends(_readers)],
    min_strength: Annotated[
        MinStrength, Query(description="Only hits at least this strong (strong, moderate; weak: all).")
    ] = MinStrength.WEAK,
) -> SearchOut:
    cases = engine_of(request).cases
    record, _case = cases.search_for(user, search_id)
    audited_read(request, user, AuditAction.VIEW_SEARCH, f"search:{search_id}", case_id=record.case_id)
    return SearchOut.of(record, cases.reviews(search_id), min_strength)


@router.post("/searches/{search_id}/reviews", response_model=ReviewOut, status_code=201)
def review(
    search_id: IdPath,
    body: ReviewIn,
    request: Request,
    user: Annotated[User, Depends(require(Role.REVIEWER, Role.INVESTIGATOR))],
) -> ReviewOut:
    """Confirm or reject a candidate (reviewers, and investigators on others' searches), in a case the caller owns
    or is a member of (else 404). When independent review applies, the user who ran the search cannot review it
    (403)."""
    return ReviewOut.model_validate(
        engine_of(request).cases.review(user, search_id, body.face_id, body.decision, body.note)
    )


@router.post("/compare", response_model=ComparisonOut)
def compare(
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR))],
    a: Annotated[UploadFile, File(description="First photo (its largest face, or face_a).")],
    b: Annotated[UploadFile, File(description="Second photo (its largest face, or face_b).")],
    case_id: Annotated[int, Form(ge=0, le=MAX_ID)],
    purpose: Annotated[str, Form(min_length=1, max_length=MAX_TEXT)],
    face_a: Annotated[int | None, Form(ge=0, le=MAX_ID, description="Compare this face of photo a (0-based).")] = None,
    face_b: Annotated[int | None, Form(ge=0, le=MAX_ID, description="Compare this face of photo b (0-based).")] = None,
) -> ComparisonOut:
    """1:1: are these the same person? Belongs to a case like a search, and is audited."""
    first = read_upload(a, "photo a")
    second = read_upload(b, "photo b")
    engine = engine_of(request)
    return ComparisonOut.of(
        engine.search.compare_in_case(user, case_id, purpose, first, second, face_a=face_a, face_b=face_b)
    )
