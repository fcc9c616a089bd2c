"""Who may touch the gallery (catalog faces + index + thumbnails) at once: the engine owns this, not its callers.

Inside one process, a readers-writer lock: searches share it, writes (an ingest batch, an erasure, a purge, a
repair) take it alone, so a background ingest and searches interleave batch by batch. Model inference never runs
under it: callers analyse photos first and lock only for the index and catalog work.

Across processes, an OS file lock (flock) on `<data>/writer.lock`: one process writes to a data directory at a time.
A second writer waits, and says whom it waits for (the holder writes its pid and command into the file); a reader
never takes it. A process whose in-memory state (the index, the suppression list) derives from the catalog catches
up when the catalog's change counters move (catalog/changes.py), checked before each read: a serving process sees
what a separate `facetrace ingest` added within one request, with no restart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from facetrace.core.errors import ConflictError

log = logging.getLogger(__name__)

LOCK_FILE_NAME = "writer.lock"
_POLL_S = 0.2


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before new readers (searches cannot starve an ingest).

    The writer may re-enter (a repair inside an erasure) and may take the read side while it writes.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> depth
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            if self._writer != me and self._readers.get(me, 0) == 0:
                self._condition.wait_for(lambda: self._writer is None and self._writers_waiting == 0)
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._condition:
                depth = self._readers[me] - 1
                if depth:
                    self._readers[me] = depth
                else:
                    del self._readers[me]
                    self._condition.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            if self._writer == me:
                self._writer_depth += 1
            else:
                if self._readers.get(me):
                    raise RuntimeError("a reader cannot become the writer (release the read lock first)")
                self._writers_waiting += 1
                try:
                    self._condition.wait_for(lambda: self._writer is None and not self._readers)
                finally:
                    self._writers_waiting -= 1
                self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._condition:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    self._writer = None
                    self._condition.notify_all()


class ProcessLock:
    """The data directory's writer lock across processes: flock on one file, held while any thread of this process
    needs it (counted), released when the last one is done. The kernel drops it when the process dies."""

    def __init__(self, path: Path, *, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._on_wait = on_wait
        self._guard = threading.Lock()
        self._holders = 0
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._holders > 0

    @contextmanager
    def hold(self, purpose: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock, waiting for another process up to timeout seconds (None: as long as it takes; then
        ConflictError naming the holder)."""
        self._acquire(purpose, timeout)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, purpose: str, timeout: float | None) -> None:
        with self._guard:
            if self._holders:
                self._holders += 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while held
            try:
                self._lock(handle, purpose, timeout)
            except BaseException:
                handle.close()
                raise
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(_holder(purpose)) + "\n")
            handle.flush()
            self._file, self._holders = handle, 1

    def _lock(self, handle: IO[str], purpose: str, timeout: float | None) -> None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = self.holder()
        if timeout == 0:
            raise ConflictError(f"{self.path.parent} is busy: another process writes to it ({describe_holder(holder)})")
        message = f"waiting for {self.path.parent} (another process writes to it: {describe_holder(holder)})"
        log.warning("%s", message)
        if self._on_wait is not None:
            self._on_wait(message)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ConflictError(
                        f"{self.path.parent} is busy: another process writes to it ({describe_holder(holder)}); "
                        f"{purpose} did not start, try again when it has finished"
                    ) from None
                time.sleep(_POLL_S)

    def _release(self) -> None:
        with self._guard:
            self._holders -= 1
            if self._holders == 0 and self._file is not None:
                handle, self._file = self._file, None
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()

    def holder(self) -> dict[str, object]:
        """What the current (or last) holder wrote into the lock file: pid, command, purpose, since."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
            value = json.loads(text) if text else {}
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}


def _holder(purpose: str) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "command": " ".join(os.path.basename(arg) if i == 0 else arg for i, arg in enumerate(sys.argv))[:300],
        "purpose": purpose,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe_holder(holder: dict[str, object]) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')}, {holder.get('purpose')}, since {holder.get('since')}: {holder.get('command')}"


class DataLock:
    """The engine's lock discipline for one data directory (implements the core DataGuard port).

    reading(): catch up with other processes' changes if the catalog says they moved, then share the in-process
    lock. writing(purpose): hold the data directory's writer lock (waiting for another process if need be), take the
    in-process lock alone, catch up, then write. session(purpose): hold only the writer lock, for a long run whose
    batches each take writing() (searches continue between them).
    """

    def __init__(
        self,
        data_dir: Path,
        state: DerivedState,
        *,
        on_wait: Callable[[str], None] | None = None,
        wait_s: float | None = None,
    ) -> None:
        self._rw = ReadWriteLock()
        self.process = ProcessLock(data_dir / LOCK_FILE_NAME, on_wait=on_wait)
        self._state = state
        self._wait_s = wait_s

    @contextmanager
    def reading(self) -> Iterator[None]:
        if self._state.behind():
            with self._rw.write():
                self._state.catch_up()
        with self._rw.read():
            yield

    @contextmanager
    def writing(self, purpose: str = "write") -> Iterator[None]:
        with self.process.hold(purpose, self._wait_s), self._rw.write():
            self._state.catch_up()  # another process may have written since this one last looked (a cheap check)
            yield
            # Whatever moved the counters since is this process's own doing, already applied to its state.
            self._state.mark_current()

    def exclusive(self) -> AbstractContextManager[None]:
        """The in-process lock alone, without catching up: to look at the state as this process holds it."""
        return self._rw.write()

    @contextmanager
    def maintaining(self, purpose: str) -> Iterator[None]:
        """writing() without the catch-up: for the verbs that compare or rebuild the whole state themselves."""
        with self.process.hold(purpose, self._wait_s), self._rw.write():
            yield

    @contextmanager
    def session(self, purpose: str) -> Iterator[None]:
        with self.process.hold(purpose, self._wait_s):
            yield

    @contextmanager
    def try_writing(self, purpose: str) -> Iterator[bool]:
        """writing() if no other process holds the writer lock now, else nothing (yields whether it writes)."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.process.hold(purpose, timeout=0.0))
            except ConflictError:
                yield False
                return
            stack.enter_context(self._rw.write())
            self._state.catch_up()
            yield True
            self._state.mark_current()


class DerivedState(Protocol):
    """What a process derives from the catalog and keeps in memory (the index): the lock keeps it current."""

    def behind(self) -> bool:
        """Whether the catalog has changed since this state last caught up (a cheap read)."""
        ...

    def catch_up(self) -> None:
        """Bring the state up to the catalog; the caller holds the in-process lock alone."""
        ...

    def mark_current(self) -> None:
        """The state has applied every change the catalog counted so far (after this process's own write)."""
        ...
