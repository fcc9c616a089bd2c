"""Search at scale: facetrace's FAISS structures against raw exact FAISS on synthetic face-like embeddings.

    python bench/search_scale.py --n 1000000 --dim 512 [--backend flat,ivf] [--settings default,512:100]
        [--queries 1000] [--noise 0.5] [--json]

The gallery imitates a face gallery: n / --per-identity identities, each a random centre on the unit sphere; every
gallery face picks an identity at random (so identities hold a Poisson number of faces, some only one) and is its
centre plus Gaussian noise, renormalised (--noise 0.8 gives a same-identity cosine of about 0.6, --noise 0.5 about
0.8). Queries are fresh noisy samples of identities present in the gallery (held out: not gallery vectors).
Everything is seeded (--seed), and the gallery is streamed: generated in chunks of 100,000 (each from its own seeded
generator, so every pass sees the same vectors) and never held whole, so that 10M x 512 (20 GB as float32) fits in
24 GB beside the index being built.

Backends (--backend, comma-separated):
    flat     raw faiss.IndexFlatIP, the exact reference and the ground truth for recall, over chunks of --flat-chunk
             vectors (1M): each chunk is searched for every query and a running top-k is merged over the chunks.
             Its timings are the sums over chunks of the search time alone (not the generation); single-query
             timings on the first --reference-single-queries queries. With n <= --flat-chunk it is one plain index.
    exact    facetrace's FaissIndex with structure="exact" (IDMap2,Flat plus facetrace's checks and ordering);
             holds every vector in RAM as float32, so only for small n
    ivf      facetrace's FaissIndex with the approximate structure for n (IVF + SQ8 / fast-scan PQ codes + re-ranking
             with the float16 vectors), built as `facetrace index rebuild` would (expected_count=n, batches of 100k:
             it trains and tunes itself on its first batches, and tunes itself again at the save), saved, then
             reopened (vectors memory-mapped) and searched at every --settings nprobe:rerank pair ("default", the
             default, for the depth and single-query thread count the index chose itself); the setting column
             names the thread count single queries ran on

The ground truth is always computed (recall needs it); --backend only chooses which records are printed.

One JSON record per backend and setting (with --json; otherwise a table): n, dim, backend, setting, p50_ms and
p99_ms (one-query searches, after a warm-up), recall_at_1 and recall_at_10 (against exact search), id_at_1 (the top
hit is of the query's identity), bytes_per_face (RAM estimate of the index; the memory-mapped vectors are
file_bytes_per_face), build_s (add + train + save), batch_qps (all queries in one call), noise, load_avg (1-minute
load average when the record was taken: the machine is shared), peak_rss_gb (the process's peak so far).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

# libgomp reads its wait policy when faiss loads it: spinning OpenMP threads make a query spread over two threads very
# slow on a busy machine (48 ms against 3 ms at load 4 on the 1M index, docs/backends.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.index.faiss.backend import FaissIndex
from facetrace.index.faiss.files import row_ids_path_for, vectors_path_for
from facetrace.index.faiss.sizing import structure_for_size

MODEL_ID = "bench-synthetic-faces"
CHUNK = 100_000
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Search = Callable[[Floats, int], tuple[Floats, Ints]]


@dataclass(frozen=True)
class Record:
    n: int
    dim: int
    noise: float
    backend: str
    setting: str
    p50_ms: float
    p99_ms: float
    recall_at_1: float
    recall_at_10: float
    id_at_1: float
    bytes_per_face: float
    file_bytes_per_face: float
    build_s: float
    batch_qps: float
    single_queries: int
    threads: int
    load_avg: float
    peak_rss_gb: float


def normalise(vectors: Floats) -> Floats:
    result: Floats = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return result


class SyntheticFaces:
    """Identity centres, the identity of every gallery face, and held-out queries; gallery vectors on demand."""

    def __init__(self, n: int, dim: int, queries: int, per_identity: float, noise: float, seed: int) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng(seed)
        identities = max(1, round(n / per_identity))
        self.centres = normalise(rng.standard_normal((identities, dim), dtype=np.float32))
        self.labels: Ints = rng.integers(0, identities, n).astype(np.int64)
        self.scale = np.float32(noise / np.sqrt(dim))
        self.query_labels: Ints = rng.choice(np.unique(self.labels), size=queries, replace=True).astype(np.int64)
        self.queries = normalise(
            self.centres[self.query_labels] + self.scale * rng.standard_normal((queries, dim), dtype=np.float32)
        )

    def chunks(self) -> Iterator[tuple[int, Floats]]:
        """(first row, vectors) in chunks of CHUNK; chunk i always comes from generator (seed, i)."""
        for number, start in enumerate(range(0, self.n, CHUNK)):
            labels = self.labels[start : start + CHUNK]
            rng = np.random.default_rng([self.seed, number])
            noise = rng.standard_normal((labels.size, self.dim), dtype=np.float32)
            yield start, normalise(self.centres[labels] + self.scale * noise)

    def grouped(self, size: int) -> Iterator[tuple[int, Floats]]:
        """The same vectors in chunks of about `size` (a multiple of CHUNK), for the exact reference."""
        parts: list[Floats] = []
        first = 0
        for start, vectors in self.chunks():
            if not parts:
                first = start
            parts.append(vectors)
            if len(parts) * CHUNK >= size:
                yield first, np.vstack(parts)
                parts = []
        if parts:
            yield first, np.vstack(parts)


@dataclass
class Reference:
    """Exact top-k of every query (the ground truth) and the flat index's timings, summed over chunks."""

    truth: Ints
    build_s: float
    batch_s: float
    single_ms: list[float]


