"""Engine revisions: ingest throughput and one-search latency of two source trees side by side, as new/old ratios.

    python bench/engine_revisions.py [--base 439d1ae] [--new REV] [--faces 100000] [--real-photos 1000]
        [--searches 200] [--ingest-n 500] [--threads 2] [--repeats 3] [--lfw DIR] [--gallery DIR] [--json]

The two trees:
    old  revision --base, checked out with `git worktree add --detach` into a temporary folder (removed at the end)
    new  this checkout's working tree, uncommitted edits included (or revision --new, checked out the same way):
         every subprocess imports the tree as it is when it starts, so edits made during a run leak into it;
         --new HEAD measures a fixed tree
Every measurement runs in a fresh subprocess with PYTHONPATH=<that tree>/src; before measuring, the script checks
that `import facetrace` under that PYTHONPATH loads that tree's package (the venv's editable install points at this
checkout, and PYTHONPATH comes first). Both trees run under this interpreter and its installed dependencies.

What is measured, --repeats times, old and new interleaved (the order alternates: old-new, new-old, ...) so a burst
of load from other jobs falls on both:
    ingest   each tree's own bench/ingest_throughput.py --systems facetrace: the first --ingest-n photos of
             lfw/manifest.csv into a fresh data directory, --threads worker processes, end to end (worker start-up
             and model loading included); faces per second
    search   ONE gallery of --faces faces (--real-photos real LFW photos through the full ingest, the rest synthetic),
             built once by the OLD tree's bench/serve_load.py (which exits after one HTTP search) and copied into
             one data directory per tree before the new tree opens it: the new tree upgrades the catalog schema on
             first open (Alembic 0005, 0006), after which the old tree could no longer open it. In each tree's
             subprocess: open the engine (workers=1, threads=--threads), check the index against the catalog
             (engine.check() / engine.index.check(), no repair), 3 warm-up searches, then --searches sequential
             single-photo searches (engine.search_file / engine.search.file, top_k=10; the API is detected, not
             assumed), each timed from the file path to the hits, audit record included
    open     milliseconds for open_engine() and, apart, for the consistency check after it; the new tree's first
             open includes the schema upgrade (the report shows the schema before and after), so the first run's
             open is reported apart from the later runs'
Probes are the same photos for both trees, none of them in the gallery: the gallery's held-out LFW probes (the last
photo of each ingested person), then further LFW photos in manifest order, cycled if --searches asks for more.
--gallery DIR keeps the gallery for the next run (serve_load reuses a folder that already holds --faces faces): at
full size building it is most of the run. Only the old tree ever opens DIR.

The numbers: for each tree the median over the repeats of faces/s, of the per-repeat search p50 and p95 (ms), and
of the check time; ratio = new / old (above 1 is faster for faces/s, slower for milliseconds). Noise is the larger of
the two trees' relative spreads over the repeats, (max - min) / median; the verdict says "regression" or
"improvement" only when the ratio is further from 1 than that, otherwise "within noise" (one repeat: no estimate).
Three repeats on a shared machine is a coarse estimate: read the load averages printed with the figures.
The top hit of each timed search is compared across trees (same gallery, same probes: they should agree).

A table, or one JSON object with --json. Exit status 1 if a tree could not be measured.
This script imports only the standard library and numpy at module level; the per-tree work runs in subprocesses
(this script with a hidden --worker flag, under the tree's PYTHONPATH).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE = "439d1ae"
WARMUP_SEARCHES = 3
TOP_K = 10
_RESULT_PREFIX = "BENCH_RESULT "
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PROBES_FILE = "bench_probes.json"  # written by bench/serve_load.py into the gallery's data directory
GALLERY_MANIFEST = "bench_gallery.csv"  # likewise: the LFW photos it ingested


# --------------------------------------------------------------------------------------------------------------------
# The pure parts: API detection, probes, summaries (unit-tested without models).


def engine_api(engine: object) -> str:
    """'old' for the engine before the services refactor (engine.search_file, engine.check()), else 'new'
    (engine.search.file, engine.index.check())."""
    return "old" if hasattr(engine, "search_file") else "new"


def engine_calls(engine: Any) -> tuple[Callable[..., Any], Callable[[], Any]]:
    """(search a file, check the index) in the engine's own API."""
    if engine_api(engine) == "old":
        return engine.search_file, engine.check
    return engine.search.file, engine.index.check


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def latency_summary(milliseconds: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": percentile(milliseconds, 50), "p95_ms": percentile(milliseconds, 95)}


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median over the repeats: 0 for a single run."""
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else float("inf")


@dataclass(frozen=True)
class Comparison:
    metric: str
    higher_is_better: bool
    old: float  # median over the repeats
    new: float
    ratio: float  # new / old
    noise: float  # the larger relative spread of the two, 0 with one repeat
    verdict: str
    old_runs: tuple[float, ...] = ()
    new_runs: tuple[float, ...] = ()


def compare(metric: str, old_runs: Sequence[float], new_runs: Sequence[float], *, higher_is_better: bool) -> Comparison:
    old, new = statistics.median(old_runs), statistics.median(new_runs)
    ratio = new / old if old else float("nan")
    noise = max(relative_spread(old_runs), relative_spread(new_runs))
    if min(len(old_runs), len(new_runs)) < 2:
        verdict = "one run: no noise estimate"
    elif not np.isfinite(ratio):
        verdict = "n/a"
    else:
        better = ratio > 1 + noise if higher_is_better else ratio < 1 - noise
        worse = ratio < 1 - noise if higher_is_better else ratio > 1 + noise
        verdict = "improvement" if better else "regression" if worse else "within noise"
    return Comparison(metric, higher_is_better, old, new, ratio, noise, verdict, tuple(old_runs), tuple(new_runs))


def choose_probes(data: Path, lfw: Path, count: int) -> list[str]:
    """Up to `count` distinct LFW photos not in the gallery: serve_load's held-out probes first (their people are in
    the gallery), then the rest of lfw/manifest.csv in its order."""
    gallery = set()
    manifest = data / GALLERY_MANIFEST
    if manifest.exists():
        with manifest.open(newline="", encoding="utf-8") as handle:
            gallery = {str(Path(row["uri"]).resolve()) for row in csv.DictReader(handle)}
    chosen: list[str] = []
    seen: set[str] = set()

    def take(path: str) -> None:
        resolved = str(Path(path).resolve())
        if resolved not in gallery and resolved not in seen and len(chosen) < count:
            seen.add(resolved)
            chosen.append(resolved)

    probes_file = data / PROBES_FILE
    if probes_file.exists():
        for probe in json.loads(probes_file.read_text(encoding="utf-8"))["probes"]:
            take(probe["path"])
    with (lfw / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if len(chosen) >= count:
                break
            take(str(lfw / row["path"]))
    return chosen


def parse_ingest_output(stdout: str) -> dict[str, Any]:
    """The facetrace row of bench/ingest_throughput.py --json (one JSON object, possibly after other output)."""
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON object in the ingest benchmark's output")
    payload, _ = json.JSONDecoder().raw_decode(stdout[start:])
    rows = [row for row in payload["results"] if row["system"] == "facetrace"]
    if not rows:
        raise ValueError("the ingest benchmark reported no facetrace row")
    row: dict[str, Any] = rows[0]
    if not row["available"]:
        raise ValueError(f"facetrace ingest did not run: {row.get('reason', '')}")
    return row


def top_hit_agreement(old: Sequence[int | None], new: Sequence[int | None]) -> float:
    """The share of searches whose top hit is the same face in both trees."""
    pairs = list(zip(old, new, strict=False))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else float("nan")


def format_table(comparisons: Sequence[Comparison]) -> str:
    header = f"{'metric':<34} {'old':>10} {'new':>10} {'new/old':>8} {'noise':>7}  verdict"
    lines = [header, "-" * len(header)]
    for c in comparisons:
        noise = f"{c.noise:.1%}" if c.noise else "-"
        lines.append(f"{c.metric:<34} {c.old:>10.2f} {c.new:>10.2f} {c.ratio:>8.3f} {noise:>7}  {c.verdict}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DEFAULT_BASE, help="the old revision (default: %(default)s)")
    parser.add_argument("--new", default=None, help="the new revision (default: this checkout's working tree)")
    parser.add_argument("--faces", type=_positive, default=100_000, help="gallery size, real plus synthetic faces")
    parser.add_argument("--real-photos", type=_positive, default=1_000, help="LFW photos ingested into the gallery")
    parser.add_argument("--searches", type=_positive, default=200, help="timed searches per tree and repeat")
    parser.add_argument("--ingest-n", type=_positive, default=500, help="photos per ingest throughput run")
    parser.add_argument("--threads", type=_positive, default=2, help="ingest worker processes; search threads")
    parser.add_argument("--repeats", type=_positive, default=3, help="interleaved old/new rounds")
    parser.add_argument("--lfw", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "lfw")
    parser.add_argument(
        "--gallery",
        type=Path,
        default=None,
        help="keep the old tree's gallery in this folder and reuse it when it already holds --faces faces "
        "(default: a temporary one); only the old tree ever opens it, each tree searches a copy",
    )
    parser.add_argument("--timeout-s", type=float, default=7200.0, help="give up on one subprocess after this long")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    parser.add_argument("--worker", choices=["search"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probes-file", type=Path, help=argparse.SUPPRESS)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# --------------------------------------------------------------------------------------------------------------------
# The worker: one tree's search timing, in a subprocess whose PYTHONPATH names that tree's src.


def schema_version(data: Path) -> str | None:
    """The catalog's Alembic revision, read with sqlite3 (None if it is not a SQLite catalog in data)."""
    catalog = data / "catalog.db"
    if not catalog.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def search_worker(data: Path, probes: Sequence[str], searches: int, threads: int) -> dict[str, Any]:
    import facetrace
    from facetrace.engine import open_engine

    schema_before = schema_version(data)
    started = time.perf_counter()
    engine = open_engine(data, workers=1, threads=threads)
    try:
        opened = time.perf_counter()
        search, check = engine_calls(engine)
        report = check()
        checked = time.perf_counter()
        warmup, timed = probes[:WARMUP_SEARCHES], probes[WARMUP_SEARCHES:] or probes
        for probe in warmup:
            search(probe, top_k=TOP_K)
        milliseconds: list[float] = []
        top_hits: list[int | None] = []
        faces = 0
        for number in range(searches):
            probe = timed[number % len(timed)]
            began = time.perf_counter()
            results = search(probe, top_k=TOP_K)
            milliseconds.append((time.perf_counter() - began) * 1000.0)
            faces += len(results)
            hits = [r.hits for r in results if r.hits]
            top_hits.append(int(hits[0][0].face.face_id) if hits else None)
    finally:
        engine.close()
    return {
        "facetrace": str(Path(facetrace.__file__).resolve()),
        "api": engine_api(engine),
        "schema_before": schema_before,
        "schema_after": schema_version(data),
        "open_ms": (opened - started) * 1000.0,
        "check_ms": (checked - opened) * 1000.0,
        "catalog_faces": report.catalog_faces,
        "index_entries": report.index_entries,
        "consistent": report.missing_from_index == 0 and report.orphaned_in_index == 0,
        "probe_faces": faces,
        "milliseconds": milliseconds,
        "top_hits": top_hits,
        **latency_summary(milliseconds),
    }


