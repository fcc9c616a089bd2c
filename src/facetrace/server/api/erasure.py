"""Erasure by face ids, by person (label), or by the requester's photo; receipts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import read_upload
from facetrace.server.auth import engine_of, require
from facetrace.server.schemas import EraseFacesIn, ErasePersonIn, ReceiptOut

router = APIRouter(tags=["erasure"])


@router.post("/erasures/faces", response_model=ReceiptOut, status_code=201)
def erase_faces(
    body: EraseFacesIn, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]
) -> ReceiptOut:
    engine = engine_of(request)
    return ReceiptOut.model_validate(engine.erasure.erase_faces(user.name, body.face_ids, body.reason))


@router.post("/erasures/person", response_model=ReceiptOut, status_code=201)
def erase_person(
    body: ErasePersonIn, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]
) -> ReceiptOut:
    engine = engine_of(request)
    return ReceiptOut.model_validate(engine.erasure.erase_person(user.name, body.label, body.reason))


@router.post("/erasures/photo", response_model=ReceiptOut, status_code=201)
def erase_by_photo(
    request: Request,
    user: Annotated[User, Depends(require(Role.ADMIN))],
    photo: Annotated[UploadFile, File(description="The requester's photo.")],
    reason: Annotated[str, Form(min_length=1)],
) -> ReceiptOut:
    """'Remove me': every gallery face matching a face of this photo at the strict threshold (FMR 1e-6) is erased,
    and the requester's embeddings are kept (embeddings only) so their faces are never stored again."""
    data, name = read_upload(photo, "the requester's photo")
    engine = engine_of(request)
    return ReceiptOut.model_validate(engine.erasure.erase_by_photo(user.name, data, name, reason))


@router.get("/erasures", response_model=list[ReceiptOut])
def list_receipts(
    request: Request, _user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> list[ReceiptOut]:
    """The newest erasure receipts first (up to 200)."""
    return [ReceiptOut.model_validate(receipt) for receipt in engine_of(request).erasure.receipts()]


@router.get("/erasures/{receipt_id}", response_model=ReceiptOut)
def get_receipt(
    receipt_id: str, request: Request, _user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> ReceiptOut:
    return ReceiptOut.model_validate(engine_of(request).erasure.receipt(receipt_id))
