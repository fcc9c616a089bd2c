"""How many threads one index query may use, set for the calling thread.

FAISS spreads a query over OpenMP threads, and OpenMP keeps that count per thread: omp_set_num_threads() in one
thread leaves every other thread at the process default (OMP_NUM_THREADS, else one per core). So a thread that
queries the index sets its own count, here. With as many querying threads as cores (engine/searching.py's probe
workers) one thread per query is the cheapest: on 2 cores a 100k x 128 exact search took 2.7 ms of CPU on one
thread and 11.1 ms on two (docs/benchmarks.md, "Using the cores").
"""

from __future__ import annotations

import faiss


def set_query_threads(count: int) -> None:
    """Index queries made from the calling thread use count threads (at least 1)."""
    if count < 1:
        raise ValueError(f"a query needs at least one thread, not {count}")
    faiss.omp_set_num_threads(count)


def query_threads() -> int:
    """The threads an index query made from the calling thread may use."""
    return int(faiss.omp_get_max_threads())
