"""The ingest benchmark's driver logic (the measurements themselves need real models and run by hand)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from repo_files import load_module


def _bench() -> ModuleType:
    return load_module("bench/ingest_throughput.py")


def test_table_shows_ratios_and_unavailable_systems() -> None:
    bench = _bench()
    results = [
        bench.SystemResult("facetrace", "2 processes", True, images=100, faces=120, seconds=4.0),
        bench.SystemResult("face_recognition", "2 processes", True, images=100, faces=110, seconds=11.0),
        bench.SystemResult("deepface", "", False, reason="unavailable: weights cannot be downloaded"),
    ]
    table = bench.format_table(results)
    assert "30.00" in table  # facetrace faces/s
    assert "3.00" in table  # 30 faces/s over face_recognition's 10
    assert "deepface           unavailable: weights cannot be downloaded" in table


def test_first_photos_are_the_sorted_head_of_the_manifest(tmp_path: Path) -> None:
    bench = _bench()
    (tmp_path / "lfw").mkdir()
    (tmp_path / "lfw" / "manifest.csv").write_text("path,identity\nb/1.jpg,B\na/2.jpg,A\na/1.jpg,A\n")
    photos = bench._first_photos(tmp_path, 2)
    assert [Path(p).relative_to(tmp_path / "lfw").as_posix() for p in photos] == ["a/1.jpg", "a/2.jpg"]


def test_a_missing_interpreter_is_reported_not_raised(tmp_path: Path) -> None:
    bench = _bench()
    paths_file = tmp_path / "paths.txt"
    paths_file.write_text("x.jpg\n")
    result = bench.run_system("deepface", paths_file, 1, 2, str(tmp_path / "no-python"), 10.0)
    assert not result.available
    assert result.reason.startswith("unavailable: no interpreter")