def exact_reference(
    data: SyntheticFaces,
    k: int,
    chunk: int,
    singles: int,
    log: Callable[[str], None],
    *,
    float16: bool = False,
) -> Reference:
    """Exact search over every gallery vector (float16=True: over their float16 roundings, as the approximate index
    re-ranks with, queries staying float32)."""
    queries = data.queries
    best_similarities = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    best_ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
    build_s = batch_s = 0.0
    single_ms = [0.0] * min(singles, queries.shape[0])
    for first, vectors in data.grouped(chunk):
        if float16:
            vectors = vectors.astype(np.float16).astype(np.float32)
        started = time.perf_counter()
        flat = faiss.IndexFlatIP(data.dim)
        flat.add(vectors)
        build_s += time.perf_counter() - started
        started = time.perf_counter()
        similarities, ids = flat.search(queries, k)
        batch_s += time.perf_counter() - started
        flat.search(queries[:1], k)  # warm-up
        for row in range(len(single_ms)):
            started = time.perf_counter()
            flat.search(queries[row : row + 1], k)
            single_ms[row] += (time.perf_counter() - started) * 1000
        merged_similarities = np.hstack([best_similarities, similarities])
        merged_ids = np.hstack([best_ids, np.where(ids >= 0, ids + first, -1)])
        order = np.argsort(-merged_similarities, axis=1, kind="stable")[:, :k]
        best_similarities = np.take_along_axis(merged_similarities, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
        log(f"exact reference: {first + vectors.shape[0]:,} of {data.n:,} rows, {batch_s:.1f}s searching")
        del flat, vectors
    return Reference(best_ids, build_s, batch_s, single_ms)


def recall(found: Ints, truth: Ints, k: int) -> float:
    hits = [np.intersect1d(row[:k], expected[:k]).size / k for row, expected in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def timed_single_queries(search: Search, queries: Floats, count: int, k: int) -> list[float]:
    search(queries[:1], k)
    times = []
    for row in range(min(count, queries.shape[0])):
        started = time.perf_counter()
        search(queries[row : row + 1], k)
        times.append((time.perf_counter() - started) * 1000)
    return times


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--backend", default="flat,ivf", help="comma-separated: flat, exact, ivf")
    parser.add_argument(
        "--settings",
        default="default",
        help="comma-separated nprobe:rerank pairs for ivf, or default (the depth the index tuned itself to)",
    )
    parser.add_argument("--queries", type=int, default=1_000, help="queries for recall and the batch search")
    parser.add_argument("--single-queries", type=int, default=300, help="one-query searches timed (p50, p99)")
    parser.add_argument("--reference-single-queries", type=int, default=50, help="the same for flat and exact")
    parser.add_argument("--flat-chunk", type=int, default=1_000_000, help="vectors per chunk of the exact reference")
    parser.add_argument("--nlist", type=int, default=None, help="inverted lists for ivf (default: facetrace's choice)")
    parser.add_argument("--code", default=None, help="compressed code for ivf, e.g. SQ8 or PQ16x4fs (default: by dim)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--per-identity", type=float, default=20.0, help="mean gallery faces per identity")
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build the ivf index here and keep it (else a temp dir); an index kept there by an earlier run on the "
        "same data (n, dim, noise, seed, per-identity, nlist, code) is reopened instead of rebuilt",
    )
    parser.add_argument(
        "--float16-reference",
        action="store_true",
        help="also search the float16-rounded gallery exactly: what float16 re-ranking vectors alone cost in recall",
    )
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    args = parser.parse_args(argv)
    threads = faiss.omp_get_max_threads()

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    data = SyntheticFaces(args.n, args.dim, args.queries, args.per_identity, args.noise, args.seed)
    backends = args.backend.split(",")
    reference = exact_reference(
        data,
        args.k,
        args.flat_chunk,
        args.reference_single_queries if "flat" in backends else 0,
        log,
    )
    truth = reference.truth
    log(f"ground truth in {reference.batch_s:.1f}s of searching")
    records: list[Record] = []

    def emit_record(
        backend: str,
        setting: str,
        found: Ints,
        single_ms: list[float],
        batch_s: float,
        build_s: float,
        ram: float,
        disk: float,
    ) -> None:
        result = Record(
            n=args.n,
            dim=args.dim,
            noise=args.noise,
            backend=backend,
            setting=setting,
            p50_ms=round(float(np.percentile(single_ms, 50)), 3),
            p99_ms=round(float(np.percentile(single_ms, 99)), 3),
            recall_at_1=round(recall(found, truth, 1), 4),
            recall_at_10=round(recall(found, truth, min(10, args.k)), 4),
            id_at_1=round(float(np.mean(data.labels[found[:, 0]] == data.query_labels)), 4),
            bytes_per_face=round(ram, 1),
            file_bytes_per_face=round(disk, 1),
            build_s=round(build_s, 2),
            batch_qps=round(args.queries / batch_s, 1),
            single_queries=len(single_ms),
            threads=threads,
            load_avg=round(os.getloadavg()[0], 2),
            peak_rss_gb=round(peak_rss_gb(), 2),
        )
        records.append(result)
        emit(args, result)

    def measure(
        backend: str, setting: str, search: Search, build_s: float, ram: float, disk: float, singles: int
    ) -> None:
        started = time.perf_counter()
        _, found = search(data.queries, args.k)
        batch_s = time.perf_counter() - started
        single_ms = timed_single_queries(search, data.queries, singles, args.k)
        emit_record(backend, setting, found, single_ms, batch_s, build_s, ram, disk)

    if "flat" in backends:
        chunks = -(-args.n // args.flat_chunk)
        setting = "IndexFlatIP" if chunks == 1 else f"IndexFlatIP over {chunks} chunks"
        emit_record(
            "faiss-flat", setting, truth, reference.single_ms, reference.batch_s, reference.build_s, 4 * args.dim, 0.0
        )

    if args.float16_reference:
        rounded = exact_reference(data, args.k, args.flat_chunk, args.reference_single_queries, log, float16=True)
        emit_record(
            "faiss-flat",
            "IndexFlatIP, float16-rounded gallery",
            rounded.truth,
            rounded.single_ms,
            rounded.batch_s,
            rounded.build_s,
            4 * args.dim,
            0.0,
        )

    with tempfile.TemporaryDirectory(prefix="facetrace-scale-") as directory:
        if "exact" in backends:
            path = Path(directory) / "exact.faiss"
            started = time.perf_counter()
            exact = FaissIndex(path, MODEL_ID, args.dim, fresh=True, structure="exact")
            for start, chunk in data.chunks():
                exact.add(np.arange(start, start + chunk.shape[0], dtype=np.int64), chunk)
            exact.save()
            build = time.perf_counter() - started
            ram = exact.memory_bytes() / args.n
            measure(
                "facetrace", exact.structure.describe(), exact.search, build, ram, 0.0, args.reference_single_queries
            )
            del exact
        if "ivf" in backends:
            path = (args.keep or Path(directory)) / "ivf.faiss"
            path.parent.mkdir(parents=True, exist_ok=True)
            reused = reused_build_s(args, path)
            if reused is not None:
                log(f"ivf: reusing the index kept in {args.keep} (built in {reused:.1f}s)")
            build = reused if reused is not None else build_ivf(args, data, path, log)
            index = FaissIndex(path, MODEL_ID, args.dim)
            default = index.structure
            ram = index.memory_bytes() / args.n
            disk = (vectors_path_for(path).stat().st_size + row_ids_path_for(path).stat().st_size) / args.n
            for number, setting in enumerate(args.settings.split(",")):
                # The reopened index searches at its own depth and thread count; tune() fixes another depth (and
                # times its thread counts again).
                if setting != "default":
                    nprobe, rerank = (int(part) for part in setting.split(":"))
                    index.tune(nprobe=nprobe, rerank=rerank)
                elif number:
                    index.tune(nprobe=default.nprobe, rerank=default.rerank)
                threads = index.single_query_threads
                log(f"{index.structure.describe()}: single queries on {threads} thread(s)")
                measure(
                    "facetrace",
                    f"{index.structure.describe()},threads={threads}",
                    index.search,
                    build,
                    ram,
                    disk,
                    args.single_queries,
                )
    if not args.json:
        print(f"n={args.n} dim={args.dim} queries={args.queries} k={args.k} on {platform.machine()}, {threads} threads")
        header = f"{'backend':10} {'setting':56} {'p50 ms':>7} {'p99 ms':>7} {'R@1':>6} {'R@10':>6} {'id@1':>6} "
        print(header + f"{'B/face':>7} {'file B/face':>11} {'build s':>8} {'qps':>8} {'load':>5}")
        for r in records:
            print(
                f"{r.backend:10} {r.setting:56} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.recall_at_1:6.3f} "
                f"{r.recall_at_10:6.3f} {r.id_at_1:6.3f} {r.bytes_per_face:7.0f} "
                f"{r.file_bytes_per_face:11.0f} {r.build_s:8.1f} {r.batch_qps:8.0f} {r.load_avg:5.1f}"
            )
    return 0


# What must match for an index kept by --keep to be reused instead of rebuilt.
BUILD_KEYS = ("n", "dim", "noise", "seed", "per_identity", "nlist", "code")


def build_marker(path: Path) -> Path:
    return path.with_name("bench-build.json")


def reused_build_s(args: argparse.Namespace, path: Path) -> float | None:
    """The build time of an index that --keep holds from an earlier run on the same data, or None (build it)."""
    marker = build_marker(path)
    if args.keep is None or not marker.exists() or not path.exists():
        return None
    recorded = json.loads(marker.read_text())
    if any(recorded.get(key) != getattr(args, key) for key in BUILD_KEYS):
        return None
    return float(recorded["build_s"])


def build_ivf(args: argparse.Namespace, data: SyntheticFaces, path: Path, log: Callable[[str], None]) -> float:
    """Build the approximate index as a rebuild would and save it; the seconds taken (add, train, tune, save)."""
    structure = structure_for_size(args.n, args.dim)
    choice = "ivf" if structure.kind == "exact" else "auto"
    started = time.perf_counter()
    built = FaissIndex(
        path,
        MODEL_ID,
        args.dim,
        fresh=True,
        expected_count=args.n,
        structure=choice,
        nlist=args.nlist,
        code=args.code,
    )
    for start, chunk in data.chunks():
        built.add(np.arange(start, start + chunk.shape[0], dtype=np.int64), chunk)
        if start % 1_000_000 == 0:
            log(f"ivf: added {start + chunk.shape[0]:,} rows in {time.perf_counter() - started:.0f}s")
    log(f"ivf: saving (and tuning again) after {time.perf_counter() - started:.0f}s")
    built.save()
    build = time.perf_counter() - started
    log(f"built {built.structure.describe()} in {build:.1f}s, peak RSS {peak_rss_gb():.1f} GB")
    log(f"self-tuned operating point: {built.describe()['operating_point']}")
    build_marker(path).write_text(json.dumps({key: getattr(args, key) for key in BUILD_KEYS} | {"build_s": build}))
    return build


def emit(args: argparse.Namespace, result: Record) -> None:
    if args.json:
        print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
