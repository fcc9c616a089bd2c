"""How many threads one index query may use, set for the calling thread.

FAISS spreads a query over OpenMP threads, and OpenMP keeps that count per thread: omp_set_num_threads() in one
thread leaves every other thread at the process default (OMP_NUM_THREADS, else one per core). So a thread that
queries the index sets its own count, here. With as many querying threads as cores (engine/searching.py's probe
workers) one thread per query is the cheapest: on 2 cores a 100k x 128 exact search took 2.7 ms of CPU on one
thread and 11.1 ms on two (docs/benchmarks.md, "Using the cores").

The count set here is also a cap: an approximate index that measured two threads faster for a lone query
(index/faiss/tuning.py) sets its count around each search, but never above the calling thread's cap, since a serving
pool already keeps every core busy with one query each.
"""

from __future__ import annotations

import threading

import faiss

_local = threading.local()


def set_query_threads(count: int) -> None:
    """Index queries made from the calling thread use count threads (at least 1)."""
    if count < 1:
        raise ValueError(f"a query needs at least one thread, not {count}")
    _local.cap = count
    faiss.omp_set_num_threads(count)


def query_thread_cap() -> int | None:
    """The most threads a query from the calling thread may use, if set_query_threads was called in it."""
    cap: int | None = getattr(_local, "cap", None)
    return cap


def query_threads() -> int:
    """The threads an index query made from the calling thread may use."""
    return int(faiss.omp_get_max_threads())