def _worker_main(args: argparse.Namespace) -> int:
    probes = json.loads(args.probes_file.read_text(encoding="utf-8"))
    result = search_worker(args.data, probes, args.searches, args.threads)
    sys.stdout.write(_RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# The driver.


@dataclass
class Tree:
    name: str  # "old" or "new"
    revision: str  # what was asked for, as shown
    root: Path
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"ingest": [], "search": []})

    @property
    def src(self) -> Path:
        return self.root / "src"

    def env(self, threads_per_process: int) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.src), env.get("PYTHONPATH", "")]))
        for name in _THREAD_VARIABLES:
            env[name] = str(threads_per_process)
        return env


class BenchError(RuntimeError):
    """A tree could not be measured; the message says where."""


def _run(command: Sequence[str], env: dict[str, str], timeout_s: float, what: str) -> str:
    try:
        completed = subprocess.run(
            list(command), env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: did not finish in {timeout_s:.0f} s") from exc
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:]) or completed.stdout[-2000:]
        raise BenchError(f"{what}: exit status {completed.returncode}\n{tail}")
    return completed.stdout


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def worktree(revision: str, path: Path) -> Iterator[Path]:
    """A detached worktree of `revision` at `path`, removed (and pruned) on the way out."""
    _git("worktree", "add", "--quiet", "--detach", str(path), revision)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)], check=False)
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "prune"], check=False)


