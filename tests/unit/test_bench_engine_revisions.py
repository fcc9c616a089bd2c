"""The engine-revisions benchmark's pure parts: arguments, API detection, probes, summaries (the measurements need two
source trees and real models and run by hand)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from repo_files import load_module

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    return load_module("bench/engine_revisions.py")


bench = _bench()


def test_defaults_and_flags() -> None:
    args = bench.build_parser().parse_args([])
    assert (args.base, args.new, args.faces, args.real_photos) == ("439d1ae", None, 100_000, 1_000)
    assert (args.searches, args.ingest_n, args.threads, args.repeats, args.json) == (200, 500, 2, 3, False)
    assert args.lfw == REPO_ROOT.parent / "shared" / "datasets" / "lfw" and args.worker is None
    args = bench.build_parser().parse_args(
        ["--base", "abc123", "--faces", "3000", "--real-photos", "30", "--searches", "10", "--repeats", "1", "--json"]
    )
    assert (args.base, args.faces, args.real_photos, args.searches, args.repeats, args.json) == (
        "abc123",
        3000,
        30,
        10,
        1,
        True,
    )


@pytest.mark.parametrize("flag", ["--faces", "--searches", "--repeats", "--threads", "--ingest-n"])
def test_counts_must_be_positive(flag: str) -> None:
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args([flag, "0"])


class _OldEngine:
    def search_file(self, probe: str, *, top_k: int) -> list[str]:
        return [f"old {probe} {top_k}"]

    def check(self) -> str:
        return "old check"


class _NewEngine:
    def __init__(self) -> None:
        self.search = SimpleNamespace(file=lambda probe, *, top_k: [f"new {probe} {top_k}"])
        self.index = SimpleNamespace(check=lambda: "new check")


def test_the_api_is_detected_and_both_calls_follow_it() -> None:
    assert bench.engine_api(_OldEngine()) == "old"
    assert bench.engine_api(_NewEngine()) == "new"
    search, check = bench.engine_calls(_OldEngine())
    assert (search("a.jpg", top_k=10), check()) == (["old a.jpg 10"], "old check")
    search, check = bench.engine_calls(_NewEngine())
    assert (search("a.jpg", top_k=10), check()) == (["new a.jpg 10"], "new check")


def test_latency_percentiles() -> None:
    summary = bench.latency_summary([float(n) for n in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert math.isnan(bench.latency_summary([])["p50_ms"])


def test_ratio_noise_and_verdict() -> None:
    # Faces/s: higher is better; the spread of the runs is the noise.
    same = bench.compare("faces/s", [10.0, 11.0, 9.0], [10.5, 9.5, 10.0], higher_is_better=True)
    assert same.ratio == pytest.approx(1.0) and same.noise == pytest.approx(0.2) and same.verdict == "within noise"
    slower = bench.compare("faces/s", [10.0, 10.2, 9.9], [8.0, 8.1, 7.9], higher_is_better=True)
    assert slower.ratio == pytest.approx(0.8) and slower.verdict == "regression"
    # Milliseconds: lower is better, so a ratio above 1 beyond the noise is the regression.
    latency = bench.compare("p50 ms", [50.0, 51.0, 49.0], [60.0, 61.0, 59.0], higher_is_better=False)
    assert latency.ratio == pytest.approx(1.2) and latency.verdict == "regression"
    faster = bench.compare("p50 ms", [50.0, 51.0, 49.0], [40.0, 41.0, 39.0], higher_is_better=False)
    assert faster.verdict == "improvement" and faster.old_runs == (50.0, 51.0, 49.0)
    single = bench.compare("p50 ms", [50.0], [40.0], higher_is_better=False)
    assert single.noise == 0.0 and single.verdict == "one run: no noise estimate"
    assert "0.800" in bench.format_table([slower]) and "regression" in bench.format_table([slower])


def test_relative_spread() -> None:
    assert bench.relative_spread([5.0]) == 0.0
    assert bench.relative_spread([9.0, 10.0, 12.0]) == pytest.approx(0.3)


def _lfw(tmp_path: Path) -> Path:
    lfw = tmp_path / "lfw"
    rows = ["path,identity"]
    for person, count in (("Ann", 3), ("Bob", 1), ("Cy", 2)):
        for n in range(1, count + 1):
            relative = f"lfw-deepfunneled/{person}/{person}_{n:04d}.jpg"
            (lfw / relative).parent.mkdir(parents=True, exist_ok=True)
            (lfw / relative).write_bytes(b"")
            rows.append(f"{relative},{person}")
    (lfw / "manifest.csv").write_text("\n".join(rows) + "\n")
    return lfw


def test_probes_are_the_held_out_photos_then_others_never_the_gallery(tmp_path: Path) -> None:
    lfw, data = _lfw(tmp_path), tmp_path / "data"
    data.mkdir()

    def photo(person: str, n: int) -> str:
        return str(lfw / f"lfw-deepfunneled/{person}/{person}_{n:04d}.jpg")

    # As bench/serve_load.py leaves them: the gallery manifest and the held-out probes.
    gallery = [photo("Ann", 1), photo("Ann", 2), photo("Cy", 1)]
    (data / "bench_gallery.csv").write_text("uri,label,source_page\n" + "".join(f"{p},x,y\n" for p in gallery))
    held_out = [{"path": photo("Cy", 2), "identity": "Cy"}, {"path": photo("Ann", 3), "identity": "Ann"}]
    (data / "bench_probes.json").write_text(json.dumps({"probes": held_out, "real_faces": 3}))
    assert bench.choose_probes(data, lfw, 10) == [photo("Cy", 2), photo("Ann", 3), photo("Bob", 1)]
    assert bench.choose_probes(data, lfw, 1) == [photo("Cy", 2)]


def test_ingest_output_is_parsed_after_other_output() -> None:
    payload = {
        "photos": 20,
        "results": [{"system": "facetrace", "available": True, "faces": 24, "seconds": 2.0, "faces_per_s": 12.0}],
    }
    row = bench.parse_ingest_output("some chatter\n" + json.dumps(payload, indent=2) + "\n")
    assert row["faces_per_s"] == 12.0
    unavailable = {"results": [{"system": "facetrace", "available": False, "reason": "unavailable: boom"}]}
    with pytest.raises(ValueError, match="boom"):
        bench.parse_ingest_output(json.dumps(unavailable))
    with pytest.raises(ValueError):
        bench.parse_ingest_output("no json here")


def test_top_hit_agreement() -> None:
    assert bench.top_hit_agreement([1, 2, None, 4], [1, 3, None, 4]) == pytest.approx(0.75)
    assert math.isnan(bench.top_hit_agreement([], []))


def test_schema_version_reads_alembic_or_gives_none(tmp_path: Path) -> None:
    assert bench.schema_version(tmp_path) is None
    with sqlite3.connect(tmp_path / "catalog.db") as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('0004')")
    assert bench.schema_version(tmp_path) == "0004"
