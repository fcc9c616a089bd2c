"""The probe pool: the threads on which searches analyse their probes and query the index.

A server answers requests on many threads (uvicorn runs each on a thread of its own, 40 by default). Were each to
run the models and the index query itself, 40 searches would share 2 cores: each slower, and the libraries' own
threads (FAISS's OpenMP team per query) fighting them for the cores. Instead a request hands its probe work to this
pool, of one thread per analysis slot (setting concurrent_analyses, 0: one per core), and waits; the rest of the
request (checking the case, storing the search and its audit entry, the response) stays on its own thread. Each pool
thread runs every model and every index query on one thread, since the pool already fills the cores (with the
OpenCV nets per analysis: 1.26x the searches per second at 17% less CPU each, p99 halved, on 2 cores, 50 clients,
100k faces; docs/benchmarks.md, "Using the cores").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facetrace.index.threads import set_query_threads

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ProbePool:
    """size threads for probe work; run(work) runs work on one of them and returns its result (or raises its error)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a probe pool needs at least one thread, not {size}")
        self.size = size
        self._mine = threading.local()
        self._executor = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="facetrace-probe", initializer=self._start_thread
        )
        log.info("probe pool: %d thread(s), each index query on one thread", size)

    def _start_thread(self) -> None:
        self._mine.member = True
        set_query_threads(1)  # the pool's size already spreads the work over the cores

    def run(self, work: Callable[[], _T]) -> _T:
        """work() on a pool thread, once one is free (at once when called from a pool thread)."""
        if getattr(self._mine, "member", False):
            return work()
        return self._executor.submit(work).result()

    def close(self) -> None:
        """Finish the work handed in, then stop the threads."""
        self._executor.shutdown(wait=True)
