"""The web UI's case access screen: admins see every case with its owner and members, and add or remove members
(investigators and reviewers), so a reviewer reaches the cases they are to review without a CLI or API step.

The same engine calls as the API's /cases/{id}/members routes (engine.cases.add_member, remove_member): the same
rules (only active investigators and reviewers, not the owner, not twice) and audit entries (add_case_member,
remove_case_member). Viewing the list is audited as list_cases, as the API's case listing is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import ConflictError, InvalidRequestError, NotFoundError
from facetrace.core.vocabulary import AuditAction, CaseStatus, Role
from facetrace.governance.cases import MEMBER_ROLES
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of
from facetrace.server.reads import audited_read
from facetrace.server.ui.common import Visitor, check_csrf, redirect, render, signed_in

router = APIRouter()
_admins = signed_in(Role.ADMIN)
_FORM_ERRORS = (InvalidRequestError, NotFoundError, ConflictError)


def _page(request: Request, visitor: Visitor, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    engine = engine_of(request)
    cases = sorted(engine.cases.cases(), key=lambda c: (c.status is not CaseStatus.OPEN, -c.case_id))
    members = {case.case_id: engine.cases.members(case.case_id) for case in cases}
    workers = [u for u in engine.users.users() if u.active and u.role in MEMBER_ROLES]
    # Whom each case can still take: not its owner, not a member already.
    addable = {
        case.case_id: [
            u
            for u in workers
            if u.name != case.created_by and u.name not in {m.user_name for m in members[case.case_id]}
        ]
        for case in cases
    }
    return render(
        request,
        "admin_case_access.html",
        visitor,
        status_code=status_code,
        cases=cases,
        members=members,
        addable=addable,
        error=error,
    )


@router.get("/admin/cases", response_class=HTMLResponse)
def case_access(request: Request, visitor: Annotated[Visitor, Depends(_admins)]) -> HTMLResponse:
    audited_read(request, visitor.user, AuditAction.LIST_CASES, "cases", view="case access")
    return _page(request, visitor)


@router.post("/admin/cases/{case_id}/members", response_model=None)
def add_member(
    case_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(visitor, csrf_token)
    try:
        engine_of(request).cases.add_member(visitor.user, case_id, name)
    except _FORM_ERRORS as exc:
        return _page(request, visitor, status_code=422 if isinstance(exc, InvalidRequestError) else 409, error=str(exc))
    return redirect(f"/admin/cases#case-{case_id}")


@router.post("/admin/cases/{case_id}/members/{name}/remove", response_model=None)
def remove_member(
    case_id: IdPath,
    name: str,
    request: Request,
    visitor: Annotated[Visitor, Depends(_admins)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(visitor, csrf_token)
    try:
        engine_of(request).cases.remove_member(visitor.user, case_id, name)
    except _FORM_ERRORS as exc:
        return _page(request, visitor, status_code=404, error=str(exc))
    return redirect(f"/admin/cases#case-{case_id}")
