"""Ingest over HTTP as background jobs: upload photos, or name a folder or manifest inside the server's ingest roots.

Admins only: adding people to the gallery changes whom every later search can find, which is the gallery's
operator's decision, not an investigator's. Starting and finishing a job are audited (ingest_job,
ingest_job_finished).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from facetrace.core.errors import InvalidRequestError, NotFoundError
from facetrace.core.limits import MAX_FILE_NAME, MAX_LABEL, MAX_TEXT, bounded
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.server.api.common import read_upload
from facetrace.server.auth import require
from facetrace.server.jobs import MAX_UPLOAD_FILES, MAX_UPLOAD_TOTAL_BYTES, JobQueue, Upload
from facetrace.server.reads import audited_read
from facetrace.server.schemas import IngestJobOut

router = APIRouter(tags=["ingest"])
_admin = require(Role.ADMIN)


def job_queue(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


def form_text(value: str | None, what: str, limit: int = MAX_TEXT) -> str | None:
    """A form field as stored: stripped, None when blank, at most limit characters; NUL characters are refused
    (PostgreSQL text cannot hold them, and a job would fail half-way)."""
    if value and "\x00" in value:
        raise InvalidRequestError(f"{what} cannot contain a NUL character")
    stripped = (value or "").strip()
    return bounded(stripped, what, limit) or None


def collect_uploads(photos: list[UploadFile]) -> list[Upload]:
    """The uploaded photos, refused as soon as there are too many or they add up to too much (before all are held
    in memory)."""
    if len(photos) > MAX_UPLOAD_FILES:
        raise InvalidRequestError(f"at most {MAX_UPLOAD_FILES} photos per job, not {len(photos)}")
    uploads, total = [], 0
    for photo in photos:
        data, name = read_upload(photo, "a photo")
        total += len(data)
        if total > MAX_UPLOAD_TOTAL_BYTES:
            raise InvalidRequestError(f"at most {MAX_UPLOAD_TOTAL_BYTES:,} bytes of photos per job")
        uploads.append(Upload(name, data))
    return uploads


def read_manifest(upload: UploadFile) -> Upload:
    data, name = read_upload(upload, "a manifest")
    return Upload(name, data)


@router.post("/ingest/jobs", response_model=IngestJobOut, status_code=202)
def start_job(
    request: Request,
    user: Annotated[User, Depends(_admin)],
    photos: Annotated[
        list[UploadFile] | None, File(description=f"Photos to upload and ingest (at most {MAX_UPLOAD_FILES}).")
    ] = None,
    path: Annotated[
        str | None,
        Form(max_length=MAX_FILE_NAME, description="A folder or file on the server, inside the ingest roots."),
    ] = None,
    manifest: Annotated[
        str | None,
        Form(
            max_length=MAX_FILE_NAME,
            description="A CSV/JSONL manifest on the server; every row must be inside the roots.",
        ),
    ] = None,
    manifest_file: Annotated[
        UploadFile | None,
        File(
            description="A CSV/TSV/JSONL manifest sent with the photos: each row names one of them by file name and "
            "gives its label, source_page, captured_at, legal_basis, face_index or face_box."
        ),
    ] = None,
    label: Annotated[
        str | None, Form(max_length=MAX_LABEL, description="Who the photos show (for rows without their own).")
    ] = None,
    legal_basis: Annotated[
        str | None, Form(max_length=MAX_TEXT, description="Why these photos may be held and searched.")
    ] = None,
) -> IngestJobOut:
    """Queue an ingest of exactly one of: uploaded photos (with a manifest_file giving each its provenance, or
    without), a server path, a server manifest. Answers 202 with the job at once; GET /ingest/jobs/{job_id} reports
    its progress. A path or manifest outside FACETRACE_INGEST_ROOTS is refused (403); a manifest_file row naming no
    uploaded photo, or a photo no row names, refuses the job (422, naming them)."""
    chosen = [name for name, value in (("photos", photos), ("path", path), ("manifest", manifest)) if value]
    if len(chosen) != 1:
        raise InvalidRequestError("send exactly one of: photos (files), path, manifest")
    if manifest_file is not None and not photos:
        raise InvalidRequestError("a manifest_file comes with the photos it names")
    jobs = job_queue(request)
    label, legal_basis = form_text(label, "label", MAX_LABEL), form_text(legal_basis, "legal_basis")
    if photos and manifest_file is not None:
        job = jobs.submit_manifest_upload(
            user, read_manifest(manifest_file), collect_uploads(photos), label, legal_basis
        )
    elif photos:
        job = jobs.submit_uploads(user, collect_uploads(photos), label, legal_basis)
    else:
        where = path or manifest or ""
        job = jobs.submit_path(user, where, manifest=bool(manifest), label=label, legal_basis=legal_basis)
    return IngestJobOut.model_validate(job)


@router.get("/ingest/jobs", response_model=list[IngestJobOut])
def list_jobs(request: Request, user: Annotated[User, Depends(_admin)]) -> list[IngestJobOut]:
    """This server process's jobs, newest first (a restart forgets them; the catalog keeps their runs)."""
    jobs = job_queue(request).jobs()
    audited_read(request, user, AuditAction.LIST_JOBS, "ingest_jobs", jobs=len(jobs))
    return [IngestJobOut.model_validate(job) for job in jobs]


@router.get("/ingest/jobs/{job_id}", response_model=IngestJobOut)
def get_job(job_id: str, request: Request, user: Annotated[User, Depends(_admin)]) -> IngestJobOut:
    job = job_queue(request).job(job_id)
    if job is None:
        raise NotFoundError(f"no ingest job {job_id}")
    audited_read(request, user, AuditAction.VIEW_JOB, f"job:{job.job_id}")
    return IngestJobOut.model_validate(job)
