"""The web UI's probe overview and a candidate's whole photo.

Probe overview: a probe photo with several faces, uploaded to a case's search form, is kept for its uploader
(server/ui/probes.py, PendingProbes) and shown downscaled with each face's numbered box and quality flags; the
investigator picks the faces to search (the photo's subject, by the subject rule of core/subject.py, is picked at
first) and the form goes back to the case's search route (routes.py) with the upload's token. Only the picked faces
are searched, stored and audited. The overview shows the investigator's own upload, not the gallery, and is not an
audited view.

A candidate's whole photo: the gallery photo a search candidate was found in, with the candidate's box drawn. Only for
who may see the search's case (404 otherwise) and may view faces; each is an audited view (view_photo) under the case.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import NotFoundError
from facetrace.core.types import BoundingBox
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of
from facetrace.server.ui.common import VIEWERS, Visitor, pending_probes_of, render, signed_in
from facetrace.vision.annotate import MarkedFace, annotate

router = APIRouter()
_investigators = signed_in(Role.INVESTIGATOR)
_viewers = signed_in(*VIEWERS)


def _jpeg(data: bytes) -> Response:
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/cases/{case_id}/probes/{token}", response_class=HTMLResponse)
def probe_overview(
    case_id: IdPath, token: str, request: Request, visitor: Annotated[Visitor, Depends(_investigators)]
) -> HTMLResponse:
    engine = engine_of(request)
    case = engine.cases.case_for(visitor.user, case_id)
    pending, _data = pending_probes_of(request).get(token, visitor.user.name, case_id)
    return render(request, "probe.html", visitor, case=case, pending=pending)


@router.get("/cases/{case_id}/probes/{token}/photo")
def probe_photo(
    case_id: IdPath, token: str, request: Request, visitor: Annotated[Visitor, Depends(_investigators)]
) -> Response:
    """The uploaded probe, downscaled, with every face's numbered box and flags; the subject face picked."""
    engine = engine_of(request)
    engine.cases.case_for(visitor.user, case_id)
    pending, data = pending_probes_of(request).get(token, visitor.user.name, case_id)
    marks = [
        MarkedFace(str(face.face_index), BoundingBox(*face.box), face.quality_flags, face.face_index == pending.subject)
        for face in pending.faces
    ]
    return _jpeg(annotate(data, pending.name, marks, max_pixels=engine.settings.max_image_pixels))


@router.get("/searches/{search_id}/photos/{face_id}")
def candidate_photo(
    search_id: IdPath, face_id: IdPath, request: Request, visitor: Annotated[Visitor, Depends(_viewers)]
) -> Response:
    """The whole gallery photo of a candidate of this search, downscaled, with the candidate's box drawn."""
    engine = engine_of(request)
    cases = engine.cases
    record, case = cases.search_for(visitor.user, search_id)
    if face_id not in {hit.face_id for hit in record.hits}:
        raise NotFoundError(f"face {face_id} is not a candidate of search {search_id}")
    context = cases.reading(visitor.user, case.case_id, f"whole photo of a candidate of search {search_id}")
    face, data = engine.gallery.photo(visitor.user, face_id, context)
    mark = MarkedFace(f"face {face_id}", face.box, face.quality_flags, picked=True)
    return _jpeg(annotate(data, face.asset_uri, [mark], max_pixels=engine.settings.max_image_pixels))
