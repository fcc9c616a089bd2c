"""The engine's lock discipline (engine/locking.py): readers share, writers are alone and go first, and one process at
a time writes to a data directory, a waiting one learning whom it waits for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facetrace.core.errors import ConflictError
from facetrace.engine.locking import LOCK_FILE_NAME, DataLock, ProcessLock, ReadWriteLock

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from facetrace.engine.locking import ProcessLock\n"
    "with ProcessLock(Path(sys.argv[1])).hold('ingest of a test'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def test_readers_share_and_a_writer_is_alone() -> None:
    lock = ReadWriteLock()
    inside: list[str] = []
    both_reading = threading.Barrier(2, timeout=5)

    def reader() -> None:
        with lock.read():
            inside.append("r")
            both_reading.wait()  # fails (BrokenBarrierError) unless two readers are in at once

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join(5)
    assert inside == ["r", "r"]

    order: list[str] = []

    def late_reader() -> None:
        with lock.read():
            order.append("read")

    with lock.write():
        thread = threading.Thread(target=late_reader)
        thread.start()
        time.sleep(0.2)
        order.append("write done")
    thread.join(5)
    assert order == ["write done", "read"]


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    first_reader_in = threading.Event()
    release_first = threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_reader_in.set()
            release_first.wait(5)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    first_reader_in.wait(5)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    time.sleep(0.2)  # the writer is waiting now
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.2)
    assert order == []  # the late reader waits behind the waiting writer
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert order == ["writer", "late reader"]


def test_the_writer_may_reenter_and_read_but_a_reader_cannot_become_the_writer() -> None:
    lock = ReadWriteLock()
    with lock.write(), lock.write(), lock.read():
        pass
    with lock.read(), pytest.raises(RuntimeError, match="reader cannot become the writer"), lock.write():
        pass


def _hold_in_another_process(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_waits_and_is_told_whom_it_waits_for(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE_NAME
    holder = _hold_in_another_process(path, 60)
    told: list[str] = []
    try:
        lock = ProcessLock(path, on_wait=told.append)
        with pytest.raises(ConflictError, match=f"pid {holder.pid}.*ingest of a test"), lock.hold("mine", 0.5):
            pass
        assert told and f"pid {holder.pid}" in told[0] and "ingest of a test" in told[0]
        with pytest.raises(ConflictError, match="busy"), lock.hold("mine", timeout=0):
            pass
    finally:
        holder.terminate()
        holder.wait(10)
    with ProcessLock(path).hold("mine", timeout=5):  # free once the holder has gone
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE_NAME
    holder = _hold_in_another_process(path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    with ProcessLock(path).hold("after a crash", timeout=5):
        pass


def test_threads_of_one_process_share_its_hold(tmp_path: Path) -> None:
    lock = ProcessLock(tmp_path / LOCK_FILE_NAME)
    with lock.hold("session"):
        done = threading.Event()

        def second() -> None:
            with lock.hold("a write in another thread", timeout=0):
                done.set()

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(5)
        assert done.is_set() and lock.held
    assert not lock.held


class _State:
    def __init__(self) -> None:
        self.changed = False
        self.catch_ups = 0
        self.marks = 0

    def behind(self) -> bool:
        return self.changed

    def catch_up(self) -> None:
        self.catch_ups += 1
        self.changed = False

    def mark_current(self) -> None:
        self.marks += 1


def test_reads_catch_up_only_when_the_catalog_moved_and_writes_mark_their_own_changes(tmp_path: Path) -> None:
    state = _State()
    lock = DataLock(tmp_path, state)
    with lock.reading():
        pass
    assert state.catch_ups == 0
    state.changed = True  # another process wrote
    with lock.reading():
        pass
    assert state.catch_ups == 1 and not state.changed
    with lock.writing("a write"):
        assert lock.process.held
    assert state.catch_ups == 2 and state.marks == 1 and not lock.process.held
