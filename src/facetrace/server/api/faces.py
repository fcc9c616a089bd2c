"""Faces and their thumbnails: every view is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of, require
from facetrace.server.schemas import FaceOut

router = APIRouter(tags=["faces"])
_viewers = require(Role.INVESTIGATOR, Role.REVIEWER)


@router.get("/faces/{face_id}", response_model=FaceOut)
def get_face(face_id: IdPath, request: Request, user: Annotated[User, Depends(_viewers)]) -> FaceOut:
    return FaceOut.model_validate(engine_of(request).gallery.face(user, face_id))


@router.get("/faces/{face_id}/thumbnail", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(face_id: IdPath, request: Request, user: Annotated[User, Depends(_viewers)]) -> Response:
    data = engine_of(request).gallery.thumbnail(user, face_id)
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
