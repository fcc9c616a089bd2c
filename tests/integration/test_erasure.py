"""Erasure on a real gallery: by photo ("remove me"), by person and by face id; afterwards no search shows the
person, re-ingesting their photos stores nothing, their thumbnails are gone, and a receipt says what happened."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SmallGallery
from facetrace.cli.main import app
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(small_gallery: SmallGallery, tmp_path: Path) -> Iterator[Engine]:
    opened = open_engine(tmp_path / "data", workers=1)
    summary = opened.ingest.run(manifests=[small_gallery.manifest])
    assert summary.errors == 0
    yield opened
    opened.close()


def _faces_labelled(engine: Engine, label: str) -> list[int]:
    records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
    return sorted(face_id for face_id, record in records.items() if record.label == label)


def test_remove_me_by_photo(engine: Engine, small_gallery: SmallGallery, tmp_path: Path) -> None:
    obama_faces = _faces_labelled(engine, "obama")
    records = engine.catalog.faces_by_id(obama_faces)
    thumbnails = [engine.settings.thumbnails_dir / r.thumbnail_path for r in records.values() if r.thumbnail_path]
    assert thumbnails and all(path.exists() for path in thumbnails)
    before = engine.search.file(small_gallery.probe, top_k=20)[0].hits
    strict = engine.strict_similarity
    expected = sorted(h.face.face_id for h in before if h.similarity >= strict)
    assert expected and set(expected) <= set(obama_faces)

    receipt = engine.erasure.erase_by_photo(
        "admin", small_gallery.probe.read_bytes(), "request.jpg", "GDPR art. 17, ticket 8"
    )

    assert list(receipt.face_ids) == expected
    assert receipt.suppressed_embeddings == len(expected) + 1  # the erased faces and the requester's own face
    assert receipt.thumbnails_removed == len(expected)
    assert receipt.receipt_id.startswith("er_") and engine.erasure.receipt(receipt.receipt_id) == receipt
    entry = engine.audit.entries(receipt.audit_seq - 1, 1)[0]
    assert (entry.action, entry.target) == ("erase", f"erasure:{receipt.receipt_id}")
    assert engine.audit.verify().ok
    # Gone from catalog, index and disk.
    assert not engine.catalog.faces_by_id(expected)
    assert not set(expected) & set(engine.index.stored.ids().tolist())
    assert not any((engine.settings.thumbnails_dir / r.thumbnail_path).exists() for r in records.values()
                   if r.face_id in expected and r.thumbnail_path)  # fmt: skip
    assert engine.index.check().consistent
    # No search shows them, from the same photo or from one of the erased photos.
    after = engine.search.file(small_gallery.probe, top_k=20)[0].hits
    assert not {h.face.face_id for h in after} & set(expected)
    assert all(h.similarity < strict for h in after)
    # Re-ingesting every gallery photo stores none of their faces.
    again = engine.ingest.run(manifests=[small_gallery.manifest])
    assert again.faces_added == 0 and again.images_added == 0
    assert again.source_counts["suppressed_faces"] >= len(receipt.asset_ids)
    assert not set(_faces_labelled(engine, "obama")) - set(obama_faces)


def test_erase_a_person_by_label_over_http(engine: Engine, small_gallery: SmallGallery) -> None:
    admin_key = engine.users.create_admin("admin", "cli:test").api_key
    auditor_key = engine.users.add_user("audrey", "auditor", "admin").api_key
    biden = _faces_labelled(engine, "biden")
    assert len(biden) == 2
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/erasures/person",
            json={"label": "biden", "reason": "request 12"},
            headers={"X-API-Key": admin_key},
        )
        assert response.status_code == 201, response.text
        receipt = response.json()
        assert receipt["face_ids"] == biden and len(receipt["asset_ids"]) == 2 and receipt["mode"] == "person"
        assert {Path(uri).name for uri in receipt["asset_uris"]} == {"biden.jpg", "biden2.jpg"}
        shown = client.get(f"/api/v1/erasures/{receipt['receipt_id']}", headers={"X-API-Key": auditor_key}).json()
        assert shown == receipt
        again = client.post(
            "/api/v1/erasures/person", json={"label": "biden", "reason": "again"}, headers={"X-API-Key": admin_key}
        )
        assert again.status_code == 404
    summary = engine.ingest.run([*small_gallery.paths_of("biden")])
    assert summary.faces_added == 0 and summary.source_counts["suppressed_images"] == 2


def test_erase_faces_from_the_command_line(engine: Engine, small_gallery: SmallGallery, tmp_path: Path) -> None:
    rose = _faces_labelled(engine, "rose_leslie")
    data = engine.settings.data
    engine.close()
    runner = CliRunner()
    result = runner.invoke(app, ["erase", "--face", str(rose[0]), "--reason", "ticket 3", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f'"face_ids": [\n    {rose[0]}\n  ]' in result.output
    refused = runner.invoke(app, ["erase", "--face", "1", "--data", str(data)])
    assert refused.exit_code == 2 and "--reason" in refused.output
    manifest = tmp_path / "rose.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([["uri"], *[[p] for p in small_gallery.paths_of("rose_leslie")]])
    reopened = open_engine(data, workers=1)
    try:
        assert reopened.ingest.run(manifests=[manifest]).faces_added == 0
        assert reopened.audit.verify().ok
    finally:
        reopened.close()
