"""Search at scale: facetrace's FAISS structures against raw exact FAISS on synthetic face-like embeddings.

    python bench/search_scale.py --n 1000000 --dim 512 [--backend flat,ivf] [--settings 32:100,64:100]
        [--queries 1000] [--json]

The gallery imitates a face gallery: n / --per-identity identities, each a random centre on the unit sphere; every
gallery face picks an identity at random (so identities hold a Poisson number of faces, some only one) and is its
centre plus Gaussian noise, renormalised (--noise 0.8 gives a same-identity cosine of about 0.6, as face models do).
Queries are fresh noisy samples of identities present in the gallery (held out: not gallery vectors). Everything is
seeded (--seed).

Backends (--backend, comma-separated):
    flat     raw faiss.IndexFlatIP, the exact reference (also the ground truth for recall)
    exact    facetrace's FaissIndex with structure="exact" (IDMap2,Flat plus facetrace's checks and ordering)
    ivf      facetrace's FaissIndex with the approximate structure for n (IVF + SQ8/PQ codes + exact re-ranking),
             built as `facetrace index rebuild` would (expected_count=n, batches of 100k), saved, then reopened
             (vectors memory-mapped) and searched at every --settings nprobe:rerank pair

One JSON record per backend and setting (with --json; otherwise a table): n, dim, backend, setting, p50_ms and
p99_ms (one-query searches, after a warm-up), recall_at_1 and recall_at_10 (against exact search), rank1_identification
(the top hit is of the query's identity), bytes_per_face (RAM estimate of the index; the memory-mapped vectors are
file_bytes_per_face), build_s (add + train + save), batch_qps (all queries in one call).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.index.faiss_backend import FaissIndex, row_ids_path_for, structure_for_size, vectors_path_for

MODEL_ID = "bench-synthetic-faces"
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Record:
    n: int
    dim: int
    backend: str
    setting: str
    p50_ms: float
    p99_ms: float
    recall_at_1: float
    recall_at_10: float
    rank1_identification: float
    bytes_per_face: float
    file_bytes_per_face: float
    build_s: float
    batch_qps: float
    threads: int


@dataclass(frozen=True)
class Gallery:
    vectors: Floats
    labels: Ints
    queries: Floats
    query_labels: Ints


def normalise(vectors: Floats) -> Floats:
    result: Floats = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return result


def synthetic_faces(n: int, dim: int, queries: int, per_identity: float, noise: float, seed: int) -> Gallery:
    rng = np.random.default_rng(seed)
    identities = max(1, round(n / per_identity))
    centres = normalise(rng.standard_normal((identities, dim), dtype=np.float32))
    labels = rng.integers(0, identities, n).astype(np.int64)
    vectors = np.empty((n, dim), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(dim))
    for start in range(0, n, 100_000):
        chunk = labels[start : start + 100_000]
        vectors[start : start + chunk.size] = normalise(
            centres[chunk] + scale * rng.standard_normal((chunk.size, dim), dtype=np.float32)
        )
    query_labels = rng.choice(np.unique(labels), size=queries, replace=True).astype(np.int64)
    held_out = normalise(centres[query_labels] + scale * rng.standard_normal((queries, dim), dtype=np.float32))
    return Gallery(vectors, labels, held_out, query_labels)


def recall(found: Ints, truth: Ints, k: int) -> float:
    hits = [np.intersect1d(row[:k], expected[:k]).size / k for row, expected in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def timed_single_queries(search: object, queries: Floats, count: int, k: int) -> tuple[float, float]:
    run = search  # a callable (queries, k) -> (similarities, ids)
    run(queries[:1], k)  # type: ignore[operator]
    times = []
    for row in range(min(count, queries.shape[0])):
        started = time.perf_counter()
        run(queries[row : row + 1], k)  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def batches(vectors: Floats, size: int) -> Iterator[tuple[Ints, Floats]]:
    for start in range(0, vectors.shape[0], size):
        chunk = vectors[start : start + size]
        yield np.arange(start, start + chunk.shape[0], dtype=np.int64), chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--backend", default="flat,ivf", help="comma-separated: flat, exact, ivf")
    parser.add_argument("--settings", default="16:100,32:100,64:100,64:200", help="nprobe:rerank pairs for ivf")
    parser.add_argument("--queries", type=int, default=1_000, help="queries for recall and the batch search")
    parser.add_argument("--single-queries", type=int, default=300, help="one-query searches timed (p50, p99)")
    parser.add_argument("--reference-single-queries", type=int, default=50, help="the same for flat and exact")
    parser.add_argument("--nlist", type=int, default=None, help="inverted lists for ivf (default: facetrace's choice)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--per-identity", type=float, default=20.0, help="mean gallery faces per identity")
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", type=Path, default=None, help="build the ivf index here and keep it (else a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    args = parser.parse_args(argv)
    threads = faiss.omp_get_max_threads()

    started = time.perf_counter()
    data = synthetic_faces(args.n, args.dim, args.queries, args.per_identity, args.noise, args.seed)
    log(args, f"generated {args.n} x {args.dim} in {time.perf_counter() - started:.1f}s")

    records: list[Record] = []
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(data.vectors)
    flat_build = time.perf_counter() - started
    started = time.perf_counter()
    _, truth = flat.search(data.queries, args.k)
    flat_batch = time.perf_counter() - started
    log(args, f"ground truth in {flat_batch:.1f}s")
    backends = args.backend.split(",")

    def record(
        backend: str, setting: str, search: object, build_s: float, ram: float, disk: float, singles: int
    ) -> None:
        started = time.perf_counter()
        _, found = search(data.queries, args.k)  # type: ignore[operator]
        batch_s = time.perf_counter() - started
        p50, p99 = timed_single_queries(search, data.queries, singles, args.k)
        result = Record(
            n=args.n,
            dim=args.dim,
            backend=backend,
            setting=setting,
            p50_ms=round(p50, 3),
            p99_ms=round(p99, 3),
            recall_at_1=round(recall(found, truth, 1), 4),
            recall_at_10=round(recall(found, truth, min(10, args.k)), 4),
            rank1_identification=round(float(np.mean(data.labels[found[:, 0]] == data.query_labels)), 4),
            bytes_per_face=round(ram, 1),
            file_bytes_per_face=round(disk, 1),
            build_s=round(build_s, 2),
            batch_qps=round(args.queries / batch_s, 1),
            threads=threads,
        )
        records.append(result)
        emit(args, result)

    if "flat" in backends:
        ram = 4 * args.dim
        record("faiss-flat", "IndexFlatIP", flat.search, flat_build, ram, 0.0, args.reference_single_queries)
    del flat

    with tempfile.TemporaryDirectory(prefix="facetrace-scale-") as directory:
        if "exact" in backends:
            path = Path(directory) / "exact.faiss"
            started = time.perf_counter()
            exact = FaissIndex(path, MODEL_ID, args.dim, fresh=True, structure="exact")
            for ids, chunk in batches(data.vectors, 100_000):
                exact.add(ids, chunk)
            exact.save()
            build = time.perf_counter() - started
            ram = exact.memory_bytes() / args.n
            record(
                "facetrace", exact.structure.describe(), exact.search, build, ram, 0.0, args.reference_single_queries
            )
            del exact
        if "ivf" in backends:
            path = (args.keep or Path(directory)) / "ivf.faiss"
            path.parent.mkdir(parents=True, exist_ok=True)
            structure = structure_for_size(args.n, args.dim)
            choice = "ivf" if structure.kind == "exact" else "auto"
            started = time.perf_counter()
            built = FaissIndex(
                path, MODEL_ID, args.dim, fresh=True, expected_count=args.n, structure=choice, nlist=args.nlist
            )
            for ids, chunk in batches(data.vectors, 100_000):
                built.add(ids, chunk)
            built.save()
            build = time.perf_counter() - started
            log(args, f"built {built.structure.describe()} in {build:.1f}s")
            del built
            index = FaissIndex(path, MODEL_ID, args.dim)
            ram = index.memory_bytes() / args.n
            disk = (vectors_path_for(path).stat().st_size + row_ids_path_for(path).stat().st_size) / args.n
            for setting in args.settings.split(","):
                nprobe, rerank = (int(part) for part in setting.split(":"))
                index.tune(nprobe=nprobe, rerank=rerank)
                record("facetrace", index.structure.describe(), index.search, build, ram, disk, args.single_queries)
    if not args.json:
        print(f"n={args.n} dim={args.dim} queries={args.queries} k={args.k} on {platform.machine()}, {threads} threads")
        header = f"{'backend':10} {'setting':42} {'p50 ms':>7} {'p99 ms':>7} {'R@1':>6} {'R@10':>6} {'id@1':>6} "
        print(header + f"{'B/face':>7} {'file B/face':>11} {'build s':>8} {'qps':>8}")
        for r in records:
            print(
                f"{r.backend:10} {r.setting:42} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.recall_at_1:6.3f} "
                f"{r.recall_at_10:6.3f} {r.rank1_identification:6.3f} {r.bytes_per_face:7.0f} "
                f"{r.file_bytes_per_face:11.0f} {r.build_s:8.1f} {r.batch_qps:8.0f}"
            )
    return 0


def emit(args: argparse.Namespace, result: Record) -> None:
    if args.json:
        print(json.dumps(asdict(result)), flush=True)


def log(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    del args


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
