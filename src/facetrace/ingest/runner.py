"""The ingest use case: hash, skip known, analyse in parallel, store, index — resumable and batched.

Order of writes for each image: thumbnails (files named by content hash, harmless if orphaned), then the catalog in
one transaction (the source of truth), then the index (derived). A process killed at any point leaves at worst
faces in the catalog that the index lacks; the engine reconciles the two when it opens, and a re-run skips every
image whose content hash the catalog already holds, so nothing is lost or duplicated.

Where the models run is a BatchAnalysis: this process, local worker processes, or Ray actors
(facetrace.ingest.ray_runner). Reading, deduplication and every write stay here whatever runs the models.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from facetrace.core.errors import FacetraceError, StorageFullError, is_out_of_space
from facetrace.core.ports import Catalog, DataGuard, FaceAnalyzer, SuppressionCheck, Unguarded, VectorIndex
from facetrace.core.subject import decide_subject
from facetrace.core.types import AnalyzedFace, AnalyzedImage, IngestSummary, MediaAsset, SubjectChoice
from facetrace.core.vocabulary import RunStatus, SubjectAttribution
from facetrace.ingest.sources import SourceItem

log = logging.getLogger(__name__)

AnalyzerFactory = Callable[[], FaceAnalyzer]
INDEX_CHECKPOINT_INTERVAL_S = 60.0
MAX_ERROR_MESSAGES_KEPT = 200
# Batches queued per worker: one being analysed, one waiting, so no worker idles while the driver stores results.
IN_FLIGHT_PER_WORKER = 2
# Said after a full disk stopped a run: what the same command does when it runs again.
RESUME_HINT = "; images already stored are skipped"
TEMPORARY_SUFFIX = ".tmp"
# Space a run sets aside in the thumbnails folder and releases at its end, so that a run stopped by a full disk can
# still record itself interrupted (a few SQLite pages; the index is saved by the next open if it does not fit).
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 512 * 1024


@dataclass
class IngestProgress:
    """Counts so far; passed to the progress callback after every batch."""

    images_seen: int = 0
    images_added: int = 0
    images_skipped: int = 0
    faces_added: int = 0
    errors: int = 0
    error_messages: list[str] = field(default_factory=list)
    faces_suppressed: int = 0  # matched an erased person's embedding: not stored
    images_suppressed: int = 0  # every face of the image was suppressed: the image was not stored
    unattributed_labels: int = 0  # labelled images whose label went to no face (core/subject.py)


@dataclass(frozen=True)
class _Pending:
    item: SourceItem
    sha256: str
    data: bytes


def thumbnail_relpath(sha256: str, face_number: int) -> str:
    """Where a face crop lives under the thumbnails folder: derived from content, so a re-run rewrites, not adds."""
    return f"{sha256[:2]}/{sha256}_{face_number}.jpg"


Tag = TypeVar("Tag")  # what the runner attaches to a batch to find it again when its results come back
ImageBatch = Sequence[tuple[bytes, str]]
BatchResults = Sequence[AnalyzedImage | Exception]


class BatchAnalysis(Protocol):
    """Runs the analyzer over batches of (bytes, uri) somewhere and hands back each batch's results with its tag.

    Implementations pull batches lazily and keep a bounded number in flight, so memory stays bounded whatever the
    source's size (back-pressure); results may come back in any order. map is a generator: closing it releases the
    workers it started.
    """

    def map(self, batches: Iterable[tuple[Tag, ImageBatch]]) -> Generator[tuple[Tag, BatchResults]]: ...


class LocalAnalysis:
    """One analyzer in this process, built on first use and kept for later runs."""

    def __init__(self, factory: AnalyzerFactory) -> None:
        self._factory = factory
        self._analyzer: FaceAnalyzer | None = None

    def map(self, batches: Iterable[tuple[Tag, ImageBatch]]) -> Generator[tuple[Tag, BatchResults]]:
        for tag, batch in batches:
            if self._analyzer is None:
                self._analyzer = self._factory()
            yield tag, self._analyzer.analyze_batch(batch)


# One analyzer per worker process, built once by the pool's initializer.
_worker_analyzer: FaceAnalyzer | None = None


# How often a worker looks whether its parent is still there (where the OS cannot tell it: not Linux).
PARENT_WATCH_INTERVAL_S = 1.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """End this process when parent_pid does, however it ends (SIGKILL included): on Linux the kernel sends SIGKILL
    (prctl PR_SET_PDEATHSIG); everywhere a daemon thread also exits once the parent has gone. Without this, a killed
    ingest left its worker processes (and multiprocessing's resource tracker, which waits for them) running."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            log.debug("prctl(PR_SET_PDEATHSIG) is unavailable; watching the parent instead")
    if os.getppid() != parent_pid:  # the parent died before the line above could take effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_WATCH_INTERVAL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="facetrace-parent-watch", daemon=True).start()


def _init_worker(factory: AnalyzerFactory, parent_pid: int) -> None:
    global _worker_analyzer
    die_with_parent(parent_pid)
    _worker_analyzer = factory()


def _analyze_in_worker(items: ImageBatch) -> list[AnalyzedImage | Exception]:
    assert _worker_analyzer is not None, "worker initializer did not run"
    return _worker_analyzer.analyze_batch(items)


class ProcessPoolAnalysis:
    """Worker processes on this machine, one analyzer each (with the settings' inference threads)."""

    def __init__(self, factory: AnalyzerFactory, workers: int) -> None:
        self._factory = factory
        self._workers = max(1, workers)

    def map(self, batches: Iterable[tuple[Tag, ImageBatch]]) -> Generator[tuple[Tag, BatchResults]]:
        # spawn, not fork: inference runtimes keep thread pools that do not survive a fork.
        context = get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._factory, os.getpid()),
        ) as pool:
            in_flight: deque[tuple[Tag, Future[list[AnalyzedImage | Exception]]]] = deque()
            for tag, batch in batches:
                in_flight.append((tag, pool.submit(_analyze_in_worker, batch)))
                # Back-pressure: at most two batches per worker in flight bounds memory whatever the source size.
                while len(in_flight) >= IN_FLIGHT_PER_WORKER * self._workers:
                    done_tag, future = in_flight.popleft()
                    yield done_tag, future.result()
            while in_flight:
                done_tag, future = in_flight.popleft()
                yield done_tag, future.result()


