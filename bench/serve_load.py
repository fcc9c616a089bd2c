"""Load: concurrent searches against a real `facetrace serve` on loopback, over a large gallery.

    python bench/serve_load.py [--data DIR] [--faces 100000] [--real-photos 1000] [--clients 50] [--seconds 60]
        [--max-requests N] [--server-env NAME=VALUE ...] [--code LABEL=SRC ... [--rounds N]] [--json]

The gallery (built in --data, or in a temporary folder; a --data that already holds --faces faces is reused):
    real     LFW people with two or more photos: every photo but the last of each person is ingested (the real
             pipeline: detect, embed, thumbnails, catalog, index) up to --real-photos; each person's last photo is a
             held-out probe whose person is in the gallery
    synthetic  face-like embeddings (random identity centres on the unit sphere plus noise, as bench/search_scale.py)
             stored through the catalog API with full rows (asset uri synthetic://..., extra {"synthetic": "true"})
             up to --faces faces in all, then the index is rebuilt from the catalog (docs/decisions/0001)

Then the server runs in a subprocess (`facetrace serve` on 127.0.0.1, a free port), the bench creates an
investigator and their API key directly in the catalog (before the server starts: SQLite has one writer), opens a
case over HTTP, warms the server up with one search, and --clients threads post the held-out probes to
POST /api/v1/cases/{id}/searches for --seconds (or until --max-requests). Every request is timed from send to full
response. Errors are counted by status (or exception name for a failed connection or a timeout).

Correctness on the way: for every answered search, the top hit of the probe's largest face should carry the probe's
person label (LFW rank-1 identification, which the default pack does not get right every time: the rate is reported,
the run does not fail on it).

Rate limits: the server subprocess runs with the per-key rate limits off (SERVER_ENV_DEFAULTS:
FACETRACE_API_REQUESTS_PER_MINUTE=0, FACETRACE_SEARCH_REQUESTS_PER_MINUTE=0; settings this version does not know are
ignored). --server-env NAME=VALUE (repeatable) overrides them or sets others; a 429 shows up in the errors by status.

Two code trees side by side: --code LABEL=SRC (repeatable, e.g. --code main=/work/main/src --code new=src) runs the
server once per tree with PYTHONPATH=SRC (checked: `import facetrace` under it must load SRC's package), on the same
gallery, probes and machine, one after the other. Each tree serves a fresh copy of --data made beside it (DIR.LABEL):
a newer tree upgrades its catalog's schema on first open, which an older one could not open again. The gallery is
built by the bench's own tree, whose schema every tree must open or upgrade. --rounds N repeats the runs, the order
reversed every other round so that a burst of load from other jobs falls on both. Each run records the load average
when it started and ended; the summary gives each tree's median throughput, p99 and server CPU per search over the
rounds, and their ratios to the first tree's.

One JSON record with --json (with --code: {"runs": [...], "summary": {...}}); otherwise a short text report. Exit
status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from facetrace.core.types import AnalyzedFace, BoundingBox, Detection, Embedding, FaceQuality, MediaAsset
from facetrace.engine import Engine, open_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_FACES_PER_ASSET = 16  # one catalog transaction per synthetic "frame": 100k faces in ~6k transactions
SYNTHETIC_PER_IDENTITY = 4  # mean faces per synthetic identity (as bench/search_scale.py)
SYNTHETIC_NOISE = 0.8  # same-identity cosine of about 0.6 at 128 dimensions
SERVER_START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 300.0  # a queued request waits behind the others: only a hung server should time out
PROBES_FILE = "bench_probes.json"
# The bench measures the service, not its per-key rate limits (50 clients share one key): the server gets them off
# (0: no limit). --server-env overrides these or adds others.
SERVER_ENV_DEFAULTS = {"FACETRACE_API_REQUESTS_PER_MINUTE": "0", "FACETRACE_SEARCH_REQUESTS_PER_MINUTE": "0"}


@dataclass(frozen=True)
class Probe:
    path: str
    identity: str


@dataclass
class Sample:
    """One request as the client saw it."""

    seconds: float
    status: str  # HTTP status code, or the exception's name
    probe: int
    top_label: str | None = None


@dataclass
class LoadReport:
    faces: int
    real_faces: int
    synthetic_faces: int
    clients: int
    seconds: float  # the measured window, first send to last answer
    requests: int
    ok: int
    errors: dict[str, int]
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rank1_checked: int
    rank1_correct: int
    # CPU the server process (all its threads) and the clients spent per request over the window: on a shared
    # machine a truer measure of the service's cost than its throughput (cores x 1000 / ms is what it could serve).
    server_cpu_ms_per_search: float | None
    client_cpu_ms_per_search: float | None
    build_s: float
    code: str = ""  # the --code label of the tree that served ("" for the bench's own)
    machine: dict[str, Any] = field(default_factory=dict)


# -- the gallery ------------------------------------------------------------------------------------------------------


def lfw_split(lfw: Path, real_photos: int) -> tuple[list[Probe], list[Probe]]:
    """(gallery, probes): all but the last photo of each LFW person with two or more, the last held out as probe;
    people in sorted order until the gallery holds real_photos photos."""
    by_person: dict[str, list[str]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_person[row["identity"]].append(str(lfw / row["path"]))
    gallery: list[Probe] = []
    probes: list[Probe] = []
    for identity in sorted(by_person):
        photos = sorted(by_person[identity])
        if len(photos) < 2:
            continue
        if len(gallery) >= real_photos:
            break
        gallery.extend(Probe(path, identity) for path in photos[:-1][: real_photos - len(gallery)])
        probes.append(Probe(photos[-1], identity))
    return gallery, probes


def synthetic_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Face-like unit vectors: identity centres plus Gaussian noise, renormalised."""
    identities = max(1, n // SYNTHETIC_PER_IDENTITY)
    centres = rng.standard_normal((identities, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = rng.integers(0, identities, n)
    vectors = centres[who] + rng.standard_normal((n, dim)).astype(np.float32) * (SYNTHETIC_NOISE / np.sqrt(dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def add_synthetic_faces(engine: Engine, n: int, seed: int) -> int:
    """Store n synthetic faces through the catalog API with full rows, marked synthetic in their provenance."""
    if n <= 0:
        return 0
    rng = np.random.default_rng(seed)
    vectors = synthetic_vectors(n, engine.pack.embedding_dim, rng)
    run_id = engine.catalog.start_run(f"bench/serve_load: {n} synthetic faces", engine.model_id)
    landmarks = np.zeros((5, 2), dtype=np.float32)
    quality = FaceQuality(
        score=1.0, face_size_px=112.0, sharpness=1.0, detection_score=1.0, yaw_deg=0.0, roll_deg=0.0, flags=()
    )
    stored = 0
    for start in range(0, n, SYNTHETIC_FACES_PER_ASSET):
        chunk = vectors[start : start + SYNTHETIC_FACES_PER_ASSET]
        faces = [
            AnalyzedFace(
                Detection(BoundingBox(0.0, 0.0, 112.0, 112.0), landmarks, 1.0),
                quality,
                Embedding(engine.model_id, vector),
            )
            for vector in chunk
        ]
        asset = MediaAsset(
            sha256=f"{seed:08x}{start:016x}".ljust(64, "0"),
            uri=f"synthetic://bench/serve_load/{seed}/{start}",
            source_page="synthetic://bench/serve_load",
            extra={"synthetic": "true", "generator": "bench/serve_load.py"},
        )
        _, ids = engine.catalog.add_asset_with_faces(run_id, asset, faces, engine.model_id)
        stored += len(ids)
    engine.catalog.finish_run(run_id, "finished", {"faces_added": stored})
    return stored


def build_gallery(data: Path, lfw: Path, faces: int, real_photos: int, seed: int) -> tuple[list[Probe], int, int]:
    """Build (or reuse) the gallery in data; returns (probes, real faces, synthetic faces)."""
    probes_file = data / PROBES_FILE
    with open_engine(data, workers=max(1, os.cpu_count() or 1)) as engine:
        total = engine.catalog.count_faces(engine.model_id)
        if total >= faces and probes_file.exists():
            recorded = json.loads(probes_file.read_text())
            return [Probe(**p) for p in recorded["probes"]], recorded["real_faces"], total - recorded["real_faces"]
        gallery, probes = lfw_split(lfw, real_photos)
        manifest = data / "bench_gallery.csv"
        with manifest.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["uri", "label", "source_page"])
            for photo in gallery:
                writer.writerow([photo.path, photo.identity, "http://vis-www.cs.umass.edu/lfw/"])
        summary = engine.ingest.run(manifests=[manifest], description="bench/serve_load: LFW gallery")
        real = engine.catalog.count_faces(engine.model_id)
        print(f"ingested {summary.images_added} LFW photos, {real} faces", file=sys.stderr)
        synthetic = add_synthetic_faces(engine, faces - real, seed)
        print(f"stored {synthetic} synthetic faces; rebuilding the index", file=sys.stderr)
        engine.index.rebuild()
        kept = [p for p in probes if any(g.identity == p.identity for g in gallery)]
        probes_file.write_text(json.dumps({"probes": [asdict(p) for p in kept], "real_faces": real}))
        return kept, real, synthetic


def create_investigator(data: Path) -> str:
    """A fresh investigator's API key, made in the catalog before the server opens it."""
    with open_engine(data, workers=1) as engine:
        name = f"bench-load-{secrets.token_hex(4)}"
        return engine.users.add_user(name, "investigator", "bench/serve_load").api_key


# -- the server -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(data: Path, port: int, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """`facetrace serve` in a subprocess; yields (base URL, pid) once /api/v1/health answers; stops it after.
    bench/hostile_uploads.py uses it too."""
    env = {**os.environ, **(extra_env or {})}
    command = [sys.executable, "-c", "from facetrace.cli.main import main; main()", "serve"]
    command += ["--data", str(data), "--host", "127.0.0.1", "--port", str(port)]
    log_path = data / "bench_server.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/api/v1/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT_S:.0f} s; see {log_path}")
            time.sleep(0.25)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# -- the load ---------------------------------------------------------------------------------------------------------


def top_label(body: dict[str, Any]) -> str | None:
    """The label of the best hit of the probe's largest face."""
    results = [r for r in body.get("results", []) if r.get("hits")]
    if not results:
        return None

    def area(result: dict[str, Any]) -> float:
        box = result.get("probe_box") or {}
        return float((box.get("x2", 0) - box.get("x1", 0)) * (box.get("y2", 0) - box.get("y1", 0)))

    label: str | None = max(results, key=area)["hits"][0]["face"]["label"]
    return label


class SearchClient:
    """One client's keep-alive connection posting pre-encoded multipart searches (http.client, not httpx: the load
    generator shares the server's cores, and httpx cost about 4-5 ms of CPU per request against under 1 ms here)."""

    BOUNDARY = "facetrace-load-bench-boundary"

    def __init__(self, base: str, api_key: str, path: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(base)
        self._host, self._port, self._timeout = parsed.hostname or "127.0.0.1", parsed.port or 80, timeout
        self._path = path
        self._headers = {
            "X-API-Key": api_key,
            "Content-Type": f"multipart/form-data; boundary={self.BOUNDARY}",
            "Connection": "keep-alive",
        }
        self._connection: http.client.HTTPConnection | None = None

    @classmethod
    def body(cls, photo: tuple[str, bytes]) -> bytes:
        """The search form: the probe photo, a purpose and top_k, as one multipart body (made once per probe)."""
        name, content = photo
        parts = [
            f'--{cls.BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nload test\r\n'.encode(),
            f'--{cls.BOUNDARY}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n10\r\n'.encode(),
            (
                f'--{cls.BOUNDARY}\r\nContent-Disposition: form-data; name="probe"; filename="{name}"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + content
            + b"\r\n",
            f"--{cls.BOUNDARY}--\r\n".encode(),
        ]
        return b"".join(parts)

    def post(self, body: bytes) -> tuple[int, bytes]:
        """POST one body on this client's connection (opened on first use; search_once drops it after a failure).
        Not retried: the server may have stored the search, and a dropped connection is an error to count."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._connection.request("POST", self._path, body=body, headers=self._headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def search_once(client: SearchClient, probe: int, body: bytes) -> Sample:
    started = time.perf_counter()
    try:
        status, content = client.post(body)
        elapsed = time.perf_counter() - started
    except (OSError, http.client.HTTPException) as exc:
        client.close()
        return Sample(time.perf_counter() - started, type(exc).__name__, probe)
    if status != 201:
        return Sample(elapsed, str(status), probe)
    try:
        return Sample(elapsed, "201", probe, top_label(json.loads(content)))
    except (ValueError, KeyError, IndexError, TypeError):
        return Sample(elapsed, "201_unreadable_body", probe)  # counted as an error: a search must answer in full


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


@dataclass
class Window:
    """What one run measured between the end of the warm-up and the last answer."""

    samples: list[Sample]
    seconds: float
    server_cpu_s: float | None  # the server process's CPU time over the window
    client_cpu_s: float  # this bench process's (the clients') CPU time over the window


def drive(
    base: str,
    api_key: str,
    probes: list[Probe],
    clients: int,
    seconds: float,
    max_requests: int | None,
    server_pid: int | None = None,
) -> Window:
    """--clients threads searching until the time is up or max_requests were sent."""
    headers = {"X-API-Key": api_key}
    case = httpx.post(
        base + "/api/v1/cases",
        headers=headers,
        json={"title": "load bench", "purpose": "measure the service under load", "legal_basis": "testing"},
        timeout=30.0,
    )
    case.raise_for_status()
    path = f"/api/v1/cases/{case.json()['case_id']}/searches"
    bodies = [SearchClient.body((Path(p.path).name, Path(p.path).read_bytes())) for p in probes]
    warm = SearchClient(base, api_key, path)
    warmup = search_once(warm, 0, bodies[0])  # loads the models and reconciles the index once
    warm.close()
    if warmup.status != "201":
        raise RuntimeError(f"the warm-up search failed: {warmup.status}")

    samples: list[Sample] = []
    lock = threading.Lock()
    sent = 0
    server_cpu = process_cpu_seconds(server_pid) if server_pid is not None else None
    client_cpu = time.process_time()
    started = time.perf_counter()
    stop_at = started + seconds

    def client_loop(worker: int) -> None:
        nonlocal sent
        client = SearchClient(base, api_key, path)
        turn = worker
        try:
            while time.perf_counter() < stop_at:
                with lock:
                    if max_requests is not None and sent >= max_requests:
                        return
                    sent += 1
                probe = turn % len(bodies)
                sample = search_once(client, probe, bodies[probe])
                with lock:
                    samples.append(sample)
                turn += clients
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = time.perf_counter() - started
    server_after = process_cpu_seconds(server_pid) if server_pid is not None else None
    return Window(
        samples,
        window,
        None if server_cpu is None or server_after is None else server_after - server_cpu,
        time.process_time() - client_cpu,
    )


def summarise(
    measured: Window,
    probes: list[Probe],
    *,
    faces: int,
    real: int,
    clients: int,
    build_s: float,
    code: str = "",
    load_at_start: tuple[float, float, float] | None = None,
) -> LoadReport:
    samples, window = measured.samples, measured.seconds
    latencies = np.array([s.seconds for s in samples], dtype=np.float64) * 1000.0
    ok = [s for s in samples if s.status == "201"]
    errors = Counter(s.status for s in samples if s.status != "201")

    def pct(q: float) -> float:
        return round(float(np.percentile(latencies, q)), 1) if latencies.size else float("nan")

    return LoadReport(
        faces=faces,
        real_faces=real,
        synthetic_faces=faces - real,
        clients=clients,
        seconds=round(window, 2),
        requests=len(samples),
        ok=len(ok),
        errors=dict(sorted(errors.items())),
        throughput_rps=round(len(samples) / window, 2) if window > 0 else 0.0,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        max_ms=round(float(latencies.max()), 1) if latencies.size else float("nan"),
        rank1_checked=len(ok),
        rank1_correct=sum(s.top_label == probes[s.probe].identity for s in ok),
        server_cpu_ms_per_search=(
            round(measured.server_cpu_s * 1000.0 / len(samples), 1)
            if measured.server_cpu_s is not None and samples
            else None
        ),
        client_cpu_ms_per_search=round(measured.client_cpu_s * 1000.0 / len(samples), 1) if samples else None,
        build_s=round(build_s, 1),
        code=code,
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **({"load_average_at_start": [round(x, 2) for x in load_at_start]} if load_at_start else {}),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def format_report(report: LoadReport) -> str:
    errors = ", ".join(f"{status}: {n}" for status, n in report.errors.items()) or "none"
    rank1 = report.rank1_correct / report.rank1_checked if report.rank1_checked else float("nan")
    return "\n".join(
        ([f"code: {report.code}"] if report.code else [])
        + [
            f"gallery: {report.faces:,} faces ({report.real_faces:,} real LFW, {report.synthetic_faces:,} synthetic)",
            f"clients: {report.clients}, window: {report.seconds:.1f} s",
            f"requests: {report.requests:,} ({report.ok:,} ok), throughput {report.throughput_rps:.2f} searches/s",
            f"latency ms: p50 {report.p50_ms:.0f}, p95 {report.p95_ms:.0f}, p99 {report.p99_ms:.0f}, "
            f"max {report.max_ms:.0f}",
            f"errors by status: {errors}",
            f"top hit is the probe's person: {report.rank1_correct}/{report.rank1_checked} ({rank1:.1%})",
            f"CPU ms per search: server {report.server_cpu_ms_per_search}, clients {report.client_cpu_ms_per_search}",
            f"load average at start: {report.machine.get('load_average_at_start')}, "
            f"at end: {report.machine.get('load_average_at_end')}",
        ]
    )


def code_trees(values: list[str]) -> list[tuple[str, Path]]:
    """--code LABEL=SRC pairs, each SRC checked to be where `import facetrace` finds the package."""
    trees: list[tuple[str, Path]] = []
    for value in values:
        label, sep, src = value.partition("=")
        if not sep or not label or not src:
            raise SystemExit(f"--code takes LABEL=SRC, not {value!r}")
        source = Path(src).resolve()
        found = subprocess.run(
            [sys.executable, "-c", "import facetrace; print(facetrace.__file__)"],
            env={**os.environ, "PYTHONPATH": str(source)},
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if not found or not Path(found).resolve().is_relative_to(source):
            raise SystemExit(f"--code {label}: PYTHONPATH={source} does not load its facetrace (got {found or 'none'})")
        trees.append((label, source))
    if len({label for label, _ in trees}) != len(trees):
        raise SystemExit("--code labels must differ")
    return trees


def tree_copy(data: Path, label: str) -> Path:
    """A fresh copy of the gallery for one tree, beside it: a tree may upgrade its catalog's schema on first open,
    which an older tree could not open again."""
    copy = data.parent / f"{data.name}.{label}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(data, copy)
    return copy


def compare_runs(reports: list[LoadReport]) -> dict[str, dict[str, float]]:
    """Per tree, in the order first seen: median throughput and p99 over its runs, and the ratios to the first's."""
    labels = list(dict.fromkeys(r.code for r in reports))
    summary: dict[str, dict[str, float]] = {}
    for label in labels:
        mine = [r for r in reports if r.code == label]
        summary[label] = {
            "runs": len(mine),
            "throughput_rps": round(float(np.median([r.throughput_rps for r in mine])), 2),
            "p99_ms": round(float(np.median([r.p99_ms for r in mine])), 1),
            "server_cpu_ms_per_search": round(
                float(np.median([r.server_cpu_ms_per_search or float("nan") for r in mine])), 1
            ),
            "errors": sum(sum(r.errors.values()) for r in mine),
        }
    first = summary[labels[0]]
    for values in summary.values():
        values["throughput_ratio"] = round(values["throughput_rps"] / first["throughput_rps"], 2)
        values["p99_ratio"] = round(values["p99_ms"] / first["p99_ms"], 2)
    return summary


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    lines = ["side by side (median over rounds; ratio to the first tree):"]
    for label, values in summary.items():
        lines.append(
            f"  {label}: {values['throughput_rps']:.2f} searches/s (x{values['throughput_ratio']:.2f}), "
            f"p99 {values['p99_ms']:.0f} ms (x{values['p99_ratio']:.2f}), "
            f"server CPU {values['server_cpu_ms_per_search']:.1f} ms/search, {values['errors']:.0f} errors, "
            f"{values['runs']:.0f} run(s)"
        )
    return "\n".join(lines)


def _env_pairs(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"--server-env takes NAME=VALUE, not {value!r}")
        pairs[name] = setting
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Data directory to build or reuse (default: a temporary one).")
    parser.add_argument("--lfw", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "lfw")
    parser.add_argument("--faces", type=int, default=100_000, help="Gallery size, real plus synthetic faces.")
    parser.add_argument("--real-photos", type=int, default=1_000, help="LFW photos ingested into the gallery.")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=None, help="Stop after this many requests.")
    parser.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server process.")
    parser.add_argument(
        "--code", action="append", default=[], help="LABEL=SRC: serve with PYTHONPATH=SRC (repeat to compare trees)."
    )
    parser.add_argument("--rounds", type=int, default=1, help="With --code: runs per tree, interleaved.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="One JSON record instead of the text report.")
    args = parser.parse_args(argv)
    trees = code_trees(args.code)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")

    reports: list[LoadReport] = []
    with contextlib.ExitStack() as stack:
        data = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve_load-")))
        data.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        probes, real, synthetic = build_gallery(data, args.lfw, args.faces, args.real_photos, args.seed)
        build_s = time.perf_counter() - began
        api_key = create_investigator(data)
        env = {**SERVER_ENV_DEFAULTS, **_env_pairs(args.server_env)}
        runs: list[tuple[str, Path, dict[str, str]]] = [("", data, env)]
        if trees:
            copies = {label: tree_copy(data, label) for label, _ in trees}
            runs = []
            for turn in range(args.rounds):
                order = trees if turn % 2 == 0 else trees[::-1]
                runs += [(label, copies[label], {**env, "PYTHONPATH": str(src)}) for label, src in order]
        for label, served, run_env in runs:
            load_at_start = os.getloadavg()
            with running_server(served, free_port(), run_env) as (base, pid):
                measured = drive(base, api_key, probes, args.clients, args.seconds, args.max_requests, pid)
            report = summarise(
                measured,
                probes,
                faces=real + synthetic,
                real=real,
                clients=args.clients,
                build_s=build_s,
                code=label,
                load_at_start=load_at_start,
            )
            reports.append(report)
            if trees:
                print(format_report(report), file=sys.stderr)  # progress: each run as it ends
    if not trees:
        print(json.dumps(asdict(reports[0])) if args.json else format_report(reports[0]))
    elif args.json:
        print(json.dumps({"runs": [asdict(r) for r in reports], "summary": compare_runs(reports)}))
    else:
        print("\n\n".join([*(format_report(r) for r in reports), format_summary(compare_runs(reports))]))
    return 1 if any(r.errors or r.requests == 0 for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
