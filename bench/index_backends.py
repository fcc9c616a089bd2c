"""Vector index backends side by side: add, save and search latency, and recall@k against exact search.

    python bench/index_backends.py --n 10000 --dim 128 --queries 1000 --k 10 [--backends memory,faiss,milvus] [--json]
    python bench/index_backends.py --n 1000000 --backends faiss,milvus-server [--milvus-uri milvus://host:19530]

Every backend gets the same seeded random unit vectors (gallery and queries drawn independently), opened through
open_index() in a temporary directory, so the figures include what facetrace adds around each library. The exact
numpy index (memory://) is the ground truth for recall@k: the fraction of each query's true top-k ids a backend
returns, averaged over queries. Single-query latency is the median (and 99th percentile) over --single-queries
one-vector searches, after one unmeasured warm-up search.

milvus-server is a Milvus server at --milvus-uri (e.g. the `milvus-server` of the PyPI `milvus` package, as .ci/run
starts it): the run works in a database of its own (facetrace_bench_<random>) and drops it at the end. Its save is a
flush (writes become sealed segments); searches are strongly consistent, as facetrace always issues them.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.core.ports import VectorIndex
from facetrace.index import ExactMemoryIndex, open_index

MODEL_ID = "bench-random-unit-vectors"


@dataclass(frozen=True)
class BackendResult:
    backend: str
    available: bool
    reason: str = ""
    open_s: float = 0.0
    add_s: float = 0.0
    save_s: float = 0.0
    batch_search_s: float = 0.0
    single_query_median_ms: float = 0.0
    single_query_p99_ms: float = 0.0
    recall_at_k: float = 0.0


def unit_vectors(count: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


@contextmanager
def index_uri(backend: str, milvus_uri: str) -> Iterator[str]:
    """Where the backend's index goes for one measurement: a temporary directory, or a database of its own on the
    Milvus server (facetrace creates it on first open; dropped here at the end)."""
    with tempfile.TemporaryDirectory(prefix=f"facetrace-bench-{backend}-") as directory:
        if backend != "milvus-server":
            yield {
                "memory": "memory://",
                "faiss": f"faiss://{Path(directory) / 'faces.faiss'}",
                "milvus": f"milvus://{Path(directory) / 'faces.db'}",
            }[backend]
            return
        database = f"facetrace_bench_{secrets.token_hex(4)}"
        try:
            yield f"{milvus_uri.rstrip('/')}/{database}"
        finally:
            drop_milvus_database(milvus_uri, database)


def drop_milvus_database(milvus_uri: str, database: str) -> None:
    from pymilvus import MilvusClient

    from facetrace.index.milvus_backend import parse_milvus_uri

    location = parse_milvus_uri(milvus_uri)
    admin = MilvusClient(uri=location.client_uri, token=location.token, timeout=60)
    inside = MilvusClient(uri=location.client_uri, token=location.token, db_name=database, timeout=60)
    try:
        if database in admin.list_databases():
            for collection in inside.list_collections():
                inside.drop_collection(collection)
            admin.drop_database(database)
    finally:
        inside.close()
        admin.close()


def recall_at_k(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    hits = [np.intersect1d(row, expected).size / expected.size for row, expected in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def measure(
    backend: str,
    gallery: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    truth: npt.NDArray[np.int64],
    single_queries: int,
    milvus_uri: str,
) -> BackendResult:
    ids = np.arange(gallery.shape[0], dtype=np.int64)
    with index_uri(backend, milvus_uri) as uri:
        started = time.perf_counter()
        try:
            index: VectorIndex = open_index(uri, MODEL_ID, gallery.shape[1])
        except Exception as exc:  # a backend that cannot run here is reported, not fatal
            return BackendResult(backend, available=False, reason=f"{type(exc).__name__}: {exc}")
        open_s = time.perf_counter() - started

        started = time.perf_counter()
        index.add(ids, gallery)
        add_s = time.perf_counter() - started

        started = time.perf_counter()
        index.save()
        save_s = time.perf_counter() - started

        index.search(queries[:1], k)
        started = time.perf_counter()
        _, found = index.search(queries, k)
        batch_search_s = time.perf_counter() - started

        single_ms = []
        for row in range(min(single_queries, queries.shape[0])):
            started = time.perf_counter()
            index.search(queries[row : row + 1], k)
            single_ms.append((time.perf_counter() - started) * 1000)
        close = getattr(index, "close", None)
        if callable(close):
            close()
    return BackendResult(
        backend,
        available=True,
        open_s=open_s,
        add_s=add_s,
        save_s=save_s,
        batch_search_s=batch_search_s,
        single_query_median_ms=statistics.median(single_ms),
        single_query_p99_ms=float(np.percentile(single_ms, 99)),
        recall_at_k=recall_at_k(found, truth),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="gallery vectors")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1_000, help="queries in the batch search")
    parser.add_argument("--single-queries", type=int, default=200, help="one-vector searches timed one by one")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--backends", default="memory,faiss,milvus", help="of memory, faiss, milvus, milvus-server")
    parser.add_argument("--milvus-uri", default="milvus://127.0.0.1:19530", help="the server for milvus-server")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    gallery = unit_vectors(args.n, args.dim, seed=1)
    queries = unit_vectors(args.queries, args.dim, seed=2)
    oracle = ExactMemoryIndex(MODEL_ID, args.dim)
    oracle.add(np.arange(args.n, dtype=np.int64), gallery)
    _, truth = oracle.search(queries, args.k)

    results = [
        measure(backend, gallery, queries, args.k, truth, args.single_queries, args.milvus_uri)
        for backend in args.backends.split(",")
    ]
    setup = f"n={args.n} dim={args.dim} queries={args.queries} k={args.k}"
    machine = f"{platform.machine()} {platform.python_version()}"
    if args.json:
        print(json.dumps({"setup": setup, "machine": machine, "results": [asdict(r) for r in results]}, indent=2))
        return 0
    print(f"{setup} on {machine}")
    header = (
        f"{'backend':13} {'open s':>8} {'add s':>8} {'save s':>8} {'batch search s':>15} "
        f"{'1-query ms':>11} {'p99 ms':>8} {'recall@k':>9}"
    )
    print(header)
    for result in results:
        if not result.available:
            print(f"{result.backend:13} unavailable: {result.reason}")
            continue
        print(
            f"{result.backend:13} {result.open_s:8.3f} {result.add_s:8.3f} {result.save_s:8.3f} "
            f"{result.batch_search_s:15.3f} {result.single_query_median_ms:11.2f} "
            f"{result.single_query_p99_ms:8.2f} {result.recall_at_k:9.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
