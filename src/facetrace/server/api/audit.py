"""The audit log, its verification, and repeated probes across cases (auditors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.auth import engine_of, require
from facetrace.server.reads import audited_read
from facetrace.server.schemas import MAX_ID, AuditEntryOut, AuditHeadOut, ChainReportOut, RepeatedProbeOut

router = APIRouter(tags=["audit"])
_auditors = require(Role.AUDITOR, Role.ADMIN)


@router.get("/audit", response_model=list[AuditEntryOut])
def list_entries(
    request: Request,
    user: Annotated[User, Depends(_auditors)],
    after_seq: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    """Entries in order, after_seq onwards (page with the last seq you saw)."""
    audited_read(request, user, AuditAction.READ_AUDIT, "audit", after_seq=after_seq, limit=limit)
    return [AuditEntryOut.model_validate(entry) for entry in engine_of(request).audit.entries(after_seq, limit)]


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
