"""Ingest as background jobs for the HTTP API and the web UI: queued, run one at a time on a worker thread, with
progress from the ingest runner.

Why one at a time: ingest already uses every core through its worker processes (Settings.workers); two jobs at once
would only compete. Why a thread of the server process: the index the API searches is the engine's, in this
process; the engine takes its lock for each batch's write (never for the models), so searches run between batches and
see each batch's faces as soon as it is stored.

Jobs live in memory (the newest MAX_JOBS_KEPT): a restart forgets them, while the catalog keeps each job's ingest run
(run_id), its per-file errors and, for uploads, the files under <data>/uploads/<job id>/. Server-side paths and
manifests are confined to Settings.ingest_roots: the folder or manifest asked for, and every file it yields (each
manifest row, each file under a folder, after following symlinks), must resolve inside one; a manifest row outside
them, or naming a URL, is refused as an error of the job and never read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from facetrace.core.errors import FacetraceError, InvalidRequestError, ManifestError, PermissionDeniedError
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, JobKind, JobStatus
from facetrace.engine import Engine
from facetrace.ingest.runner import MAX_ERROR_MESSAGES_KEPT, IngestProgress
from facetrace.ingest.sources import SourceItem, iter_manifest, iter_paths

log = logging.getLogger(__name__)

MAX_JOBS_KEPT = 200
# An upload job holds at most this many photos: a browser form or a script can send more jobs, and a bounded job
# keeps its progress meaningful and its upload folder small.
MAX_UPLOAD_FILES = 100
MAX_UPLOAD_TOTAL_BYTES = 512 * 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STORED_NAME_CHARS = 100
MANIFEST_SUFFIXES = frozenset({".csv", ".tsv", ".jsonl", ".ndjson"})
MAX_MANIFEST_ROWS = 10 * MAX_UPLOAD_FILES  # a photo may have several rows (one per labelled face)
STOPPED_MESSAGE = "the server stopped; submit the job again to finish it (images already stored are skipped)"


@dataclass(frozen=True)
class Upload:
    """One uploaded photo: its original file name (provenance) and bytes."""

    name: str
    data: bytes


@dataclass
class IngestJob:
    job_id: str
    kind: JobKind
    sources: list[str]  # what was asked for: original file names, or the path or manifest
    started_by: str
    created_at: datetime
    label: str | None = None
    legal_basis: str | None = None
    status: JobStatus = JobStatus.QUEUED
    files_total: int | None = None  # known ahead for uploads only
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: int | None = None
    images_seen: int = 0
    images_added: int = 0
    images_skipped: int = 0
    faces_added: int = 0
    faces_suppressed: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    message: str = ""  # why a failed job failed
    refused: int = 0  # files refused unread (outside the ingest roots): errors, and seen as far as progress goes
    cut_short: bool = False  # the server stopped before the job had read all its images

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> int | None:
        """Progress in percent when the number of files is known ahead (uploads), else None."""
        if self.files_total is None:
            return None
        if self.finished:
            return 100
        return min(100, round(100 * (self.images_seen + self.refused) / max(1, self.files_total)))


def confine(path: str | Path, roots: Sequence[Path]) -> Path:
    """path resolved (symlinks followed), if inside one of roots; else PermissionDeniedError. A server must not
    ingest whatever file a caller names."""
    if not roots:
        raise PermissionDeniedError(
            "ingest from server paths is disabled: set FACETRACE_INGEST_ROOTS to the folders it may read"
        )
    text = str(path)
    if "\x00" in text:
        raise InvalidRequestError("a path cannot contain a NUL character")
    if "://" in text:
        raise PermissionDeniedError(f"{text}: only files inside the ingest roots can be ingested, not URLs")
    resolved = Path(text).expanduser().resolve()
    for root in roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            return resolved
    raise PermissionDeniedError(f"{text} is outside the ingest roots")


def _upload_key(name: str) -> str:
    """How a manifest row and an uploaded file are matched: the name with forward slashes, case kept."""
    key = name.replace("\\", "/").strip()
    while key.startswith("./"):
        key = key[2:]
    return key


def _row_name(uri: str, folder: Path) -> str | None:
    """The name a manifest row gave, relative to the upload's folder (rows are relative to the manifest); None for a
    URL or a path outside the folder, which can name no uploaded photo."""
    if "://" in uri:
        return None
    try:
        return Path(uri).relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


def stored_name(number: int, original: str) -> str:
    """The upload's file name on disk: numbered (two photos may share a name) and stripped of path parts and
    unusual characters; the original name is kept as provenance in the catalog."""
    base = _UNSAFE_NAME.sub("_", Path(original.replace("\\", "/")).name).strip("._") or "photo"
    return f"{number:04d}_{base[-MAX_STORED_NAME_CHARS:]}"


class JobQueue:
    """The server's ingest jobs: submit returns at once; one worker thread runs them in order."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._jobs: dict[str, IngestJob] = {}
        self._lock = threading.Lock()  # guards _jobs and every job's fields
        self._queue: queue.Queue[tuple[IngestJob, Callable[[], Iterable[SourceItem]]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()

    # -- submitting -------------------------------------------------------------------------------------------------

    def submit_uploads(
        self, user: User, uploads: Sequence[Upload], label: str | None = None, legal_basis: str | None = None
    ) -> IngestJob:
        """Write the photos to <data>/uploads/<job id>/ and queue their ingest, each with its original name and
        uploader as provenance (the asset's extra metadata)."""
        self._check_upload_bounds(uploads)
        job = self._new_job(user, JobKind.UPLOAD, [u.name for u in uploads], label, legal_basis)
        job.files_total = len(uploads)
        folder = self._engine.settings.uploads_dir / job.job_id
        folder.mkdir(parents=True, exist_ok=False)
        items = []
        for number, upload in enumerate(uploads, start=1):
            path = folder / stored_name(number, upload.name)
            path.write_bytes(upload.data)
            extra = {"original_filename": upload.name, "uploaded_by": user.name, "ingest_job": job.job_id}
            items.append(SourceItem(uri=str(path), label=label, legal_basis=legal_basis, extra=extra))
        return self._enqueue(job, lambda: items)

    def submit_manifest_upload(
        self,
        user: User,
        manifest: Upload,
        photos: Sequence[Upload],
        label: str | None = None,
        legal_basis: str | None = None,
    ) -> IngestJob:
        """A manifest (CSV/TSV/JSONL, as `facetrace ingest --manifest` reads) uploaded with the photos it names: each
        row gives its photo's label, source page, capture date, legal basis and subject face; label and legal_basis
        fill a row that has none. Each row names one uploaded photo by its file name (relative, as the row is
        relative to the manifest's folder); a row naming anything else, or a photo no row names, refuses the whole
        job before anything is queued, naming them."""
        suffix = Path(manifest.name).suffix.lower()
        if suffix not in MANIFEST_SUFFIXES:
            raise InvalidRequestError(
                f"{manifest.name}: a manifest ends in {', '.join(sorted(MANIFEST_SUFFIXES))} (CSV, TSV or JSON lines)"
            )
        self._check_upload_bounds(photos)
        job = self._new_job(user, JobKind.MANIFEST, [manifest.name, *(u.name for u in photos)], label, legal_basis)
        job.files_total = len(photos)
        folder = self._engine.settings.uploads_dir / job.job_id
        folder.mkdir(parents=True, exist_ok=False)
        try:
            items = self._manifest_items(user, job, folder, manifest, photos, suffix)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._enqueue(job, lambda: items)

    def _manifest_items(
        self, user: User, job: IngestJob, folder: Path, manifest: Upload, photos: Sequence[Upload], suffix: str
    ) -> list[SourceItem]:
        """The manifest's rows pointed at the stored photos (refused, naming them: a row that names no uploaded photo,
        a photo no row names)."""
        written = folder / f"manifest{suffix}"
        written.write_bytes(manifest.data)
        by_name: dict[str, int] = {}
        for number, upload in enumerate(photos):
            for key in dict.fromkeys((_upload_key(upload.name), _upload_key(Path(upload.name).name))):
                by_name[key] = number if key not in by_name else -1  # -1: two photos share it
        rows: list[tuple[SourceItem, int]] = []
        missing: list[str] = []
        try:
            for line, item in enumerate(iter_manifest(written), start=1):
                if len(rows) >= MAX_MANIFEST_ROWS:
                    raise InvalidRequestError(f"{manifest.name}: at most {MAX_MANIFEST_ROWS} rows per job")
                row_name = _row_name(item.uri, folder)
                number = by_name.get(row_name, by_name.get(Path(row_name).name, -2)) if row_name else -2
                if number < 0:
                    # As the row wrote it (relative to the manifest), never the server's own path.
                    shown = row_name or (item.uri if "://" in item.uri else os.path.relpath(item.uri, folder.resolve()))
                    why = "two uploaded photos have that name" if number == -1 else "no uploaded photo has that name"
                    missing.append(f"row {line} names {shown!r}: {why}")
                else:
                    rows.append((item, number))
        except ManifestError as exc:
            raise InvalidRequestError(str(exc).replace(str(written), manifest.name)) from exc
        named = {number for _, number in rows}
        unnamed = [upload.name for number, upload in enumerate(photos) if number not in named]
        problems = missing[:20] + ([f"photos no row names: {', '.join(unnamed[:20])}"] if unnamed else [])
        if problems:
            raise InvalidRequestError(f"{manifest.name}: " + "; ".join(problems))
        paths = []
        for number, upload in enumerate(photos, start=1):
            path = folder / stored_name(number, upload.name)
            path.write_bytes(upload.data)
            paths.append(path)
        provenance = {"uploaded_by": user.name, "ingest_job": job.job_id, "manifest": manifest.name}
        return [
            dataclasses.replace(
                item,
                uri=str(paths[number]),
                label=item.label or job.label,
                legal_basis=item.legal_basis or job.legal_basis,
                extra={**item.extra, "original_filename": photos[number].name, **provenance},
            )
            for item, number in rows
        ]

    def submit_path(
        self,
        user: User,
        path: str,
        *,
        manifest: bool,
        label: str | None = None,
        legal_basis: str | None = None,
    ) -> IngestJob:
        """Queue the ingest of a server folder or file (or a manifest, whose rows bring their own provenance),
        inside the ingest roots."""
        roots = self._engine.settings.ingest_roots
        resolved = confine(path, roots)
        if not resolved.exists():
            raise InvalidRequestError(f"{path}: no such file or folder")
        if manifest and not resolved.is_file():
            raise InvalidRequestError(f"{path}: a manifest is a file")
        kind = JobKind.MANIFEST if manifest else JobKind.PATH
        job = self._new_job(user, kind, [str(resolved)], label, legal_basis)

        def items() -> Iterator[SourceItem]:
            source = iter_manifest(resolved) if manifest else iter_paths([resolved])
            for item in source:
                if label is None and legal_basis is None:
                    yield item
                else:
                    yield dataclasses.replace(
                        item, label=item.label or label, legal_basis=item.legal_basis or legal_basis
                    )

        return self._enqueue(job, lambda: self._confined(job, items(), roots))

    @staticmethod
    def _check_upload_bounds(uploads: Sequence[Upload]) -> None:
        if not uploads:
            raise InvalidRequestError("upload at least one photo")
        if len(uploads) > MAX_UPLOAD_FILES:
            raise InvalidRequestError(f"at most {MAX_UPLOAD_FILES} photos per job, not {len(uploads)}")
        total = sum(len(upload.data) for upload in uploads)
        if total > MAX_UPLOAD_TOTAL_BYTES:
            raise InvalidRequestError(f"at most {MAX_UPLOAD_TOTAL_BYTES:,} bytes per job, not {total:,}")

    # -- reading ----------------------------------------------------------------------------------------------------

    def jobs(self) -> list[IngestJob]:
        """Snapshots of every kept job, newest first."""
        with self._lock:
            return [dataclasses.replace(job, error_messages=list(job.error_messages)) for job in self._newest_first()]

    def job(self, job_id: str) -> IngestJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else dataclasses.replace(job, error_messages=list(job.error_messages))

    def wait(self, job_id: str, timeout: float) -> IngestJob | None:
        """The job once it has finished (or as it is when timeout seconds have passed); for tests and scripts."""
        with self._idle:
            self._idle.wait_for(lambda: job_id not in self._jobs or self._jobs[job_id].finished, timeout)
        return self.job(job_id)

    def stop(self, timeout: float) -> None:
        """On server shutdown: queued jobs fail without starting, the running one stops reading new images and ends
        after its current batch (stored, indexed, its run closed), waiting at most timeout seconds for it."""
        self._stopping.set()
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)  # wakes an idle worker so that it can end
            worker.join(timeout)

    # -- running ----------------------------------------------------------------------------------------------------

    def _new_job(
        self, user: User, kind: JobKind, sources: list[str], label: str | None, legal_basis: str | None
    ) -> IngestJob:
        now = datetime.now(UTC)
        job_id = f"job_{now:%Y%m%dT%H%M%S}_{secrets.token_hex(4)}"
        return IngestJob(job_id, kind, sources, user.name, now, label or None, legal_basis or None)

    def _enqueue(self, job: IngestJob, items: Callable[[], Iterable[SourceItem]]) -> IngestJob:
        if self._stopping.is_set():
            raise InvalidRequestError("the server is stopping: no new ingest jobs")
        shown = job.sources[:20]
        self._engine.audit.record(
            job.started_by,
            AuditAction.INGEST_JOB,
            f"ingest_job:{job.job_id}",
            kind=job.kind,
            sources=shown,
            sources_total=len(job.sources),
            label=job.label,
            legal_basis=job.legal_basis,
        )
        with self._lock:
            self._jobs[job.job_id] = job
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="facetrace-ingest-jobs", daemon=True)
                self._worker.start()
        self._queue.put((job, items))
        return self.job(job.job_id) or job

    def _work(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                if self._stopping.is_set() and self._queue.empty():
                    return
                continue
            job, items = entry
            try:
                if self._stopping.is_set():
                    self._finish(job, JobStatus.FAILED, STOPPED_MESSAGE)
                else:
                    self._run(job, items)
            except Exception:  # the worker must survive any one job
                log.exception("ingest job %s crashed", job.job_id)

    def _run(self, job: IngestJob, items: Callable[[], Iterable[SourceItem]]) -> None:
        with self._lock:
            job.status, job.started_at = JobStatus.RUNNING, datetime.now(UTC)
        status, message = JobStatus.FAILED, ""
        try:
            summary = self._engine.ingest.run(
                items=self._until_stopped(job, items()),
                progress=lambda progress: self._progress(job, progress),
                description=f"{job.job_id} ({job.kind}) by {job.started_by}",
            )
            with self._lock:
                job.run_id = summary.run_id
                self._copy_counts(job, summary.images_seen, summary.images_added, summary.images_skipped)
                job.faces_added = summary.faces_added
                job.faces_suppressed = summary.source_counts.get("suppressed_faces", 0)
                job.errors = job.refused + summary.errors
                _keep_messages(job, summary.error_messages)
            status = JobStatus.DONE
            if job.cut_short:
                status, message = JobStatus.FAILED, STOPPED_MESSAGE
        except FacetraceError as exc:
            message = str(exc)
        except Exception as exc:
            log.exception("ingest job %s failed", job.job_id)
            message = f"unexpected error: {type(exc).__name__}; the server log has details"
        finally:
            self._finish(job, status, message)

    def _finish(self, job: IngestJob, status: JobStatus, message: str) -> None:
        with self._idle:
            job.status, job.message, job.finished_at = status, message, datetime.now(UTC)
            self._idle.notify_all()
        self._engine.audit.record(
            job.started_by,
            AuditAction.INGEST_JOB_FINISHED,
            f"ingest_job:{job.job_id}",
            status=status,
            run_id=job.run_id,
            images_added=job.images_added,
            faces_added=job.faces_added,
            errors=job.errors,
            message=message,
        )

    def _until_stopped(self, job: IngestJob, items: Iterable[SourceItem]) -> Iterator[SourceItem]:
        for item in items:
            if self._stopping.is_set():
                job.cut_short = True
                return
            yield item

    def _progress(self, job: IngestJob, progress: IngestProgress) -> None:
        with self._lock:
            self._copy_counts(job, progress.images_seen, progress.images_added, progress.images_skipped)
            job.faces_added = progress.faces_added
            job.faces_suppressed = progress.faces_suppressed
            job.errors = job.refused + progress.errors
            _keep_messages(job, progress.error_messages)

    def _confined(self, job: IngestJob, items: Iterable[SourceItem], roots: Sequence[Path]) -> Iterator[SourceItem]:
        """The items inside the roots; each other one is an error of the job, never read."""
        for item in items:
            try:
                confine(item.uri, roots)
            except PermissionDeniedError as exc:
                with self._lock:
                    job.refused += 1
                    job.errors += 1
                    if len(job.error_messages) < MAX_ERROR_MESSAGES_KEPT:
                        job.error_messages.append(f"refused: {exc}")
                continue
            yield item

    @staticmethod
    def _copy_counts(job: IngestJob, seen: int, added: int, skipped: int) -> None:
        job.images_seen, job.images_added, job.images_skipped = seen, added, skipped

    def _newest_first(self) -> list[IngestJob]:
        return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def _forget_old(self) -> None:
        for job in self._newest_first()[MAX_JOBS_KEPT:]:
            if job.finished:
                del self._jobs[job.job_id]


def _keep_messages(job: IngestJob, runner_messages: Sequence[str]) -> None:
    """The job's own refusals first, then the runner's per-file errors (the runner's list grows as it goes)."""
    refused = [m for m in job.error_messages if m.startswith("refused: ")]
    job.error_messages = [*refused, *runner_messages][:MAX_ERROR_MESSAGES_KEPT]
