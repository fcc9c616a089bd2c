"""Web UI pages added beside routes.py: ingest jobs (photos uploaded with or without a manifest, or a folder or
manifest named on the server inside the ingest roots; the jobs with their progress), closing a case, and the case
report as a server-made PDF. Included into the UI app by create_app; same roles as the API.

The jobs page refreshes itself with <meta http-equiv="refresh"> while a job is queued or running: the UI's
Content-Security-Policy allows no scripts, and a reload every few seconds is all progress needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import InvalidRequestError, PermissionDeniedError
from facetrace.core.limits import MAX_FILE_NAME, MAX_LABEL
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.api.common import IdPath
from facetrace.server.api.ingest import collect_uploads, form_text, read_manifest
from facetrace.server.api.reports import ReportInclude, pdf_response
from facetrace.server.auth import engine_of
from facetrace.server.case_report import gather_report
from facetrace.server.jobs import MAX_UPLOAD_FILES, JobQueue
from facetrace.server.reads import audited_read, record_denial
from facetrace.server.reports_pdf import render_pdf
from facetrace.server.ui.common import VIEWERS, Visitor, check_csrf, probes_of, redirect, render, signed_in

router = APIRouter()
JOBS_REFRESH_S = 3


def _jobs(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


def _jobs_page(request: Request, visitor: Visitor, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    jobs = _jobs(request).jobs()
    busy = any(not job.finished for job in jobs)
    return render(
        request,
        "ingest.html",
        visitor,
        status_code=status_code,
        jobs=jobs,
        refresh_s=JOBS_REFRESH_S if busy else None,
        max_files=MAX_UPLOAD_FILES,
        roots=[str(root) for root in engine_of(request).settings.ingest_roots],
        error=error,
    )


@router.get("/ingest", response_class=HTMLResponse)
def ingest_page(request: Request, visitor: Annotated[Visitor, Depends(signed_in(Role.ADMIN))]) -> HTMLResponse:
    page = _jobs_page(request, visitor)
    audited_read(request, visitor.user, AuditAction.LIST_JOBS, "ingest_jobs")  # folded: the page reloads itself
    return page


@router.post("/ingest", response_model=None)
def upload(
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.ADMIN))],
    photos: Annotated[list[UploadFile] | None, File()] = None,
    manifest: Annotated[UploadFile | None, File()] = None,
    label: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Upload photos as one background ingest job (the API's POST /ingest/jobs), with a manifest giving each photo
    its label and provenance or without one, then back to the jobs list."""
    check_csrf(visitor, csrf_token)
    chosen = [photo for photo in photos or [] if photo.filename]
    try:
        uploads = collect_uploads(chosen)
        text = form_text(label, "label", MAX_LABEL), form_text(legal_basis, "legal_basis")
        if manifest is not None and manifest.filename:
            _jobs(request).submit_manifest_upload(visitor.user, read_manifest(manifest), uploads, *text)
        else:
            _jobs(request).submit_uploads(visitor.user, uploads, *text)
    except InvalidRequestError as exc:
        return _jobs_page(request, visitor, status_code=422, error=str(exc))
    return redirect("/ingest")


@router.post("/ingest/server", response_model=None)
def ingest_server_path(
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.ADMIN))],
    path: Annotated[str, Form(max_length=MAX_FILE_NAME)] = "",
    kind: Annotated[str, Form(max_length=16)] = "folder",
    label: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """A folder or manifest on the server, inside the ingest roots (confined as the API's: server/jobs.py)."""
    check_csrf(visitor, csrf_token)
    try:
        where = form_text(path, "the path")
        if where is None:
            raise InvalidRequestError("name a folder or manifest on the server")
        if kind not in ("folder", "manifest"):
            raise InvalidRequestError("choose a folder or a manifest")
        text = form_text(label, "label", MAX_LABEL), form_text(legal_basis, "legal_basis")
        _jobs(request).submit_path(visitor.user, where, manifest=kind == "manifest", label=text[0], legal_basis=text[1])
    except (InvalidRequestError, PermissionDeniedError) as exc:
        # Outside the ingest roots: the form's mistake, shown on the page beside the roots (422, so that a 403 still
        # means a role refused), and recorded as a denial as the API's 403 is.
        if isinstance(exc, PermissionDeniedError):
            record_denial(request, engine_of(request).audit, str(exc))
        return _jobs_page(request, visitor, status_code=422, error=str(exc))
    return redirect("/ingest")


@router.post("/cases/{case_id}/close", response_model=None)
def close_case(
    case_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(Role.INVESTIGATOR))],
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(visitor, csrf_token)
    engine_of(request).cases.close_case(visitor.user, case_id, reason)
    return redirect(f"/cases/{case_id}")


@router.get("/cases/{case_id}/report.pdf")
def report_pdf(
    case_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(signed_in(*VIEWERS))],
    include: ReportInclude = None,
) -> Response:
    report = gather_report(
        engine_of(request), visitor.user, probes_of(request), case_id, "pdf", include_unreviewed=bool(include)
    )
    return pdf_response(render_pdf(report), case_id)
