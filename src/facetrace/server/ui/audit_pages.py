"""The web UI's audit log page (auditors and admins): the chain's verification and the entries, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from facetrace.core.limits import MAX_CATALOG_ID
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.auth import engine_of
from facetrace.server.reads import audited_read
from facetrace.server.ui.common import Visitor, render, signed_in

router = APIRouter()
AUDIT_PAGE_SIZE = 200


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.AUDITOR, Role.ADMIN))],
    after_seq: Annotated[int | None, Query(ge=0, le=MAX_CATALOG_ID)] = None,
) -> HTMLResponse:
    audit = engine_of(request).audit
    chain = audit.verify()
    start = max(0, chain.entries - AUDIT_PAGE_SIZE) if after_seq is None else max(0, after_seq)
    entries = list(reversed(audit.entries(start, AUDIT_PAGE_SIZE)))
    audited_read(request, visitor.user, AuditAction.READ_AUDIT, "audit", after_seq=start, limit=AUDIT_PAGE_SIZE)
    return render(
        request,
        "audit.html",
        visitor,
        chain=chain,
        entries=entries,
        older=max(0, start - AUDIT_PAGE_SIZE) if start > 0 else None,
    )
