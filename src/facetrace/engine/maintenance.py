"""The index as state derived from the catalog: opening it, keeping it current, checking and rebuilding it.

The catalog is the source of truth and the index is derived (docs/decisions/0001). This service owns the open
index of one engine: it opens the stored file once, on first use, and keeps it current with the catalog, whoever
changed it. Reading its `index` never writes: reconciling happens through the engine's lock (engine/locking.py),
which calls catch_up() before a read when the catalog's change counters moved, and before every write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facetrace.core.errors import FacetraceError, StorageFullError
from facetrace.core.ports import Catalog, IdArray, VectorIndex
from facetrace.core.types import ChangeCounters, FaceRecord, FloatArray
from facetrace.ingest.runner import write_atomic

if TYPE_CHECKING:
    from facetrace.engine.locking import DataLock

log = logging.getLogger(__name__)

IndexOpener = Callable[..., VectorIndex]
ThumbnailMaker = Callable[[FaceRecord], bytes]
# check(): a face's own catalog embedding must find it among this many neighbours at a similarity this close to 1
# (exact: 1e-6; approximate: re-ranked from float16 copies, about 1e-3).
SELF_MATCH_NEIGHBOURS = 10
SELF_MATCH_TOLERANCE = 0.02
VECTOR_CHECK_BATCH = 1024


class CurrentIndex:
    """The engine's index as the services see it: whichever index is open now (a rebuild replaces the object)."""

    def __init__(self, owner: IndexMaintenance) -> None:
        self._owner = owner

    @property
    def model_id(self) -> str:
        return self._owner.stored.model_id

    @property
    def dim(self) -> int:
        return self._owner.stored.dim

    def __len__(self) -> int:
        return len(self._owner.stored)

    def add(self, ids: IdArray, vectors: FloatArray) -> None:
        self._owner.stored.add(ids, vectors)

    def remove(self, ids: IdArray) -> int:
        return self._owner.stored.remove(ids)

    def search(self, queries: FloatArray, k: int) -> tuple[FloatArray, IdArray]:
        return self._owner.stored.search(queries, k)

    def ids(self) -> IdArray:
        return self._owner.stored.ids()

    def save(self) -> None:
        self._owner.stored.save()

    def settle(self, timeout: float | None = None) -> bool:
        return self._owner.stored.settle(timeout)


@dataclass(frozen=True)
class ConsistencyReport:
    """How the catalog (source of truth) and what is derived from it (the index, the thumbnails) agree for the active
    model. With repair, the counts are what was found before repairing; `unrepaired` says what could not be mended."""

    model_id: str
    catalog_faces: int
    index_entries: int
    missing_from_index: int
    orphaned_in_index: int
    repaired: bool
    # Faces whose catalog embedding, searched in the index, does not find the face itself at similarity ~1.
    vectors_checked: int = 0
    vectors_mismatched: int = 0
    # Faces with a stored thumbnail path whose file is missing or empty.
    thumbnails_checked: int = 0
    thumbnails_missing: int = 0
    thumbnails_restored: int = 0
    unrepaired: tuple[str, ...] = ()
    # The backend's own account of the index, where it gives one (FAISS: its structure and measured operating point).
    index: dict[str, Any] | None = None

    @property
    def consistent(self) -> bool:
        """Everything agrees (after a repair: everything that was wrong was mended)."""
        if self.repaired or self.unrepaired:
            return not self.unrepaired
        return not (
            self.missing_from_index or self.orphaned_in_index or self.vectors_mismatched or self.thumbnails_missing
        )


