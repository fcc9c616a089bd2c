"""Erasure by face ids, by person (label), or by the requester's photo; receipts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from facetrace.core.errors import InvalidRequestError
from facetrace.core.limits import MAX_TEXT
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.api.common import read_upload
from facetrace.server.auth import engine_of, require
from facetrace.server.reads import audited_read
from facetrace.server.schemas import (
    MAX_ID,
    EraseFacesIn,
    ErasePersonIn,
    ErasePersonPreviewIn,
    ErasurePreviewOut,
    ReceiptOut,
)

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
    """Every face shown with this label (with_matches: and the faces matching them); face_ids confirms a preview."""
    engine = engine_of(request)
    receipt = engine.erasure.erase_person(
        user.name, body.label, body.reason, with_matches=body.with_matches, face_ids=body.face_ids
    )
    return ReceiptOut.model_validate(receipt)


@router.post("/erasures/person/preview", response_model=ErasurePreviewOut)
def preview_person(
    body: ErasePersonPreviewIn, request: Request, user: Annotated[User, Depends(require(Role.ADMIN))]
) -> ErasurePreviewOut:
    """The faces an erasure by label would remove; nothing changes (an erase_preview audit entry is written)."""
    preview = engine_of(request).erasure.preview_person(user.name, body.label, with_matches=body.with_matches)
    return ErasurePreviewOut.model_validate(preview)


def _face_ids(text: str | None) -> list[int] | None:
    """The confirmed face ids of a multipart form: whole numbers separated by commas or spaces."""
    if text is None:
        return None
    parts = text.replace(",", " ").split()
    if not all(part.isascii() and part.isdigit() and int(part) <= MAX_ID for part in parts):
        raise InvalidRequestError("face_ids are whole numbers, separated by commas or spaces")
    return [int(part) for part in parts]


@router.post("/erasures/photo", response_model=ReceiptOut, status_code=201)
def erase_by_photo(
    request: Request,
    user: Annotated[User, Depends(require(Role.ADMIN))],
    photo: Annotated[UploadFile, File(description="The requester's photo.")],
    reason: Annotated[str, Form(min_length=1, max_length=MAX_TEXT)],
    face_index: Annotated[
        int | None,
        Form(ge=0, le=MAX_ID, description="The requester's face in the photo (0-based); default: its subject."),
    ] = None,
    face_ids: Annotated[
        str | None,
        Form(description="Confirm a preview: erase exactly these listed faces (comma-separated ids)."),
    ] = None,
) -> ReceiptOut:
    """'Remove me': every gallery face matching the requester's face (false-match rate 3e-5), or matching a face so
    found (5e-6), is erased, and the requester's face is kept (an embedding only) so it is never stored again.
    Bystanders in the photo are left alone; a photo without a clear subject needs face_index."""
    data, name = read_upload(photo, "the requester's photo")
    engine = engine_of(request)
    receipt = engine.erasure.erase_by_photo(
        user.name, data, name, reason, face_index=face_index, face_ids=_face_ids(face_ids)
    )
    return ReceiptOut.model_validate(receipt)


@router.post("/erasures/photo/preview", response_model=ErasurePreviewOut)
def preview_by_photo(
    request: Request,
    user: Annotated[User, Depends(require(Role.ADMIN))],
    photo: Annotated[UploadFile, File(description="The requester's photo.")],
    face_index: Annotated[
        int | None,
        Form(ge=0, le=MAX_ID, description="The requester's face in the photo (0-based); default: its subject."),
    ] = None,
) -> ErasurePreviewOut:
    """The faces an erasure by this photo would remove, each with its similarity; nothing changes (an
    erase_preview audit entry is written)."""
    data, name = read_upload(photo, "the requester's photo")
    preview = engine_of(request).erasure.preview_photo(user.name, data, name, face_index=face_index)
    return ErasurePreviewOut.model_validate(preview)


@router.get("/erasures", response_model=list[ReceiptOut])
def list_receipts(
    request: Request, user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> list[ReceiptOut]:
    """The newest erasure receipts first (up to 200)."""
    receipts = engine_of(request).erasure.receipts()
    audited_read(request, user, AuditAction.LIST_RECEIPTS, "erasures", receipts=len(receipts))
    return [ReceiptOut.model_validate(receipt) for receipt in receipts]


@router.get("/erasures/{receipt_id}", response_model=ReceiptOut)
def get_receipt(
    receipt_id: str, request: Request, user: Annotated[User, Depends(require(Role.ADMIN, Role.AUDITOR))]
) -> ReceiptOut:
    receipt = engine_of(request).erasure.receipt(receipt_id)
    audited_read(request, user, AuditAction.VIEW_RECEIPT, f"receipt:{receipt.receipt_id}")
    return ReceiptOut.model_validate(receipt)
