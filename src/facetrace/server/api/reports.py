"""The case report as a PDF made on the server (GET /cases/{id}/report.pdf); each export is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of, require
from facetrace.server.case_report import gather_report
from facetrace.server.reports_pdf import render_pdf
from facetrace.server.ui.probes import ProbeStore

router = APIRouter(tags=["cases"])


def pdf_response(data: bytes, case_id: int) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="facetrace-case-{case_id}-report.pdf"',
        },
    )


@router.get(
    "/cases/{case_id}/report.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def case_report_pdf(
    case_id: IdPath, request: Request, user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER))]
) -> Response:
    """The case report (probe crops, candidates with thumbnails, scores and what they mean, provenance, reviewers'
    decisions) as a PDF. Investigators and reviewers, who may see faces; every face in it is an audited view and
    the export an audited `export` entry whose seq the report prints."""
    engine = engine_of(request)
    probes = ProbeStore(engine.settings.data, engine.settings.max_image_pixels)
    return pdf_response(render_pdf(gather_report(engine, user, probes, case_id, "pdf")), case_id)
