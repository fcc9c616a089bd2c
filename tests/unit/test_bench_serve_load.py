"""The load benchmark's pure parts: two code trees side by side (the load itself: tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from repo_files import load_module

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    return load_module("bench/serve_load.py")


def _report(bench: ModuleType, code: str, rps: float, p99: float, cpu: float, errors: int = 0) -> object:
    sample = bench.Sample(0.1, "201", 0, "x")
    window = bench.Window([sample] * 10, 1.0, cpu * 10 / 1000, 0.01)
    report = bench.summarise(window, [bench.Probe("p.jpg", "x")], faces=10, real=1, clients=2, build_s=0, code=code)
    report.throughput_rps, report.p99_ms = rps, p99
    report.errors = {"500": errors} if errors else {}
    return report


def test_runs_are_summarised_per_tree_with_ratios_to_the_first() -> None:
    bench = _bench()
    reports = [
        _report(bench, "old", 20.0, 3000.0, 60.0),
        _report(bench, "new", 40.0, 1200.0, 40.0),
        _report(bench, "new", 44.0, 1000.0, 38.0, errors=1),
        _report(bench, "old", 22.0, 2800.0, 58.0),
    ]
    summary = bench.compare_runs(reports)
    assert list(summary) == ["old", "new"]
    assert summary["old"]["throughput_rps"] == 21.0 and summary["old"]["throughput_ratio"] == 1.0
    assert summary["new"]["throughput_rps"] == 42.0 and summary["new"]["throughput_ratio"] == 2.0
    assert summary["new"]["p99_ms"] == 1100.0 and summary["new"]["p99_ratio"] == round(1100 / 2900, 2)
    assert summary["new"]["server_cpu_ms_per_search"] == 39.0
    assert summary["new"]["errors"] == 1 and summary["old"]["errors"] == 0
    assert "new: 42.00 searches/s (x2.00)" in bench.format_summary(summary)


def test_a_code_tree_must_load_its_own_package(tmp_path: Path) -> None:
    bench = _bench()
    ((label, source),) = bench.code_trees([f"mine={REPO_ROOT / 'src'}"])
    assert label == "mine" and source == (REPO_ROOT / "src").resolve()
    with pytest.raises(SystemExit, match="does not load its facetrace"):
        bench.code_trees([f"empty={tmp_path}"])
    with pytest.raises(SystemExit, match="LABEL=SRC"):
        bench.code_trees(["no-source"])
    with pytest.raises(SystemExit, match="must differ"):
        bench.code_trees([f"a={REPO_ROOT / 'src'}", f"a={REPO_ROOT / 'src'}"])


def test_a_process_cpu_time_is_read_from_proc() -> None:
    bench = _bench()
    spent = bench.process_cpu_seconds(os.getpid())
    assert spent is not None and spent > 0
    assert bench.process_cpu_seconds(2**31 - 1) is None


def test_each_tree_serves_a_fresh_copy_of_the_gallery(tmp_path: Path) -> None:
    bench = _bench()
    data = tmp_path / "gallery"
    data.mkdir()
    (data / "catalog.db").write_text("schema 9")
    copy = bench.tree_copy(data, "main")
    assert copy == tmp_path / "gallery.main" and (copy / "catalog.db").read_text() == "schema 9"
    (copy / "catalog.db").write_text("schema 11")  # the tree upgraded its copy
    (copy / "bench_server.log").write_text("log")
    again = bench.tree_copy(data, "main")
    assert (again / "catalog.db").read_text() == "schema 9" and not (again / "bench_server.log").exists()
    assert (data / "catalog.db").read_text() == "schema 9"