class IndexMaintenance:
    """engine.index: check, repair and rebuild the index; and the engine lock's DerivedState (catch-up)."""

    def __init__(
        self,
        catalog: Catalog,
        open_index: IndexOpener,
        model_id: str,
        *,
        thumbnails_dir: Path | None = None,
        make_thumbnail: ThumbnailMaker | None = None,
    ) -> None:
        """make_thumbnail(face) is the face's crop made again from its source photo, for check --repair."""
        self._catalog = catalog
        self._thumbnails_dir = thumbnails_dir
        self._make_thumbnail = make_thumbnail
        self._open_index = open_index
        self.model_id = model_id
        self._index: VectorIndex | None = None
        self._open_lock = threading.Lock()
        # What this process's index has applied: the catalog's counters and its highest face id when last current.
        self._seen: ChangeCounters | None = None
        self._max_id = -1
        # The in-memory index may differ from the stored file: caught up with another process's writes, or written by
        # this process (whose last save may predate a background structure switch). Saved on close when possible.
        self._unsaved = False
        self.lock: DataLock | None = None  # set by the engine: the lock whose DerivedState this is
        self.current: VectorIndex = CurrentIndex(self)

    # -- the open index ---------------------------------------------------------------------------------------------

    @property
    def stored(self) -> VectorIndex:
        """The index as opened from storage, without catching up: what check() compares (use it under the lock)."""
        if self._index is None:
            with self._open_lock:
                if self._index is None:
                    self._index = self._open_index()
        return self._index

    @property
    def opened(self) -> bool:
        return self._index is not None

    # -- DerivedState: keeping the in-memory index current ------------------------------------------------------------

    def behind(self) -> bool:
        return self._seen is None or self._catalog.change_counters() != self._seen

    def catch_up(self) -> None:
        """Apply what the catalog changed since this index was last current. Only added faces: add the ones above
        the highest id seen; any removal (or the first time): compare every id. Nothing is saved here."""
        counters = self._catalog.change_counters()
        if counters == self._seen:
            return
        index = self.stored
        if self._seen is not None and counters.faces_removed == self._seen.faces_removed:
            missing, orphaned = self._catalog.face_ids(self.model_id, after=self._max_id), np.zeros(0, np.int64)
            if missing.size:
                self._max_id = int(missing[-1])
        else:
            catalog_ids, missing, orphaned = self._differences(index)
            self._max_id = int(catalog_ids.max()) if catalog_ids.size else -1
        if orphaned.size:
            index.remove(orphaned)
        if missing.size:
            ids, vectors = self._catalog.embeddings_by_id(missing.tolist(), self.model_id)
            if len(ids):
                index.add(ids, vectors)
        if missing.size or orphaned.size:
            self._unsaved = True
            log.info("index caught up with the catalog: %d faces added, %d removed", missing.size, orphaned.size)
        self._seen = counters

    def mark_current(self) -> None:
        """After this process's own write, under the writer lock (no other process can have written meanwhile)."""
        self._unsaved = True
        if self._seen is None:
            return  # never compared with the catalog yet: the next catch-up compares every id
        self._seen = self._catalog.change_counters()
        ids = self._catalog.face_ids(self.model_id, after=self._max_id)
        if ids.size:
            self._max_id = int(ids[-1])

    def _current_as_of(self, counters: ChangeCounters, catalog_ids: IdArray) -> None:
        self._seen = counters
        self._max_id = int(catalog_ids[-1]) if catalog_ids.size else -1

    def _differences(self, index: VectorIndex) -> tuple[IdArray, IdArray, IdArray]:
        """(catalog ids, ids the index lacks, ids only the index has)."""
        catalog_ids = self._catalog.face_ids(self.model_id)
        index_ids = index.ids()
        missing = np.setdiff1d(catalog_ids, index_ids, assume_unique=True)
        orphaned = np.setdiff1d(index_ids, catalog_ids, assume_unique=True)
        return catalog_ids, missing, orphaned

    # -- verbs ------------------------------------------------------------------------------------------------------

    def check(self, *, repair: bool = False, sample: int | None = None, seed: int = 0) -> ConsistencyReport:
        """Compare the stored index with the catalog: ids (missing, orphaned), vectors (each catalog embedding must
        find its own face at similarity ~1; all, or `sample` faces drawn with seed), and thumbnail files. With
        repair: add what the index lacks, drop orphans, put mismatched vectors back from the catalog, save, and make
        missing thumbnails again from their source photos where those are readable.

        Without repair nothing changes; the report describes the index as this process holds it (as stored, plus
        what it caught up with, for a process that has already served reads).
        """
        assert self.lock is not None
        if repair:
            with self.lock.maintaining("index repair"):
                return self._check(repair=True, sample=sample, seed=seed)
        with self.lock.exclusive():
            return self._check(repair=False, sample=sample, seed=seed)

    def _check(self, *, repair: bool, sample: int | None, seed: int) -> ConsistencyReport:
        index = self.stored
        counters = self._catalog.change_counters()
        catalog_ids, missing, orphaned = self._differences(index)
        index_entries = len(index)
        present = np.setdiff1d(catalog_ids, missing, assume_unique=True)
        if sample is not None and sample < present.size:
            present = np.sort(np.random.default_rng(seed).choice(present, size=sample, replace=False))
        mismatched = self._mismatched_vectors(index, present)
        thumbnails_checked, lost = self._lost_thumbnails(catalog_ids)
        changed = bool(missing.size or orphaned.size or mismatched.size)
        restored = 0
        unrepaired: list[str] = []
        if repair:
            if orphaned.size:
                index.remove(orphaned)
            readd = np.union1d(missing, mismatched)
            if readd.size:
                ids, vectors = self._catalog.embeddings_by_id(readd.tolist(), self.model_id)
                index.add(ids, vectors)
            if changed or self._unsaved:
                index.save()
                self._unsaved = False
            self._current_as_of(counters, catalog_ids)
            if mismatched.size and self._mismatched_vectors(index, mismatched).size:
                unrepaired.append("index vectors still disagree after re-adding them: run `facetrace index rebuild`")
            restored, failures = self._restore_thumbnails(lost)
            unrepaired.extend(failures)
        return ConsistencyReport(
            model_id=self.model_id,
            catalog_faces=int(catalog_ids.size),
            index_entries=index_entries,
            missing_from_index=int(missing.size),
            orphaned_in_index=int(orphaned.size),
            repaired=repair and (changed or bool(lost)),
            vectors_checked=int(present.size),
            vectors_mismatched=int(mismatched.size),
            thumbnails_checked=thumbnails_checked,
            thumbnails_missing=len(lost),
            thumbnails_restored=restored,
            unrepaired=tuple(unrepaired),
            index=describe() if callable(describe := getattr(index, "describe", None)) else None,
        )

    def _mismatched_vectors(self, index: VectorIndex, face_ids: IdArray) -> IdArray:
        """The faces among face_ids whose catalog embedding does not find the face itself in the index at a
        similarity within SELF_MATCH_TOLERANCE of 1 (a damaged or stale entry; one compressed by the approximate
        structure still finds itself, re-ranked from its float16 copy)."""
        bad: list[np.ndarray] = []
        k = min(SELF_MATCH_NEIGHBOURS, len(index))
        if k == 0 or face_ids.size == 0:
            return np.zeros(0, np.int64)
        for start in range(0, face_ids.size, VECTOR_CHECK_BATCH):
            ids, vectors = self._catalog.embeddings_by_id(
                face_ids[start : start + VECTOR_CHECK_BATCH].tolist(), self.model_id
            )
            if not len(ids):
                continue
            similarities, found = index.search(vectors, k)
            own = found == ids[:, None]
            own_similarity = np.where(own, similarities, -np.inf).max(axis=1)
            ok = own.any(axis=1) & (np.abs(own_similarity - 1.0) <= SELF_MATCH_TOLERANCE)
            bad.append(ids[~ok])
        return np.concatenate(bad).astype(np.int64) if bad else np.zeros(0, np.int64)

    def _lost_thumbnails(self, catalog_ids: IdArray) -> tuple[int, list[FaceRecord]]:
        """(how many faces have a stored thumbnail path, those whose file is missing or empty)."""
        if self._thumbnails_dir is None:
            return 0, []
        checked = 0
        lost: list[FaceRecord] = []
        for start in range(0, catalog_ids.size, VECTOR_CHECK_BATCH):
            records = self._catalog.faces_by_id(catalog_ids[start : start + VECTOR_CHECK_BATCH].tolist())
            for record in records.values():
                if not record.thumbnail_path:
                    continue
                checked += 1
                path = self._thumbnails_dir / record.thumbnail_path
                try:
                    empty = path.stat().st_size == 0
                except OSError:
                    empty = True
                if empty:
                    lost.append(record)
        return checked, lost

    def _restore_thumbnails(self, lost: list[FaceRecord]) -> tuple[int, list[str]]:
        if not lost or self._thumbnails_dir is None or self._make_thumbnail is None:
            return 0, [f"{len(lost)} thumbnails are missing and cannot be made here"] if lost else []
        root = self._thumbnails_dir.resolve()
        restored = 0
        unreadable: list[str] = []
        for record in lost:
            target = (root / str(record.thumbnail_path)).resolve()
            if not target.is_relative_to(root):
                unreadable.append(f"face {record.face_id}: its thumbnail path lies outside the thumbnails folder")
                continue
            try:
                write_atomic(target, self._make_thumbnail(record))
            except FacetraceError as exc:
                unreadable.append(f"face {record.face_id}: thumbnail not restored: {exc}")
                continue
            restored += 1
        return restored, unreadable

    def rebuild(self) -> int:
        """Recreate the index from the catalog's stored embeddings (the index is derived data)."""
        assert self.lock is not None
        with self.lock.maintaining("index rebuild"):
            # The expected size picks the structure up front (exact, or IVF with re-ranking past 200k faces) instead
            # of filling an exact index and converting it, which would double the peak memory.
            counters = self._catalog.change_counters()
            index = self._open_index(fresh=True, expected_count=self._catalog.count_faces(self.model_id))
            for ids, vectors in self._catalog.iter_embeddings(self.model_id):
                index.add(ids, vectors)
            index.save()
            with self._open_lock:
                self._index = index
            self._unsaved = False
            self._current_as_of(counters, index.ids())
            return len(index)

    def save(self) -> None:
        """Save the index (the caller holds the writer lock): after a write, or to keep what catch-up applied."""
        if self._index is not None:
            self._index.settle()  # a structure switch still being built is finished and saved, not lost
            self._index.save()
            self._unsaved = False

    def close(self) -> None:
        """On the engine's close: an index this process changed is saved, if no other process is writing now (the
        writer saves its own; the next open reconciles in any case)."""
        if self._index is None:
            return
        self._index.settle()
        if not self._unsaved:
            return
        assert self.lock is not None
        with self.lock.try_writing("saving the index on close") as writing:
            if writing:
                try:
                    self.save()
                except StorageFullError as exc:
                    # What catch-up applied is derived from the catalog: the next open applies it again.
                    log.info("the index this process caught up was not saved: %s", exc)
