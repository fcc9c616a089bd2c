"""The web UI's 1:1 comparison of two uploaded photos (investigators) and the repeated-probe view (auditors).

A comparison belongs to a case and states a purpose, like a search: it runs through Engine.compare_in_case, which
checks both and writes the `compare` audit entry (both photos' sha256 and the similarity). The two face crops are
sent back inline in the page and kept nowhere: a comparison stores no photo, only its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import (
    ConflictError,
    FaceSelectionError,
    ImageDecodeError,
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
)
from facetrace.core.limits import catalog_id
from facetrace.core.types import BoundingBox
from facetrace.core.vocabulary import AuditAction, CaseStatus, Role
from facetrace.search.service import Comparison
from facetrace.server.api.common import read_upload
from facetrace.server.auth import engine_of
from facetrace.server.reads import audited_read
from facetrace.server.ui.common import Visitor, check_csrf, data_uri, render, signed_in
from facetrace.vision.alignment import crop_thumbnail
from facetrace.vision.analyzer import THUMBNAIL_JPEG_QUALITY
from facetrace.vision.images import decode_image, encode_jpeg

router = APIRouter()
_investigators = signed_in(Role.INVESTIGATOR)
_FORM_ERRORS = (InvalidRequestError, NotFoundError, ConflictError, NoFaceError, FaceSelectionError, ImageDecodeError)


@dataclass(frozen=True)
class ComparedFace:
    name: str
    crop_data_uri: str
    quality_flags: tuple[str, ...]


def _crop(data: bytes, name: str, box: BoundingBox, max_pixels: int) -> str:
    bgr = decode_image(data, name, max_pixels=max_pixels)
    return data_uri(encode_jpeg(crop_thumbnail(bgr, box), THUMBNAIL_JPEG_QUALITY))


def _compare_page(
    request: Request,
    visitor: Visitor,
    status_code: int = 200,
    error: str | None = None,
    comparison: Comparison | None = None,
    faces: tuple[ComparedFace, ComparedFace] | None = None,
    case_id: int | None = None,
    purpose: str = "",
) -> HTMLResponse:
    cases = [case for case in engine_of(request).cases.cases_for(visitor.user) if case.status == CaseStatus.OPEN]
    return render(
        request,
        "compare_photos.html",
        visitor,
        status_code=status_code,
        cases=sorted(cases, key=lambda c: c.case_id, reverse=True),
        error=error,
        comparison=comparison,
        faces=faces,
        case_id=case_id,
        purpose=purpose,
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_form(request: Request, visitor: Annotated[Visitor, Depends(_investigators)]) -> HTMLResponse:
    return _compare_page(request, visitor)


@router.post("/compare", response_model=None)
def compare(
    request: Request,
    visitor: Annotated[Visitor, Depends(_investigators)],
    a: Annotated[UploadFile | None, File()] = None,
    b: Annotated[UploadFile | None, File()] = None,
    case_id: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Are these two photos of the same person? The largest face of each, with what the score means."""
    check_csrf(visitor, csrf_token)
    case: int | None = None
    try:
        case = catalog_id(case_id, "a case id") if case_id.strip() else None
        if case is None:
            raise InvalidRequestError("choose the case this comparison belongs to")
        if a is None or b is None or not a.filename or not b.filename:
            raise InvalidRequestError("choose two photos to compare")
        first, second = read_upload(a, "photo a"), read_upload(b, "photo b")
        engine = engine_of(request)
        comparison = engine.search.compare_in_case(visitor.user, case, purpose, first, second)
        max_pixels = engine.settings.max_image_pixels
        faces = (
            ComparedFace(first[1], _crop(*first, comparison.box_a, max_pixels), comparison.quality_a.flags),
            ComparedFace(second[1], _crop(*second, comparison.box_b, max_pixels), comparison.quality_b.flags),
        )
    except _FORM_ERRORS as exc:
        return _compare_page(request, visitor, 422, str(exc), case_id=case, purpose=purpose)
    return _compare_page(request, visitor, comparison=comparison, faces=faces, case_id=case, purpose=purpose)


@router.get("/audit/repeated-probes", response_class=HTMLResponse)
def repeated_probes(request: Request, visitor: Annotated[Visitor, Depends(signed_in(Role.AUDITOR))]) -> HTMLResponse:
    """Searches in different cases of the same photo, or of faces within the strict similarity of each other."""
    repeats = engine_of(request).cases.repeated_probes()
    audited_read(request, visitor.user, AuditAction.READ_AUDIT, "audit:repeated-probes")
    return render(request, "repeated_probes.html", visitor, repeats=repeats)
