"""The retention purge (admin): delete every photo and face whose retention has ended."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.auth import engine_of, require
from facetrace.server.schemas import PurgeIn, PurgeOut

router = APIRouter(tags=["retention"])


@router.post("/retention/purge", response_model=PurgeOut)
def purge(body: PurgeIn, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]) -> PurgeOut:
    """Delete the faces (catalog rows, index entries, thumbnails) and photos past their retain_until, audited as one
    `purge` entry with its counts. Unlike erasure nothing is suppressed. dry_run counts and changes nothing."""
    engine = engine_of(request)
    return PurgeOut.model_validate(engine.retention.purge(user.name, dry_run=body.dry_run))
