"""Clustering real photos through the CLI, scored against their known identities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.engine import open_engine

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_clustering_photos_never_merges_two_people(tmp_path: Path, fr_examples: Path) -> None:
    result = runner.invoke(
        app,
        [
            "cluster",
            str(fr_examples / "examples"),
            "--labels",
            str(fr_examples / "manifest.csv"),
            "--data",
            str(tmp_path / "data"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    evaluation = out["evaluation"]
    assert evaluation["faces"] >= 15 and evaluation["identities"] >= 5
    assert evaluation["pairwise_precision"] == 1.0
    assert evaluation["pairwise_recall"] >= 0.8
    assert all(m["average_similarity"] >= out["thresholds"]["min_average_similarity"] for m in out["merges"])
    sizes = [len(c) for c in out["clusters"]]
    assert sum(sizes) == out["faces"] and sizes == sorted(sizes, reverse=True)


def test_clustering_the_catalog_groups_ingested_faces(tmp_path: Path, fr_examples: Path) -> None:
    train = fr_examples / "examples" / "knn_examples" / "train"
    with open_engine(tmp_path / "data", workers=1) as engine:
        engine.ingest.run([train])
        clustered = engine.clusters.cluster()
        faces, result = clustered.faces, clustered.clustering
    assert faces and all(f.face_id is not None for f in faces)
    by_folder: dict[str, set[int]] = {}
    for face, label in zip(faces, result.labels.tolist(), strict=True):
        by_folder.setdefault(Path(face.source).parent.name, set()).add(label)
    clusters_of = {folder: labels for folder, labels in by_folder.items()}
    # Each person's photos sit in one folder; no cluster spans two folders.
    seen: dict[int, str] = {}
    for folder, labels in clusters_of.items():
        for label in labels:
            assert seen.setdefault(label, folder) == folder, f"cluster {label} merges {seen[label]} and {folder}"