class IngestRunner:
    def __init__(
        self,
        analyzer_factory: AnalyzerFactory,
        catalog: Catalog,
        index: VectorIndex,
        thumbnails_dir: Path,
        *,
        model_id: str,
        workers: int = 1,
        batch_size: int = 32,
        progress: Callable[[IngestProgress], None] | None = None,
        suppression: SuppressionCheck | None = None,
        analysis: BatchAnalysis | None = None,
        guard: DataGuard | None = None,
    ) -> None:
        """analysis says where the models run; without it, this process (workers=1) or local worker processes.
        guard: the run holds its session (the data directory's writer lock) and each batch's store takes writing(),
        never the analysis, so searches in the same process continue between batches."""
        self._guard = guard or Unguarded()
        self._catalog = catalog
        self._index = index
        self._thumbnails_dir = thumbnails_dir
        self._model_id = model_id
        self._batch_size = max(1, batch_size)
        self._progress = progress
        if analysis is None:
            analysis = (
                LocalAnalysis(analyzer_factory) if workers <= 1 else ProcessPoolAnalysis(analyzer_factory, workers)
            )
        self._analysis = analysis
        # Erased people's embeddings: a matching face is dropped before anything of it is written.
        self._suppression = suppression
        # Content read in this run and not yet stored (waiting for a batch, or out for analysis): a repeat of it is
        # skipped at once, so the first occurrence is the one stored even when results come back out of order.
        self._unstored: set[str] = set()

    def run(self, items: Iterable[SourceItem], description: str) -> IngestSummary:
        """Ingest items in one run. A full disk raises StorageFullError (one line: where, what, and to run the same
        command again) after the run is marked interrupted where the catalog can still take that."""
        with self._guard.session(description):
            try:
                return self._run(items, description)
            except StorageFullError as exc:
                raise StorageFullError(exc.where, exc.what, RESUME_HINT) from exc

    def _run(self, items: Iterable[SourceItem], description: str) -> IngestSummary:
        resuming = self._previous_run_unfinished()
        run_id = self._catalog.start_run(description, self._model_id)
        if resuming:
            sweep_temporary_thumbnails(self._thumbnails_dir)
        self._hold_reserve()
        state = IngestProgress()
        try:
            self._run_batches(run_id, items, state)
        except BaseException:
            self._finish(run_id, RunStatus.INTERRUPTED, state, description, failed=True)
            raise
        self._finish(run_id, RunStatus.FINISHED, state, description, failed=False)
        return IngestSummary(
            run_id=run_id,
            images_seen=state.images_seen,
            images_added=state.images_added,
            images_skipped=state.images_skipped,
            faces_added=state.faces_added,
            errors=state.errors,
            error_messages=tuple(state.error_messages),
            source_counts={
                key: value
                for key, value in (
                    ("suppressed_faces", state.faces_suppressed),
                    ("suppressed_images", state.images_suppressed),
                )
                if value
            },
            unattributed_labels=state.unattributed_labels,
        )

    def _finish(self, run_id: int, status: RunStatus, state: IngestProgress, description: str, failed: bool) -> None:
        """Save the index and record how the run ended. When the run already failed (failed=True), the run is
        recorded interrupted first (a few bytes, where the index may not fit on a full disk), a failure here is
        logged and the run's own error goes on. Otherwise a failed save marks the run interrupted and is raised."""
        self._release_reserve()
        stats = {
            "images_seen": state.images_seen,
            "images_added": state.images_added,
            "images_skipped": state.images_skipped,
            "faces_added": state.faces_added,
            "errors": state.errors,
            "unattributed_labels": state.unattributed_labels,
            # Faces (and whole images) of erased people met again and not stored: the transparency report counts them.
            "faces_suppressed": state.faces_suppressed,
            "images_suppressed": state.images_suppressed,
        }
        if failed:
            self._record_end(run_id, status, stats, raising=False)
        try:
            with self._guard.writing(description):
                self._index.save()
        except Exception as exc:
            if failed:
                log.info("ingest run %d: the index was not saved (the next open catches up): %s", run_id, exc)
                return
            self._record_end(run_id, RunStatus.INTERRUPTED, stats, raising=False)
            raise
        if not failed:
            self._record_end(run_id, status, stats, raising=True)

    def _record_end(self, run_id: int, status: RunStatus, stats: dict[str, int], *, raising: bool) -> None:
        try:
            self._catalog.finish_run(run_id, status, stats)
        except Exception as exc:
            if raising:
                raise
            # The process ends with the run's error, so the next command that opens the catalog marks it interrupted.
            log.info("ingest run %d could not be marked %s: %s", run_id, status, exc)

    def _hold_reserve(self) -> None:
        """Set aside a little space on the data directory's disk for the run's end: if the disk fills up during the
        run, releasing it lets the catalog record the run as interrupted. Best effort: a disk already full holds
        none, and the next open marks the run interrupted then."""
        reserve = self._thumbnails_dir / RESERVE_NAME
        try:
            reserve.parent.mkdir(parents=True, exist_ok=True)
            with reserve.open("wb") as handle:
                handle.write(bytes(RESERVE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            log.info("no space set aside for the run's end: %s", exc)

    def _release_reserve(self) -> None:
        (self._thumbnails_dir / RESERVE_NAME).unlink(missing_ok=True)

    def _previous_run_unfinished(self) -> bool:
        """Whether the run before this one ended without finishing: its temporary files may have stayed behind."""
        earlier = self._catalog.runs()
        return bool(earlier) and earlier[0].status != RunStatus.FINISHED

    def _run_batches(self, run_id: int, items: Iterable[SourceItem], state: IngestProgress) -> None:
        last_checkpoint = time.monotonic()
        self._unstored.clear()  # left over if an earlier run of this runner was interrupted
        batches = self._pending_batches(run_id, iter(items), state)
        tagged = ((batch, [(p.data, p.item.uri) for p in batch]) for batch in batches)
        with closing(self._analysis.map(tagged)) as results:
            for batch, analysed in results:
                with self._guard.writing(f"ingest run {run_id}"):
                    self._store(run_id, batch, analysed, state)
                    last_checkpoint = self._checkpoint(last_checkpoint)

    def _checkpoint(self, last: float) -> float:
        now = time.monotonic()
        if now - last < INDEX_CHECKPOINT_INTERVAL_S:
            return last
        self._index.save()
        return now

    def _pending_batches(
        self, run_id: int, items: Iterator[SourceItem], state: IngestProgress
    ) -> Iterator[list[_Pending]]:
        """Read and hash images, dropping those the catalog already has or this run has read and not yet stored."""
        pending: list[_Pending] = []
        while chunk := list(islice(items, self._batch_size)):
            read: list[_Pending] = []
            for item in chunk:
                state.images_seen += 1
                try:
                    data = item.read()
                except FacetraceError as exc:
                    self._error(run_id, item.uri, str(exc), state)
                    continue
                read.append(_Pending(item, hashlib.sha256(data).hexdigest(), data))
            known = self._catalog.known_sha256([p.sha256 for p in read])
            for p in read:
                if p.sha256 in known or p.sha256 in self._unstored:
                    state.images_skipped += 1
                    continue
                self._unstored.add(p.sha256)
                pending.append(p)
            if len(pending) >= self._batch_size:
                yield pending
                pending = []
            elif self._progress:
                self._progress(state)  # skipped and unreadable images count as progress too
        if pending:
            yield pending

    def _store(
        self,
        run_id: int,
        batch: Sequence[_Pending],
        results: Sequence[AnalyzedImage | Exception],
        state: IngestProgress,
    ) -> None:
        new_ids: list[int] = []
        new_vectors: list[np.ndarray] = []
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self._error(run_id, pending.item.uri, str(result), state)
                continue
            kept = self._unsuppressed(result, state)
            if result.faces and not kept:
                state.images_suppressed += 1
                continue
            thumbnails: list[str | None] = []
            for number, face in kept:
                if not face.thumbnail_jpeg:
                    thumbnails.append(None)
                    continue
                rel = thumbnail_relpath(pending.sha256, number)
                thumbnails.append(rel)
                try:
                    write_atomic(self._thumbnails_dir / rel, face.thumbnail_jpeg)
                except OSError as exc:
                    self._forget_thumbnails(thumbnails)
                    if is_out_of_space(exc):
                        raise StorageFullError(str(self._thumbnails_dir), "face thumbnails") from exc
                    raise
            item = pending.item
            asset = MediaAsset(
                sha256=pending.sha256,
                uri=item.uri,
                source_page=item.source_page,
                captured_at=item.captured_at,
                label=item.label,
                legal_basis=item.legal_basis,
                extra=dict(item.extra),
                retain_until=retain_until(item.retain_days),
            )
            faces = [face for _, face in kept]
            subject = self._subject(item, result, [number for number, _ in kept])
            try:
                _, face_ids = self._catalog.add_asset_with_faces(
                    run_id,
                    asset,
                    faces,
                    self._model_id,
                    width=result.width,
                    height=result.height,
                    thumbnail_paths=thumbnails,
                    subject=subject,
                )
            except BaseException:
                # Not stored: its thumbnails would be orphans (and on a full disk, the space the run's end needs).
                self._forget_thumbnails(thumbnails)
                raise
            if faces and not face_ids:
                # Another process stored the same image first: it is known now, not added by this run.
                state.images_skipped += 1
                continue
            for face_id, face in zip(face_ids, faces, strict=True):
                new_ids.append(face_id)
                new_vectors.append(face.embedding.vector)
            state.images_added += 1
            state.faces_added += len(face_ids)
            if subject is not None and not subject.attribution.names_a_face:
                state.unattributed_labels += 1
        if new_ids:
            self._index.add(np.asarray(new_ids, dtype=np.int64), np.vstack(new_vectors).astype(np.float32))
        self._unstored.difference_update(p.sha256 for p in batch)  # the catalog knows them now (or they failed)
        if self._progress:
            self._progress(state)

    def _forget_thumbnails(self, relpaths: Sequence[str | None]) -> None:
        for rel in relpaths:
            if rel is not None:
                (self._thumbnails_dir / rel).unlink(missing_ok=True)

    def _subject(self, item: SourceItem, image: AnalyzedImage, kept: Sequence[int]) -> SubjectChoice | None:
        """Which stored face the item's label names (a position in the kept faces), decided on every face the
        detector found (face_index counts those); None for an unlabelled item. A subject suppressed as an erased
        person's face is stored as no face: the label never moves to a bystander."""
        if not (item.label or "").strip():
            return None
        boxes = [face.detection.box for face in image.faces]
        # SourceItem refuses both at once and a negative index, so this cannot raise.
        choice = decide_subject(boxes, image.width, image.height, face_index=item.face_index, face_box=item.face_box)
        if not choice.attribution.names_a_face:
            log.info(
                "%s: labelled %r, but %s: the label goes to no face (give face_index or face_box)",
                item.uri,
                item.label,
                _UNATTRIBUTED_WHY[choice.attribution].format(faces=len(boxes)),
            )
        position = kept.index(choice.face) if choice.face is not None and choice.face in kept else None
        return SubjectChoice(position, choice.attribution)

    def _unsuppressed(self, image: AnalyzedImage, state: IngestProgress) -> list[tuple[int, AnalyzedFace]]:
        """The faces to store, numbered as the detector found them, without those of erased people."""
        numbered = list(enumerate(image.faces))
        if self._suppression is None or not numbered:
            return numbered
        flags = self._suppression.suppressed(np.vstack([f.embedding.vector for f in image.faces]).astype(np.float32))
        suppressed = int(np.count_nonzero(flags))
        if suppressed:
            state.faces_suppressed += suppressed
            log.info("%s: %d face(s) match erased people and are not stored", image.source, suppressed)
        return [(number, face) for number, face in numbered if not flags[number]]

    def _error(self, run_id: int, uri: str, message: str, state: IngestProgress) -> None:
        state.errors += 1
        if len(state.error_messages) < MAX_ERROR_MESSAGES_KEPT:
            state.error_messages.append(message)
        log.warning("skipped %s", message)
        self._catalog.record_error(run_id, uri, message)


_UNATTRIBUTED_WHY = {
    SubjectAttribution.AMBIGUOUS: "none of its {faces} faces clearly dominates",
    SubjectAttribution.NOT_FOUND: "its face_index or face_box names none of its {faces} detected faces",
    SubjectAttribution.NO_FACE: "no face was found in it",
}


def retain_until(retain_days: int | None, now: datetime | None = None) -> datetime | None:
    """When an item kept retain_days after ingest (now) stops being retained; None keeps it until erased."""
    if retain_days is None:
        return None
    return (now or datetime.now(UTC)) + timedelta(days=retain_days)


def write_atomic(path: Path, data: bytes) -> None:
    """Write path whole or not at all, through a temporary sibling (.NAME.PID.tmp) that is removed if the write fails
    (a full disk among others), so none stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_temporary_thumbnails(thumbnails_dir: Path) -> int:
    """Remove the temporary siblings write_atomic left behind in a process that was killed mid-write (its pid is no
    longer running); returns how many. Run when a run resumes after one that did not finish."""
    removed = 0
    if not thumbnails_dir.is_dir():
        return 0
    for folder in [thumbnails_dir, *(entry for entry in thumbnails_dir.iterdir() if entry.is_dir())]:
        for tmp in folder.glob(f".*{TEMPORARY_SUFFIX}"):
            pid = tmp.name[: -len(TEMPORARY_SUFFIX)].rsplit(".", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and _process_exists(int(pid)):
                continue  # another process is writing it now
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary thumbnail file(s) left by an earlier run", removed)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
