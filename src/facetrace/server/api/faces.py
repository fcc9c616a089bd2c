"""Faces and their thumbnails: every view names a case the caller works in and a purpose, like a search, and is
audited with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import BrowseCase, BrowsePurpose, IdPath
from facetrace.server.auth import engine_of, require
from facetrace.server.schemas import FaceOut

router = APIRouter(tags=["faces"])
_viewers = require(Role.INVESTIGATOR, Role.REVIEWER)


@router.get("/faces/{face_id}", response_model=FaceOut)
def get_face(
    face_id: IdPath,
    request: Request,
    user: Annotated[User, Depends(_viewers)],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
) -> FaceOut:
    """One face with provenance, within a case the caller works in and for a stated purpose (422 without them)."""
    engine = engine_of(request)
    context = engine.cases.browsing(user, case_id, purpose)
    return FaceOut.model_validate(engine.gallery.face(user, face_id, context))


@router.get("/faces/{face_id}/thumbnail", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(
    face_id: IdPath,
    request: Request,
    user: Annotated[User, Depends(_viewers)],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
) -> Response:
    """The face's thumbnail (JPEG), within a case and for a purpose, as GET /faces/{id}."""
    engine = engine_of(request)
    data = engine.gallery.thumbnail(user, face_id, engine.cases.browsing(user, case_id, purpose))
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
