"""The load bench in its smoke size: a real server subprocess on loopback, real LFW probes, a small gallery of real
and synthetic faces, a few concurrent clients for a few seconds. Every request must succeed and resolve."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from repo_files import load_module

pytestmark = pytest.mark.slow


def _bench() -> ModuleType:
    return load_module("bench/serve_load.py")


def test_smoke_load_has_no_errors(lfw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    argv = ["--data", str(tmp_path / "data"), "--lfw", str(lfw), "--faces", "2000", "--real-photos", "100"]
    argv += ["--clients", "4", "--seconds", "5", "--max-requests", "400", "--json"]
    code = bench.main(argv)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert report["errors"] == {}
    assert report["requests"] > 0 and report["ok"] == report["requests"]
    assert report["faces"] == 2000 and report["synthetic_faces"] > 0 and report["real_faces"] > 0
    assert report["p50_ms"] <= report["p99_ms"]
    # The probes are held-out photos of people in the gallery; the default pack finds most of them first.
    assert report["rank1_correct"] >= 0.8 * report["rank1_checked"]


def test_synthetic_faces_resolve_with_provenance(tmp_path: Path) -> None:
    """Synthetic distractors are real catalog rows, marked synthetic, and the index is rebuilt over them."""
    from facetrace.engine import open_engine

    bench = _bench()
    with open_engine(tmp_path / "data", workers=1) as engine:
        stored = bench.add_synthetic_faces(engine, 40, seed=3)
        assert stored == 40
        assert engine.index.rebuild() == 40
        records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
    assert len(records) == 40
    record = next(iter(records.values()))
    assert record.asset_uri.startswith("synthetic://")
    assert record.source_page == "synthetic://bench/serve_load"


def test_lfw_split_holds_out_each_persons_last_photo(lfw: Path) -> None:
    bench = _bench()
    gallery, probes = bench.lfw_split(lfw, 50)
    assert len(gallery) == 50
    gallery_paths = {g.path for g in gallery}
    assert probes and all(p.path not in gallery_paths for p in probes)
    assert {p.identity for p in probes} >= {g.identity for g in gallery}
