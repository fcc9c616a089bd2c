"""People: the gallery's labels with their face counts, and one person's faces with provenance. Both name a case
the caller works in and a purpose, like a search (admins, listing labels for erasure, a purpose only), and are
audited with them (list_people, view_person): the list says who is in the gallery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from facetrace.core.errors import NotFoundError
from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import BrowseCase, BrowsePurpose
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
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
) -> PeoplePageOut:
    """Labels by name with how many faces each has (admins too, with a purpose and no case: erasure by person
    needs the exact label)."""
    engine = engine_of(request)
    page, total = engine.gallery.people(user, engine.cases.browsing(user, case_id, purpose), offset, limit)
    return PeoplePageOut(total=total, offset=offset, limit=limit, people=[PersonOut(label=n, faces=c) for n, c in page])


@router.get("/people/{label}", response_model=PersonDetailOut)
def get_person(
    label: str,
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER))],
    case_id: BrowseCase = None,
    purpose: BrowsePurpose = None,
) -> PersonDetailOut:
    """Every face shown with this label, with provenance, as GET /faces/{id} shows one (within a case, for a
    purpose)."""
    engine = engine_of(request)
    context = engine.cases.browsing(user, case_id, purpose)
    if "\x00" in label:
        raise NotFoundError("no face is labelled with a NUL character")
    faces = engine.gallery.person_faces(user, label, context)
    return PersonDetailOut(label=label, faces=[FaceOut.model_validate(face) for face in faces])
