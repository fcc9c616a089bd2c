"""Hostile uploads: parallel 49-megapixel probe photos against a real `facetrace serve` (issue 11's Done-when).

    python bench/hostile_uploads.py [--lfw ../shared/datasets/lfw] [--workdir DIR] [--size 7000] [--parallel 4]
        [--formats png,jpeg] [--gallery-people 12] [--json]

A small gallery is ingested from LFW (the real pipeline) in a fresh data directory: the photos but the last of the
first --gallery-people people with three or more photos. The last photo of the first person is the probe's face: it
is scaled up to a quarter of the canvas side and pasted into a --size x --size canvas (a plain grey background with a
soft gradient, as a hostile upload would be: small in bytes, huge in pixels), saved once as PNG and once as JPEG.

Then `facetrace serve` runs in a subprocess (127.0.0.1, a free port) with its default settings (rate limits on:
four requests fit the per-key search burst), an investigator and their API key made in the catalog before it
starts, a case opened over HTTP, one warm-up search with the LFW photo itself (the models load on first use), and
for each format --parallel threads post the same huge probe at once to POST /api/v1/cases/{id}/searches.

Printed for every request: its status and seconds from send to full response, and the top hit's label; then the
server process's peak resident memory (VmHWM in /proc/<pid>/status, which covers the whole run) and its resident
memory at the end (VmRSS). The target (issue 11): every request answered, a result or a clear 4xx, in under 10 s
each, and a peak RSS under 2 GB. Exit status 1 when the target is missed. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from facetrace.engine import open_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
# The server helpers are serve_load's, a sibling script: this folder is on the path when either runs as a script, and
# is put there for a loader that imports this file by path (the unit tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import free_port, running_server  # noqa: E402

DEFAULT_LFW = REPO_ROOT.parent / "shared" / "datasets" / "lfw"
TARGET_SECONDS = 10.0
TARGET_PEAK_BYTES = 2 * 1024**3
REQUEST_TIMEOUT_S = 600.0  # measure a slow answer rather than cut it off


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    label: str  # e.g. "png #2"
    status: int | str  # HTTP status, or the exception's name for a failed connection
    seconds: float
    top_label: str | None
    error_code: str | None


# -- pure parts (tests/unit/test_bench_hostile_uploads.py) ------------------------------------------------------------


def paste_box(canvas: int, face: int) -> tuple[int, int]:
    """Where a face of side face goes in a square canvas: left of and above the centre (not a centred crop)."""
    if face > canvas:
        raise ValueError(f"a {face}px face does not fit a {canvas}px canvas")
    return (canvas - face) // 3, (canvas - face) // 3


def hostile_canvas(face: Image.Image, size: int) -> Image.Image:
    """An RGB size x size canvas (plain grey with a soft gradient) with face scaled to a quarter of its side."""
    side = max(1, size // 4)
    ramp = np.linspace(96, 160, size, dtype=np.uint8)
    canvas = Image.fromarray(np.repeat(np.broadcast_to(ramp, (size, size))[..., None], 3, axis=2))
    x, y = paste_box(size, side)
    canvas.paste(face.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), (x, y))
    return canvas


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", optimize=False, compress_level=9)
    elif fmt == "jpeg":
        image.save(out, "JPEG", quality=90)
    else:
        raise ValueError(f"unknown format {fmt!r}: png or jpeg")
    return out.getvalue()


def vm_kib(status_text: str, field: str) -> int:
    """A memory line of /proc/<pid>/status in KiB (VmHWM: the peak resident set; VmRSS: the current one)."""
    for line in status_text.splitlines():
        name, _, value = line.partition(":")
        if name == field:
            number, unit = value.split()
            if unit != "kB":
                raise ValueError(f"{field} in {unit}, not kB")
            return int(number)
    raise ValueError(f"no {field} line")


def verdict(answers: list[Answer], peak_bytes: int) -> list[str]:
    """What misses the target: empty when every request was answered (2xx, or a 4xx that is not a rate limit) in
    under TARGET_SECONDS and the peak stayed under TARGET_PEAK_BYTES."""
    missed = []
    for answer in answers:
        clear = isinstance(answer.status, int) and (200 <= answer.status < 300 or 400 <= answer.status < 500)
        if not clear or answer.status == 429:
            missed.append(f"{answer.label}: {answer.status} ({answer.error_code or 'no answer'})")
        elif answer.seconds >= TARGET_SECONDS:
            missed.append(f"{answer.label}: {answer.seconds:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    if peak_bytes >= TARGET_PEAK_BYTES:
        missed.append(f"peak RSS {peak_bytes / 1024**3:.2f} GB (target < {TARGET_PEAK_BYTES / 1024**3:.0f} GB)")
    return missed


def top_label(body: dict[str, Any]) -> str | None:
    hits = [hit for result in body.get("results", []) for hit in result.get("hits", [])]
    best = max(hits, key=lambda hit: hit.get("similarity", -2.0), default=None)
    return None if best is None else (best.get("face") or {}).get("label")


# -- the gallery and the server ---------------------------------------------------------------------------------------


def lfw_people(lfw: Path, people: int) -> dict[str, list[Path]]:
    by_person: dict[str, list[Path]] = defaultdict(list)
    with (lfw / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_person[row["identity"]].append(lfw / row["path"])
    chosen = [name for name in sorted(by_person) if len(by_person[name]) >= 3][:people]
    return {name: sorted(by_person[name]) for name in chosen}


def build(data: Path, lfw: Path, people: int) -> tuple[Path, str, str]:
    """Ingest the gallery; returns (the probe's LFW photo, its person, an investigator's API key)."""
    chosen = lfw_people(lfw, people)
    manifest = data.parent / "hostile_gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        for name, photos in chosen.items():
            writer.writerows([str(photo), name] for photo in photos[:-1])
    with open_engine(data, workers=1, create=True) as engine:
        summary = engine.ingest.run(manifests=[manifest], description="bench/hostile_uploads gallery")
        print(f"gallery: {summary.images_added} photos of {len(chosen)} people", file=sys.stderr)
        key = engine.users.add_user(f"bench-{secrets.token_hex(3)}", "investigator", "bench/hostile_uploads").api_key
    first = next(iter(chosen))
    return chosen[first][-1], first, key


def search(client: httpx.Client, url: str, label: str, name: str, data: bytes) -> Answer:
    start = time.perf_counter()
    try:
        response = client.post(url, files={"probe": (name, data)}, data={"purpose": "bench: hostile upload"})
    except httpx.HTTPError as exc:
        return Answer(label, type(exc).__name__, time.perf_counter() - start, None, None)
    seconds = time.perf_counter() - start
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    code = (body.get("error") or {}).get("code") if response.status_code >= 400 else None
    return Answer(label, response.status_code, seconds, top_label(body) if code is None else None, code)


def in_parallel(client: httpx.Client, url: str, fmt: str, data: bytes, parallel: int) -> list[Answer]:
    answers: list[Answer | None] = [None] * parallel
    barrier = threading.Barrier(parallel)

    def one(i: int) -> None:
        barrier.wait()
        answers[i] = search(client, url, f"{fmt} #{i + 1}", f"hostile.{fmt}", data)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answer for answer in answers if answer is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--workdir", type=Path, help="Where the data directory goes (default: a temporary one).")
    parser.add_argument("--size", type=int, default=7000, help="The canvas side in pixels (7000: 49 megapixels).")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--formats", default="png,jpeg")
    parser.add_argument("--gallery-people", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    formats = [fmt.strip() for fmt in args.formats.split(",") if fmt.strip()]

    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ft-hostile-")))
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        probe_photo, person, key = build(data, args.lfw, args.gallery_people)
        canvas = hostile_canvas(Image.open(probe_photo), args.size)
        probes = {fmt: encoded(canvas, fmt) for fmt in formats}
        del canvas
        for fmt, payload in probes.items():
            print(f"probe {fmt}: {args.size}x{args.size}, {len(payload):,} bytes", file=sys.stderr)
        load_before = os.getloadavg()
        with (
            running_server(data, free_port()) as (base, pid),
            httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=REQUEST_TIMEOUT_S) as client,
        ):
            case = client.post(
                "/api/v1/cases",
                json={"title": "hostile uploads", "purpose": "bench", "legal_basis": "bench"},
            )
            case.raise_for_status()
            url = f"/api/v1/cases/{case.json()['case_id']}/searches"
            warm = search(client, url, "warm-up (LFW photo)", probe_photo.name, probe_photo.read_bytes())
            answers: list[Answer] = []
            for fmt in formats:
                answers += in_parallel(client, url, fmt, probes[fmt], args.parallel)
            status = Path(f"/proc/{pid}/status").read_text()
            peak, resident = vm_kib(status, "VmHWM") * 1024, vm_kib(status, "VmRSS") * 1024
        load_after = os.getloadavg()

    missed = verdict(answers, peak)
    report = {
        "size": args.size,
        "parallel": args.parallel,
        "probe_bytes": {fmt: len(payload) for fmt, payload in probes.items()},
        "person": person,
        "warm_up": asdict(warm),
        "answers": [asdict(answer) for answer in answers],
        "peak_rss_bytes": peak,
        "rss_at_end_bytes": resident,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "missed": missed,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"warm-up: {warm.status} in {warm.seconds:.2f} s, top hit {warm.top_label}")
        for answer in answers:
            what = answer.error_code or f"top hit {answer.top_label} (probe: {person})"
            print(f"{answer.label}: {answer.status} in {answer.seconds:.2f} s, {what}")
        print(f"server peak RSS (VmHWM): {peak / 1024**2:.0f} MiB; at the end (VmRSS): {resident / 1024**2:.0f} MiB")
        print(f"load average before: {load_before[0]:.2f}, after: {load_after[0]:.2f}")
        print("target met" if not missed else "target missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