def _describe(revision: str | None) -> str:
    if revision is not None:
        return f"{revision} ({_git('rev-parse', '--short', revision + '^{commit}')})"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return f"working tree at {_git('rev-parse', '--short', 'HEAD')}" + (" + uncommitted edits" if dirty else "")


def verify_import(tree: Tree, timeout_s: float) -> str:
    """Where `import facetrace` lands under the tree's PYTHONPATH: it must be the tree's own src."""
    code = "import facetrace; print(facetrace.__file__)"
    where = _run([sys.executable, "-c", code], tree.env(1), timeout_s, f"{tree.name}: import").strip().splitlines()[-1]
    if not Path(where).resolve().is_relative_to(tree.src.resolve()):
        raise BenchError(f"{tree.name}: PYTHONPATH={tree.src} imports facetrace from {where}")
    return where


def build_gallery(old: Tree, data: Path, lfw: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The old tree's serve_load builds (or reuses) the gallery and answers one search; its JSON report."""
    command = [sys.executable, str(old.root / "bench" / "serve_load.py"), "--data", str(data), "--lfw", str(lfw)]
    command += ["--faces", str(args.faces), "--real-photos", str(args.real_photos)]
    command += ["--max-requests", "1", "--clients", "1", "--json"]
    out = _run(command, old.env(1), args.timeout_s, "old: bench/serve_load.py (gallery)")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def run_ingest(tree: Tree, datasets: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(tree.root / "bench" / "ingest_throughput.py"), "--n", str(args.ingest_n)]
    command += ["--threads", str(args.threads), "--systems", "facetrace", "--json", "--datasets", str(datasets)]
    out = _run(command, tree.env(1), args.timeout_s, f"{tree.name}: bench/ingest_throughput.py")
    try:
        return parse_ingest_output(out)
    except (ValueError, KeyError) as exc:
        raise BenchError(f"{tree.name}: bench/ingest_throughput.py: {exc}") from exc


def run_search(tree: Tree, data: Path, probes_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "search", "--data", str(data)]
    command += ["--probes-file", str(probes_file), "--searches", str(args.searches), "--threads", str(args.threads)]
    out = _run(command, tree.env(args.threads), args.timeout_s, f"{tree.name}: searches")
    lines = [line for line in out.splitlines() if line.startswith(_RESULT_PREFIX)]
    if not lines:
        raise BenchError(f"{tree.name}: the search worker printed no result")
    result: dict[str, Any] = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    if not Path(result["facetrace"]).is_relative_to(tree.src.resolve()):
        raise BenchError(f"{tree.name}: the search worker imported facetrace from {result['facetrace']}")
    return result


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(trees: Sequence[Tree], lfw: Path, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    old, new = trees
    # ingest_throughput.py reads <datasets>/lfw; --lfw may be named otherwise.
    datasets = scratch / "datasets"
    datasets.mkdir()
    (datasets / "lfw").symlink_to(lfw, target_is_directory=True)

    gallery = args.gallery.resolve() if args.gallery else scratch / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    _progress(f"building the gallery with the old tree in {gallery} ({args.faces:,} faces) ...")
    began = time.perf_counter()
    gallery_report = build_gallery(old, gallery, lfw, args)
    gallery_s = time.perf_counter() - began
    copies = {tree.name: scratch / f"data-{tree.name}" for tree in trees}
    for tree in trees:  # both copies before the new tree upgrades one of them
        shutil.copytree(gallery, copies[tree.name], symlinks=True)
    probes = choose_probes(gallery, lfw, args.searches + WARMUP_SEARCHES)
    for probe in probes:  # page cache: neither tree pays for the first read
        Path(probe).read_bytes()
    probes_file = scratch / "probes.json"
    probes_file.write_text(json.dumps(probes), encoding="utf-8")

    for repeat in range(args.repeats):
        order = trees if repeat % 2 == 0 else trees[::-1]
        for tree in order:
            _progress(f"[{repeat + 1}/{args.repeats}] {tree.name}: ingest of {args.ingest_n} photos ...")
            row = run_ingest(tree, datasets, args)
            tree.runs["ingest"].append(row)
            _progress(f"  {row['faces_per_s']:.2f} faces/s")
        for tree in order:
            _progress(f"[{repeat + 1}/{args.repeats}] {tree.name}: {args.searches} searches ...")
            result = run_search(tree, copies[tree.name], probes_file, args)
            tree.runs["search"].append(result)
            _progress(f"  p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms ({result['api']} API)")

    def series(tree: Tree, kind: str, key: str) -> list[float]:
        return [float(run[key]) for run in tree.runs[kind]]

    comparisons = [
        compare(
            f"ingest faces/s (n={args.ingest_n})",
            series(old, "ingest", "faces_per_s"),
            series(new, "ingest", "faces_per_s"),
            higher_is_better=True,
        ),
        compare(
            "search p50 ms", series(old, "search", "p50_ms"), series(new, "search", "p50_ms"), higher_is_better=False
        ),
        compare(
            "search p95 ms", series(old, "search", "p95_ms"), series(new, "search", "p95_ms"), higher_is_better=False
        ),
        compare(
            "index check ms",
            series(old, "search", "check_ms"),
            series(new, "search", "check_ms"),
            higher_is_better=False,
        ),
        compare(
            "open ms, first run",
            series(old, "search", "open_ms")[:1],
            series(new, "search", "open_ms")[:1],
            higher_is_better=False,
        ),
    ]
    if args.repeats > 1:
        comparisons.append(
            compare(
                "open ms, later runs",
                series(old, "search", "open_ms")[1:],
                series(new, "search", "open_ms")[1:],
                higher_is_better=False,
            )
        )
    agreement = [
        top_hit_agreement(a["top_hits"], b["top_hits"])
        for a, b in zip(old.runs["search"], new.runs["search"], strict=True)
    ]
    return {
        "gallery": {
            "faces": gallery_report.get("faces"),
            "real_faces": gallery_report.get("real_faces"),
            "synthetic_faces": gallery_report.get("synthetic_faces"),
            "build_s": round(gallery_s, 1),
            "probes": len(probes),
        },
        "comparisons": [asdict(c) for c in comparisons],
        "top_hit_agreement": min(agreement) if agreement else None,
        "_comparisons": comparisons,
    }


def _summary_runs(tree: Tree) -> dict[str, Any]:
    """Per-run figures without the raw per-search lists."""
    searches = [{k: v for k, v in run.items() if k not in ("milliseconds", "top_hits")} for run in tree.runs["search"]]
    ingests = [
        {k: run.get(k) for k in ("images", "faces", "seconds", "faces_per_s", "configuration")}
        for run in tree.runs["ingest"]
    ]
    return {"ingest": ingests, "search": searches}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker_main(args)

    lfw = args.lfw.resolve()
    if not (lfw / "manifest.csv").is_file():
        raise SystemExit(f"no LFW manifest at {lfw / 'manifest.csv'} (give --lfw)")
    load_start = _load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engine-revisions-") as scratch_name:
        scratch = Path(scratch_name)
        old = Tree("old", _describe(args.base), scratch / "old")
        new_revision = _describe(args.new)
        with worktree(args.base, old.root):
            if args.new is not None:
                new = Tree("new", new_revision, scratch / "new")
                context: Any = worktree(args.new, new.root)
            else:
                new = Tree("new", new_revision, REPO_ROOT)
                context = contextlib.nullcontext()
            with context:
                try:
                    imports = {tree.name: verify_import(tree, args.timeout_s) for tree in (old, new)}
                    outcome = measure((old, new), lfw, scratch, args)
                except BenchError as exc:
                    print(f"engine_revisions: {exc}", file=sys.stderr)
                    return 1
    comparisons: list[Comparison] = outcome.pop("_comparisons")
    machine = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": load_start,
        "load_average_end": _load_average(),
    }
    payload = {
        "old": {"revision": old.revision, "facetrace": imports["old"], "runs": _summary_runs(old)},
        "new": {"revision": new.revision, "facetrace": imports["new"], "runs": _summary_runs(new)},
        "settings": {
            key: getattr(args, key) for key in ("faces", "real_photos", "searches", "ingest_n", "threads", "repeats")
        },
        "machine": machine,
        "seconds": round(time.perf_counter() - started, 1),
        **outcome,
    }
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    print(format_report(payload, comparisons))
    return 0


def format_report(payload: dict[str, Any], comparisons: Sequence[Comparison]) -> str:
    gallery, machine, settings = payload["gallery"], payload["machine"], payload["settings"]
    first = {name: payload[name]["runs"]["search"][0] for name in ("old", "new")}
    schemas = ", ".join(f"{name} {run['schema_before']} -> {run['schema_after']}" for name, run in first.items())
    faces = ", ".join(
        f"{name} {'/'.join(str(run['faces']) for run in payload[name]['runs']['ingest'])}" for name in ("old", "new")
    )
    return "\n".join(
        [
            f"old: {payload['old']['revision']}; new: {payload['new']['revision']}",
            f"gallery: {gallery['faces']:,} faces ({gallery['real_faces']:,} from {settings['real_photos']:,} "
            f"real LFW photos, {gallery['synthetic_faces']:,} synthetic), built by the old tree in "
            f"{gallery['build_s']:.0f} s",
            f"searches: {settings['searches']} timed per tree and repeat after {WARMUP_SEARCHES} warm-up, "
            f"top_k={TOP_K}, {gallery['probes']} distinct held-out probe photos",
            f"machine: {machine['cores']} cores, Python {machine['python']}; load average "
            f"{machine['load_average_start']} at start, {machine['load_average_end']} at end; "
            f"{settings['repeats']} repeat(s), old/new interleaved, {payload['seconds']:.0f} s in all",
            "",
            format_table(comparisons),
            "",
            "new/old: above 1 is faster for faces/s, slower for ms. Medians over the repeats; noise = the larger",
            "relative spread (max - min) / median of the two trees' runs.",
            f"catalog schema at the first search run (before -> after opening): {schemas}",
            f"faces stored per ingest run: {faces}",
            f"top hit the same face in both trees: {payload['top_hit_agreement']:.1%} of the timed searches "
            "(worst repeat)",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
