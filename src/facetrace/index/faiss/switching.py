"""A switch of a FaissIndex to another structure, built in a background thread while the current one keeps serving.

The new store is built from a snapshot of the vectors (faiss releases the GIL while it trains and encodes, so
searches go on meanwhile). Every add and remove made after the snapshot is recorded in a journal and replayed onto
the new store under the index's lock, just before it takes over, so the store that takes over holds exactly what the
index holds at the swap. A build that fails leaves the current store in service; settle() raises its error once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from facetrace.core.errors import VectorIndexError
from facetrace.core.ports import IdArray
from facetrace.core.types import FloatArray
from facetrace.index.faiss.sizing import Structure
from facetrace.index.faiss.stores import Store, build_store
from facetrace.index.faiss.tuning import Tuning

logger = logging.getLogger(__name__)


class BackgroundSwitch:
    """The background switch of one index (at most one at a time): its thread, its journal and its error.

    lock is the index's: the journal is written under it (record_add, record_remove) and replayed under it.
    """

    def __init__(self, lock: threading.RLock, path: Path, dim: int) -> None:
        self._lock = lock
        self._path = path
        self._dim = dim
        self._builder: threading.Thread | None = None
        # The changes made since the snapshot of a running switch (replayed before the swap); None when none runs.
        self._journal: list[tuple[str, IdArray, FloatArray | None]] | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        builder = self._builder
        return builder is not None and builder.is_alive()

    def record_add(self, ids: IdArray, vectors: FloatArray) -> None:
        """Journal an add made to the current store (under the index's lock), if a switch is running."""
        if self._journal is not None:
            self._journal.append(("add", ids.copy(), vectors.copy()))

    def record_remove(self, ids: IdArray) -> None:
        """Journal a remove made to the current store (under the index's lock), if a switch is running."""
        if self._journal is not None:
            self._journal.append(("remove", ids.copy(), None))

    def start(
        self,
        target: Structure,
        ids: IdArray,
        vectors: FloatArray,
        tuning: Tuning,
        install: Callable[[Store], None],
    ) -> None:
        """Build a store of target from this snapshot in a thread, then (under the lock) replay the journal onto it
        and hand it to install. Called under the index's lock, with no switch running."""
        self._journal = []
        self._error = None
        self._builder = threading.Thread(
            target=self._build,
            args=(target, ids, vectors, tuning, install),
            name=f"faiss-restructure-{self._path.name}",
            daemon=True,
        )
        self._builder.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running switch to finish (True when none is left running; at once from its own thread)."""
        builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join(timeout)
            return not builder.is_alive()
        return True

    def settle(self, timeout: float | None = None) -> bool:
        """wait(), then raise the error of a switch that failed, once."""
        if not self.wait(timeout):
            return False
        error, self._error = self._error, None
        if error is not None:
            raise VectorIndexError(f"{self._path}: the background restructure failed: {error}") from error
        return True

    def _build(
        self,
        target: Structure,
        ids: IdArray,
        vectors: FloatArray,
        tuning: Tuning,
        install: Callable[[Store], None],
    ) -> None:
        try:
            # faiss releases the GIL while it trains and encodes: searches on the current store go on meanwhile.
            store = build_store(self._dim, target, ids, vectors, tuning)
            del ids, vectors
            with self._lock:
                for operation, changed_ids, changed_vectors in self._journal or []:
                    if operation == "add":
                        assert changed_vectors is not None
                        store.add(changed_ids, changed_vectors)
                    else:
                        store.remove(changed_ids)
                install(store)
        except BaseException as exc:  # kept for settle(); the current structure stays in service
            logger.exception("background restructure of %s failed", self._path)
            self._error = exc
        finally:
            with self._lock:
                self._journal = None
                self._builder = None
