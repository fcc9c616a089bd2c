"""A data directory made with a catalog elsewhere (SQLite outside it, PostgreSQL) and an in-memory index, through the
CLI as an operator uses it: the URIs given once at ingest are recorded, later commands find the gallery without them,
and a different catalog or index given later is refused instead of opening a new, empty gallery.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.engine.datadir import catalog_identity

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_a_gallery_is_found_again_by_its_recorded_catalog_and_index(
    catalog_uri: str, tmp_path: Path, fr_examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = fr_examples / "examples" / "knn_examples" / "train"
    data = tmp_path / "gallery"  # the catalog fixture's SQLite file is in tmp_path/data: outside this directory
    monkeypatch.setenv("FACETRACE_CATALOG_URI", catalog_uri)
    monkeypatch.setenv("FACETRACE_INDEX_URI", "memory://")
    photos = [str(train / "obama" / "obama.jpg"), str(train / "biden" / "biden.jpg")]
    ingested = runner.invoke(app, ["ingest", *photos, "--data", str(data), "--workers", "1", "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["faces_added"] == 2

    record = json.loads((data / "facetrace.json").read_text())
    assert record["index_uri"] == "memory://"
    assert record["catalog_uri"] == catalog_identity(catalog_uri)  # one spelling: postgresql://, an absolute path
    assert record["catalog_uri"].startswith(("sqlite:////", "postgresql://"))
    assert not (data / "catalog.db").exists()

    # Later commands, without the variables: the recorded catalog and index, not a new SQLite + FAISS gallery.
    monkeypatch.delenv("FACETRACE_CATALOG_URI")
    monkeypatch.delenv("FACETRACE_INDEX_URI")
    probe = str(train / "obama" / "obama2.jpg")
    searched = runner.invoke(app, ["search", probe, "--data", str(data), "--json", "-k", "1"])
    assert searched.exit_code == 0, searched.output
    (result,) = json.loads(searched.stdout)["results"]
    assert result["hits"][0]["face"]["asset_uri"].endswith("/obama/obama.jpg")
    stats = json.loads(runner.invoke(app, ["stats", "--data", str(data), "--json"]).stdout)
    assert stats["catalog_uri"] == record["catalog_uri"] and stats["index_uri"] == "memory://"
    assert stats["catalog"]["assets"] == 2 and stats["index_entries"] == 2
    assert not (data / "catalog.db").exists() and not (data / "faces.faiss").exists()

    # Another catalog or index is another gallery: refused, with the recorded one named, and nothing made.
    monkeypatch.setenv("FACETRACE_CATALOG_URI", f"sqlite:///{tmp_path / 'other.db'}")
    refused = runner.invoke(app, ["ingest", *photos, "--data", str(data), "--json"])
    assert refused.exit_code == 2
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "data_directory" and record["catalog_uri"] in error["message"]
    assert not (tmp_path / "other.db").exists()
    monkeypatch.delenv("FACETRACE_CATALOG_URI")
    monkeypatch.setenv("FACETRACE_INDEX_URI", f"faiss://{data / 'faces.faiss'}")
    refused = runner.invoke(app, ["search", probe, "--data", str(data)])
    assert refused.exit_code == 2 and "made with the index memory://" in refused.stderr
    assert not (data / "faces.faiss").exists()
