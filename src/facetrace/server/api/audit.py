"""The audit log (filtered by actor, action, case and period), its verification, the transparency report, and
repeated probes across cases (auditors)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from facetrace.core.errors import InvalidRequestError
from facetrace.core.types import AuditQuery, User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.auth import engine_of, require
from facetrace.server.reads import audited_read
from facetrace.server.schemas import (
    MAX_ID,
    AuditEntryOut,
    AuditHeadOut,
    ChainReportOut,
    RepeatedProbeOut,
    TransparencyOut,
)

router = APIRouter(tags=["audit"])
_auditors = require(Role.AUDITOR, Role.ADMIN)
MAX_ACTOR = 255


def audit_query(
    actor: str | None, actions: list[str], case_id: int | None, since: date | None, until: date | None
) -> AuditQuery:
    """A filter of the log from what a person asked for: whole UTC days, both ends included; an action must be one
    of AuditAction."""
    known = {str(action) for action in AuditAction}
    unknown = sorted({action for action in actions if action not in known})
    if unknown:
        raise InvalidRequestError(f"unknown audit action {', '.join(map(repr, unknown))}")
    if since is not None and until is not None and until < since:
        raise InvalidRequestError(f"the period ends ({until}) before it starts ({since})")
    return AuditQuery(
        actor=(actor or "").strip() or None,
        actions=tuple(dict.fromkeys(actions)),
        case_id=case_id,
        since=datetime.combine(since, time(), tzinfo=UTC) if since is not None else None,
        until=datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC) if until is not None else None,
    )


@router.get("/audit", response_model=list[AuditEntryOut])
def list_entries(
    request: Request,
    user: Annotated[User, Depends(_auditors)],
    after_seq: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Annotated[str | None, Query(max_length=MAX_ACTOR, description="Only this actor's entries.")] = None,
    action: Annotated[list[str] | None, Query(max_length=64, description="Only these actions (repeat it).")] = None,
    case_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only entries about the case or made within it.")
    ] = None,
    since: Annotated[date | None, Query(alias="from", description="From this day (UTC), YYYY-MM-DD.")] = None,
    until: Annotated[date | None, Query(alias="to", description="To this day (UTC, included).")] = None,
) -> list[AuditEntryOut]:
    """Entries in order, after_seq onwards (page with the last seq you saw), narrowed by any filters given."""
    query = audit_query(actor, action or [], case_id, since, until)
    audited_read(
        request, user, AuditAction.READ_AUDIT, "audit", after_seq=after_seq, limit=limit, filter=query.described()
    )
    entries = engine_of(request).audit.find(query, after_seq=after_seq, limit=limit, newest_first=False)
    return [AuditEntryOut.model_validate(entry) for entry in entries]


@router.get("/audit/transparency", response_model=TransparencyOut)
def transparency(
    request: Request,
    user: Annotated[User, Depends(_auditors)],
    since: Annotated[date, Query(alias="from", description="First day (UTC), YYYY-MM-DD.")],
    until: Annotated[date, Query(alias="to", description="Last day (UTC, included).")],
) -> TransparencyOut:
    """The transparency report for a period (as `facetrace report transparency --json`)."""
    report = engine_of(request).transparency.report(since, until)
    audited_read(request, user, AuditAction.READ_AUDIT, "audit:transparency", since=str(since), until=str(until))
    return TransparencyOut.model_validate(report.to_dict())


@router.get("/audit/verify", response_model=ChainReportOut)
def verify(request: Request, user: Annotated[User, Depends(_auditors)]) -> ChainReportOut:
    """Recompute the hash chain; names the first entry that was edited, deleted or reordered."""
    audited_read(request, user, AuditAction.READ_AUDIT, "audit:verify")
    return ChainReportOut.model_validate(engine_of(request).audit.verify())


@router.get("/audit/head", response_model=AuditHeadOut)
def head(request: Request, user: Annotated[User, Depends(_auditors)]) -> AuditHeadOut:
    """The newest entry's seq and hash, to keep outside this server (a later verify checks against it)."""
    audited_read(request, user, AuditAction.READ_AUDIT, "audit:head")
    audit = engine_of(request).audit
    newest = audit.head()
    fingerprint = audit.key.fingerprint if audit.key is not None else None
    return AuditHeadOut(seq=newest.seq, hash=newest.hash, at=newest.at, key_fingerprint=fingerprint)


@router.get("/audit/repeated-probes", response_model=list[RepeatedProbeOut])
def repeated_probes(request: Request, user: Annotated[User, Depends(require(Role.AUDITOR))]) -> list[RepeatedProbeOut]:
    """Searches in different cases of the same photo, or of faces within the strict similarity of each other."""
    audited_read(request, user, AuditAction.READ_AUDIT, "audit:repeated-probes")
    return [RepeatedProbeOut.model_validate(repeat) for repeat in engine_of(request).cases.repeated_probes()]
