"""Ingest throughput: faces per second of facetrace against face_recognition and deepface on the same LFW photos.

    python bench/ingest_throughput.py --n 1000 --threads 2 [--json]

Every system gets the same first N photos of lfw/manifest.csv (sorted by path) and the same parallelism: --threads
worker processes for face_recognition (dlib is single-threaded per call) and facetrace's ingest, --threads
intra-op threads for deepface (TensorFlow parallelises inside one process), with OMP/OpenBLAS/MKL pools pinned to
one thread per process (--threads for deepface) so no system quietly uses more cores than another.
Each system runs in its own subprocess (thread pools are fixed at import), timed end to end from a list of paths
to stored (facetrace) or returned (baselines) embeddings, including worker start-up and model loading, which is what
a user waits for. Photos are read from the page cache: the first system is not penalised, one unmeasured pass reads
them all beforehand.

--face-mesh DIR runs facetrace's rows with the face mesh landmark model that DIR (a data directory) holds
(scripts/install_face_mesh.py), as `landmarks: auto` runs once the model is installed; without it they align on the
detector's points.

A system that cannot run here (not installed, or its weights cannot be downloaded) is reported as
"unavailable: <reason>" instead of failing the benchmark.

This script imports only the standard library at module level, so a worker can run under another interpreter
(--deepface-python) that has deepface but not facetrace.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("facetrace", "facetrace-analyze", "face_recognition", "deepface")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_RESULT_PREFIX = "BENCH_RESULT "
# --face-mesh, passed to the workers: a data directory whose models/ holds the face mesh model.
_FACE_MESH_VARIABLE = "FACETRACE_BENCH_FACE_MESH"


@dataclass(frozen=True)
class SystemResult:
    system: str
    configuration: str
    available: bool
    reason: str = ""
    images: int = 0
    faces: int = 0
    images_without_face: int = 0
    seconds: float = 0.0
    runs_seconds: tuple[float, ...] = ()  # every repetition; `seconds` is the fastest

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------------------------
# Workers: each runs in a fresh subprocess and prints one BENCH_RESULT line.


def _count_results(faces_per_image: Sequence[int]) -> dict[str, int]:
    return {
        "images": len(faces_per_image),
        "faces": sum(faces_per_image),
        "images_without_face": sum(1 for count in faces_per_image if count == 0),
    }


def run_facetrace_ingest(paths: Sequence[str], threads: int) -> dict[str, Any]:
    """facetrace's full ingest (decode, detect, quality, align, embed, thumbnails, catalog rows, FAISS index) into a
    fresh data directory, with `threads` worker processes of one inference thread each."""
    from facetrace.engine import open_engine

    mesh = os.environ.get(_FACE_MESH_VARIABLE)
    with tempfile.TemporaryDirectory(prefix="facetrace-bench-") as data_dir:
        if mesh:  # the model installed as scripts/install_face_mesh.py installs it
            shutil.copytree(Path(mesh) / "models", Path(data_dir) / "models")
        engine = open_engine(data_dir, workers=threads, threads=1)
        started = time.perf_counter()
        summary = engine.ingest.run(paths, description="ingest throughput benchmark")
        seconds = time.perf_counter() - started
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    if summary.errors:
        raise RuntimeError(f"{summary.errors} ingest errors, e.g. {summary.error_messages[:3]}")
    return {
        "images": summary.images_seen,
        "faces": summary.faces_added,
        "images_without_face": -1,  # the ingest summary does not break this out
        "seconds": seconds,
        "configuration": f"engine.ingest, {threads} worker processes x 1 thread, SQLite catalog + FAISS index"
        + (", face mesh landmarks" if mesh else ""),
    }


def run_facetrace_analyze(paths: Sequence[str], threads: int) -> dict[str, Any]:
    """The vision pipeline alone (no storage), one process with `threads` inference threads, batches of 32."""
    from facetrace.evaluation.harness import Pipeline, pipeline_settings

    started = time.perf_counter()
    # The engine's pipeline (its settings, FACETRACE_* included), so this row finds the same faces as the ingest row.
    mesh = os.environ.get(_FACE_MESH_VARIABLE)
    analyzer = Pipeline.from_settings(pipeline_settings(mesh, threads=threads)).open_analyzer()
    faces: list[int] = []
    for start in range(0, len(paths), 32):
        batch = [(Path(path).read_bytes(), path) for path in paths[start : start + 32]]
        for result in analyzer.analyze_batch(batch):
            faces.append(0 if isinstance(result, Exception) else len(result.faces))
    seconds = time.perf_counter() - started
    return {
        **_count_results(faces),
        "seconds": seconds,
        "configuration": f"analyzer.analyze_batch, 1 process x {threads} threads, nothing stored"
        + (", face mesh landmarks" if mesh else ""),
    }


def _face_recognition_one(path: str) -> int:
    import face_recognition

    image = face_recognition.load_image_file(path)
    # The library's defaults: HOG detector with one upsampling, 5-point landmarks, ResNet encoder, no jitter.
    locations = face_recognition.face_locations(image, model="hog")
    return len(face_recognition.face_encodings(image, locations))


def run_face_recognition(paths: Sequence[str], threads: int) -> dict[str, Any]:
    """face_recognition (dlib HOG detector + ResNet-34 encoder), `threads` processes."""
    import multiprocessing

    try:
        import face_recognition  # noqa: F401  (imported to fail early with the real reason)
    except Exception as exc:  # ImportError, or the models package missing its weights
        raise _Unavailable(f"face_recognition cannot be imported: {exc}") from exc
    started = time.perf_counter()
    if threads == 1:
        faces = [_face_recognition_one(path) for path in paths]
    else:
        with multiprocessing.get_context("fork").Pool(threads) as pool:
            faces = pool.map(_face_recognition_one, paths, chunksize=8)
    seconds = time.perf_counter() - started
    return {
        **_count_results(faces),
        "seconds": seconds,
        "configuration": f"face_locations(model='hog') + face_encodings, {threads} processes x 1 thread",
    }


def run_deepface(paths: Sequence[str], threads: int) -> dict[str, Any]:
    """deepface with its defaults (VGG-Face, OpenCV detector), one process with `threads` TensorFlow threads."""
    try:
        from deepface import DeepFace
    except Exception as exc:
        raise _Unavailable(f"deepface cannot be imported ({type(exc).__name__}: {exc})") from exc
    started = time.perf_counter()
    try:
        # Loads (and on first use downloads) the default model's weights.
        DeepFace.build_model("VGG-Face")
    except Exception as exc:
        raise _Unavailable(f"deepface cannot load its default model's weights ({type(exc).__name__}: {exc})") from exc
    faces: list[int] = []
    for path in paths:
        try:
            faces.append(len(DeepFace.represent(img_path=path)))
        except ValueError:  # deepface's default enforce_detection=True raises when no face is found
            faces.append(0)
    seconds = time.perf_counter() - started
    return {
        **_count_results(faces),
        "seconds": seconds,
        "configuration": f"DeepFace.represent defaults (VGG-Face, opencv detector), 1 process x {threads} threads",
    }


class _Unavailable(Exception):
    """The system cannot run on this machine; the message says why."""


_WORKERS = {
    "facetrace": run_facetrace_ingest,
    "facetrace-analyze": run_facetrace_analyze,
    "face_recognition": run_face_recognition,
    "deepface": run_deepface,
}


def _worker_main(system: str, paths_file: Path, threads: int) -> int:
    paths = paths_file.read_text(encoding="utf-8").splitlines()
    try:
        result: dict[str, Any] = {"available": True, **_WORKERS[system](paths, threads)}
    except _Unavailable as exc:
        result = {"available": False, "reason": str(exc)}
    sys.stdout.write(_RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# The driver.


def _thread_env(threads_per_process: int, tensorflow_threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in _THREAD_VARIABLES:
        env[name] = str(threads_per_process)
    env["TF_NUM_INTRAOP_THREADS"] = str(tensorflow_threads)
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TensorFlow's start-up chatter would bury the table
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")]))
    return env


def run_system(system: str, paths_file: Path, images: int, threads: int, python: str, timeout_s: float) -> SystemResult:
    threads_per_process = threads if system in ("deepface", "facetrace-analyze") else 1
    command = [python, str(Path(__file__).resolve()), "--worker", system, "--paths-file", str(paths_file)]
    command += ["--threads", str(threads)]
    try:
        completed = subprocess.run(
            command,
            env=_thread_env(threads_per_process, threads),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return SystemResult(system, "", available=False, reason=f"unavailable: no interpreter at {python}")
    except subprocess.TimeoutExpired:
        return SystemResult(system, "", available=False, reason=f"unavailable: did not finish in {timeout_s:.0f} s")
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = [line for line in completed.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        reason = f"unavailable: worker exited with status {completed.returncode}: {tail[0][:300]}"
        return SystemResult(system, "", available=False, reason=reason)
    data = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    if not data["available"]:
        return SystemResult(system, "", available=False, reason="unavailable: " + data["reason"])
    if data["images"] != images:
        reason = f"unavailable: processed {data['images']} of {images} images"
        return SystemResult(system, data["configuration"], available=False, reason=reason)
    return SystemResult(
        system=system,
        configuration=data["configuration"],
        available=True,
        images=data["images"],
        faces=data["faces"],
        images_without_face=data["images_without_face"],
        seconds=data["seconds"],
    )


def _first_photos(datasets: Path, count: int) -> list[str]:
    lfw = datasets / "lfw"
    with (lfw / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        relative = sorted(row["path"] for row in csv.DictReader(handle))
    if len(relative) < count:
        raise SystemExit(f"{lfw / 'manifest.csv'} lists {len(relative)} photos, fewer than --n {count}")
    return [str((lfw / path).resolve()) for path in relative[:count]]


def _fastest(runs: Sequence[SystemResult]) -> SystemResult:
    available = [run for run in runs if run.available]
    if not available:
        return runs[0]
    best = min(available, key=lambda run: run.seconds)
    return SystemResult(**{**asdict(best), "runs_seconds": tuple(run.seconds for run in available)})


def _load_average() -> float | None:
    """Other jobs on the machine skew the figures; the report says how busy it was."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def format_table(results: Sequence[SystemResult], reference: str = "facetrace") -> str:
    reference_rate = next((r.faces_per_s for r in results if r.system == reference and r.available), 0.0)
    header = (
        f"{'system':<18} {'images':>7} {'faces':>7} {'seconds':>9} {'faces/s':>9} {'images/s':>9} {'facetrace x':>12}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        if not result.available:
            lines.append(f"{result.system:<18} {result.reason}")
            continue
        ratio = f"{reference_rate / result.faces_per_s:.2f}" if reference_rate and result.faces_per_s else "-"
        lines.append(
            f"{result.system:<18} {result.images:>7} {result.faces:>7} {result.seconds:>9.1f} "
            f"{result.faces_per_s:>9.2f} {result.images_per_s:>9.2f} {ratio:>12}"
        )
    lines.append("")
    lines.append(f"'facetrace x' = {reference}'s faces/s divided by that system's (above 1: facetrace is faster).")
    for result in results:
        if result.available:
            spread = ", ".join(f"{seconds:.1f}" for seconds in result.runs_seconds) or f"{result.seconds:.1f}"
            lines.append(f"{result.system}: {result.configuration}; run(s) took {spread} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="photos: the first N of lfw/manifest.csv sorted by path")
    parser.add_argument("--threads", type=int, default=2, help="processes or threads every system may use")
    parser.add_argument(
        "--datasets",
        type=Path,
        default=Path(os.environ.get("FACETRACE_DATASETS", REPO_ROOT.parent / "shared" / "datasets")),
        help="folder holding lfw/ (default: FACETRACE_DATASETS or ../shared/datasets)",
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    parser.add_argument("--deepface-python", default=sys.executable, help="interpreter that has deepface installed")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the systems round-robin this many times and keep each one's fastest run (on a shared machine the "
        "fastest run is the one least disturbed by other jobs)",
    )
    parser.add_argument(
        "--face-mesh",
        type=Path,
        default=None,
        help="a data directory holding the face mesh model (scripts/install_face_mesh.py): facetrace's rows use it",
    )
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up on a system after this long")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the JSON results to this file")
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--paths-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return _worker_main(args.worker, args.paths_file, args.threads)

    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)}")
    if args.face_mesh is not None:
        os.environ[_FACE_MESH_VARIABLE] = str(args.face_mesh.resolve())
    paths = _first_photos(args.datasets, args.n)
    for path in paths:  # warm the page cache so no system pays for the first disk read
        Path(path).read_bytes()
    runs: dict[str, list[SystemResult]] = {system: [] for system in systems}
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="facetrace-bench-") as scratch:
        paths_file = Path(scratch) / "paths.txt"
        paths_file.write_text("\n".join(paths) + "\n", encoding="utf-8")
        for repetition in range(1, args.repeat + 1):
            for system in systems:
                if runs[system] and not runs[system][0].available:
                    continue  # an unavailable system stays unavailable
                python = args.deepface_python if system == "deepface" else sys.executable
                print(f"[{repetition}/{args.repeat}] {system} on {len(paths)} photos ...", file=sys.stderr, flush=True)
                result = run_system(system, paths_file, len(paths), args.threads, python, args.timeout_s)
                print(f"  {result.reason or f'{result.faces_per_s:.2f} faces/s'}", file=sys.stderr, flush=True)
                runs[system].append(result)
    results = [_fastest(runs[system]) for system in systems]
    machine = {
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    payload = {
        "photos": len(paths),
        "threads": args.threads,
        "repeat": args.repeat,
        "machine": machine,
        "results": [{**asdict(r), "faces_per_s": r.faces_per_s, "images_per_s": r.images_per_s} for r in results],
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(
            f"{len(paths)} LFW photos, {args.threads} threads/processes per system, fastest of {args.repeat} run(s), "
            f"{machine['cpu']} ({machine['logical_cpus']} logical CPUs), Python {machine['python']}, "
            f"1-min load average {load_before} before and {machine['load_average_after']} after"
        )
        print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
