"""People: the gallery's labels with their face counts, and one person's faces with provenance. Both audited
(list_people, view_person): the list says who is in the gallery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from facetrace.core.errors import NotFoundError
from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.auth import engine_of, require
from facetrace.server.schemas import MAX_ID, FaceOut, PeoplePageOut, PersonDetailOut, PersonOut

router = APIRouter(tags=["people"])
MAX_PAGE = 500


@router.get("/people", response_model=PeoplePageOut)
def list_people(
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER, Role.ADMIN))],
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> PeoplePageOut:
    """Labels by name with how many faces each has (admins too: erasure by person needs the exact label)."""
    page, total = engine_of(request).gallery.people(user, offset, limit)
    return PeoplePageOut(total=total, offset=offset, limit=limit, people=[PersonOut(label=n, faces=c) for n, c in page])


@router.get("/people/{label}", response_model=PersonDetailOut)
def get_person(
    label: str, request: Request, user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER))]
) -> PersonDetailOut:
    """Every face shown with this label, with provenance, as GET /faces/{id} shows one."""
    if "\x00" in label:
        raise NotFoundError("no face is labelled with a NUL character")
    faces = engine_of(request).gallery.person_faces(user, label)
    return PersonDetailOut(label=label, faces=[FaceOut.model_validate(face) for face in faces])
