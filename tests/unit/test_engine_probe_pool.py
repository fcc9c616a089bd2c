"""The probe pool (engine/probe_pool.py): searches' probe work runs on its threads, each querying the index on one
OpenMP thread, a thread setting OpenMP keeps per thread."""

from __future__ import annotations

import threading
import time

import pytest

from facetrace.engine.probe_pool import ProbePool
from facetrace.index.threads import query_threads, set_query_threads


def test_work_runs_on_the_pool_with_one_index_thread_each() -> None:
    pool = ProbePool(2)
    try:
        name, threads = pool.run(lambda: (threading.current_thread().name, query_threads()))
    finally:
        pool.close()
    assert name.startswith("facetrace-probe")
    assert threads == 1


def test_index_threads_are_set_per_thread() -> None:
    """OpenMP keeps the count per thread: setting it in one thread leaves another's as it was."""
    seen: list[int] = []

    def in_a_thread(count: int) -> None:
        set_query_threads(count)
        seen.append(query_threads())

    before = query_threads()
    worker = threading.Thread(target=in_a_thread, args=(3,))
    worker.start()
    worker.join()
    assert seen == [3]
    assert query_threads() == before
    with pytest.raises(ValueError, match="at least one thread"):
        set_query_threads(0)


def test_at_most_size_pieces_of_work_run_at_once() -> None:
    pool = ProbePool(2)
    inside = most = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with guard:
            inside -= 1

    callers = [threading.Thread(target=pool.run, args=(work,)) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    pool.close()
    assert most == 2


def test_errors_reach_the_caller_and_work_from_the_pool_runs_in_place() -> None:
    pool = ProbePool(1)
    try:
        with pytest.raises(KeyError, match="lost"):
            pool.run(lambda: {}["lost"])
        # A piece of work that hands in more work (one thread: waiting for a second would never end) runs it at once.
        inner = pool.run(lambda: pool.run(lambda: threading.current_thread().name))
    finally:
        pool.close()
    assert inner.startswith("facetrace-probe")
    with pytest.raises(ValueError, match="at least one thread"):
        ProbePool(0)
