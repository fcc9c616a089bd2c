"""The case report as a PDF made on the server (GET /cases/{id}/report.pdf, include=unreviewed to list the
unreviewed candidates too); each export is audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from facetrace.core.types import User
from facetrace.core.vocabulary import Role
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of, require
from facetrace.server.case_report import gather_report
from facetrace.server.reports_pdf import render_pdf
from facetrace.server.ui.probes import ProbeStore

router = APIRouter(tags=["cases"])
# A report lists the confirmed identifications and counts the rest; include=unreviewed lists the unreviewed too.
ReportInclude = Annotated[
    Literal["unreviewed"] | None,
    Query(description="'unreviewed': list the candidates nobody has reviewed yet, not only count them"),
]


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
    case_id: IdPath,
    request: Request,
    user: Annotated[User, Depends(require(Role.INVESTIGATOR, Role.REVIEWER))],
    include: ReportInclude = None,
) -> Response:
    """The case report as a PDF: the confirmed identifications first (probe face and candidate face, the evidence
    in words, who confirmed and when, their note, provenance), the rejected candidates counted, the unreviewed ones
    counted or listed, the searches, and what the scores mean. Investigators and reviewers, who may see faces; the
    export is one audited `export` entry naming the faces shown, whose seq the report prints."""
    engine = engine_of(request)
    probes = ProbeStore(engine.settings.data, engine.settings.max_image_pixels)
    report = gather_report(engine, user, probes, case_id, "pdf", include_unreviewed=bool(include))
    return pdf_response(render_pdf(report), case_id)
