"""Erasure on a real gallery: by photo ("remove me"), by person and by face id; afterwards no search shows the
person, re-ingesting their photos stores nothing, their thumbnails are gone, and a receipt says what happened. Each
request can be previewed first (nothing changes); a confirmation erases exactly the previewed faces; a bystander of
the requester's photo is never erased nor suppressed."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SmallGallery
from facetrace.cli.main import app
from facetrace.core.errors import FaceSelectionError, InvalidRequestError
from facetrace.core.vocabulary import ErasureMatch
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
    thresholds = engine.erasure_thresholds
    assert thresholds.similarity < engine.strict_similarity  # erasure lists at 3e-5, suppression stays at 1e-6
    preview = engine.erasure.preview_photo("admin", small_gallery.probe.read_bytes(), "request.jpg")
    expected = sorted(preview.face_ids)
    assert expected == sorted(h.face.face_id for h in before if h.similarity >= thresholds.similarity)
    assert set(expected) == set(obama_faces)

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
    assert all(h.similarity < thresholds.similarity for h in after)
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


def _state(engine: Engine) -> tuple[object, ...]:
    """Everything an erasure changes: faces, index entries, suppressed embeddings, change counters, receipts."""
    governance = engine.catalog.governance_store()
    return (
        engine.catalog.face_ids(engine.model_id).tolist(),
        sorted(engine.index.stored.ids().tolist()),
        governance.suppressed_vectors(engine.model_id).shape,
        engine.catalog.change_counters(),
        [receipt.receipt_id for receipt in engine.erasure.receipts()],
    )


def test_a_preview_lists_what_would_go_and_changes_nothing(engine: Engine, small_gallery: SmallGallery) -> None:
    before, audit_before = _state(engine), len(engine.audit.entries())
    obama = _faces_labelled(engine, "obama")

    by_photo = engine.erasure.preview_photo("admin", small_gallery.probe.read_bytes(), "request.jpg")
    by_label = engine.erasure.preview_person("admin", "obama", with_matches=True)
    by_ids = engine.erasure.preview_faces("admin", [obama[0], 999_999])

    assert _state(engine) == before
    previews = engine.audit.entries(audit_before)
    assert [entry.action for entry in previews] == ["erase_preview"] * 3
    assert [entry.details["face_ids"] for entry in previews] == [
        list(by_photo.face_ids), list(by_label.face_ids), [obama[0]]
    ]  # fmt: skip
    assert engine.audit.verify().ok
    # What each lists, and why.
    assert set(by_photo.face_ids) == set(obama) and by_photo.requester_face_index == 0
    assert by_photo.min_similarity == engine.erasure_thresholds.similarity
    for candidate in by_photo.candidates:
        assert candidate.found_by in (ErasureMatch.PHOTO, ErasureMatch.LINKED) and candidate.label == "obama"
        assert candidate.similarity is not None and Path(candidate.asset_uri).exists()
    photo_scores = [c.similarity for c in by_photo.candidates if c.found_by == ErasureMatch.PHOTO]
    assert photo_scores == sorted(photo_scores, reverse=True)
    assert all(score >= by_photo.min_similarity for score in photo_scores)
    assert {c.face_id for c in by_label.candidates if c.found_by == ErasureMatch.LABEL} == set(obama)
    assert by_label.min_similarity is None and by_label.linked_min_similarity is not None
    assert by_ids.face_ids == (obama[0],) and by_ids.candidates[0].found_by == ErasureMatch.FACE_ID


def test_erase_by_photo_takes_the_requester_only_never_a_bystander(engine: Engine, fr_examples: Path) -> None:
    """two_people.jpg shows Obama and Biden. Asked by Obama with it, erasure takes Obama's faces, suppresses his
    face only: Biden stays searchable, and his face in that very photo can still be ingested."""
    request = fr_examples / "examples/two_people.jpg"
    image = engine.analyzer.analyze(request.read_bytes(), request.name)
    assert len(image.faces) == 2
    with pytest.raises(FaceSelectionError, match="face index"):
        engine.erasure.preview_photo("admin", request.read_bytes(), request.name)  # no clear subject: which face?
    with pytest.raises(FaceSelectionError, match="numbered 0-1"):
        engine.erasure.preview_photo("admin", request.read_bytes(), request.name, face_index=2)
    obama, biden = _faces_labelled(engine, "obama"), _faces_labelled(engine, "biden")
    _, obama_vectors = engine.catalog.embeddings_by_id(obama)
    obama_index = int(np.argmax([(obama_vectors @ f.embedding.vector).mean() for f in image.faces]))
    biden_face = image.faces[1 - obama_index]

    receipt = engine.erasure.erase_by_photo(
        "admin", request.read_bytes(), request.name, "request 21", face_index=obama_index
    )

    assert sorted(receipt.face_ids) == obama
    suppressed = engine.catalog.governance_store().suppressed_vectors(engine.model_id)
    assert suppressed.shape[0] == len(obama) + 1  # his erased faces and his face in the request, not Biden's
    assert float((suppressed @ biden_face.embedding.vector).max()) < engine.strict_similarity
    hits = engine.search.file(fr_examples / "examples/knn_examples/train/biden/biden2.jpg", top_k=3)[0].hits
    assert hits[0].face.face_id in biden
    stored = engine.ingest.run([request])
    assert (stored.faces_added, stored.source_counts.get("suppressed_faces")) == (1, 1)
    new_face = max(engine.catalog.face_ids(engine.model_id).tolist())
    assert engine.catalog.faces_by_id([new_face])[new_face].box == biden_face.detection.box


def test_erase_by_label_with_matches_lists_them_and_erases_what_is_confirmed(engine: Engine, fr_examples: Path) -> None:
    unlabelled = engine.ingest.run([fr_examples / "examples/obama-480p.jpg"])  # him again, without a label
    assert unlabelled.faces_added == 1
    extra = max(engine.catalog.face_ids(engine.model_id).tolist())
    obama = _faces_labelled(engine, "obama")
    assert extra not in obama and extra not in engine.erasure.preview_person("admin", "obama").face_ids

    preview = engine.erasure.preview_person("admin", "obama", with_matches=True)

    linked = [c for c in preview.candidates if c.found_by == ErasureMatch.LINKED]
    assert [c.face_id for c in linked] == [extra]
    assert linked[0].linked_to in obama and linked[0].linked_similarity >= preview.linked_min_similarity
    assert preview.face_ids == (*obama, extra)  # the labelled faces first, then the matches
    # A face not on the list is refused, and nothing is erased.
    biden = _faces_labelled(engine, "biden")
    with pytest.raises(InvalidRequestError, match="not on this request's list"):
        engine.erasure.erase_person("admin", "obama", "request 5", with_matches=True, face_ids=[*obama, biden[0]])
    assert set(engine.catalog.faces_by_id(obama)) == set(obama)
    # The admin confirms the labelled faces only: the match stays, and the audit entry says it was left out.
    receipt = engine.erasure.erase_person("admin", "obama", "request 5", with_matches=True, face_ids=obama)
    assert sorted(receipt.face_ids) == obama
    assert set(engine.catalog.faces_by_id([extra])) == {extra}
    entry = engine.audit.entries(receipt.audit_seq - 1, 1)[0]
    assert entry.details["listed_not_erased"] == [extra]


def test_confirming_a_photo_preview_erases_the_previewed_faces_not_a_new_search(
    engine: Engine, small_gallery: SmallGallery, fr_examples: Path
) -> None:
    request = small_gallery.probe.read_bytes()
    preview = engine.erasure.preview_photo("admin", request, "request.jpg")
    listed = list(preview.face_ids)
    # The gallery changes in between: another photo of him comes in.
    assert engine.ingest.run([fr_examples / "examples/obama-720p.jpg"]).faces_added == 1
    new_face = max(engine.catalog.face_ids(engine.model_id).tolist())
    assert new_face in engine.erasure.preview_photo("admin", request, "request.jpg").face_ids

    receipt = engine.erasure.erase_previewed("admin", preview, "request 30")

    assert sorted(receipt.face_ids) == sorted(listed)
    assert set(engine.catalog.faces_by_id([new_face])) == {new_face}
    assert receipt.suppressed_embeddings == len(listed) + 1  # the requester's face too, kept in the preview
    with pytest.raises(InvalidRequestError, match="not on this request's list"):
        engine.erasure.erase_previewed("admin", preview, "again", face_ids=[new_face])


def test_erase_with_a_dry_run_first_from_the_command_line(
    engine: Engine, small_gallery: SmallGallery, tmp_path: Path
) -> None:
    data = engine.settings.data
    obama = _faces_labelled(engine, "obama")
    engine.close()
    runner = CliRunner()
    probe = str(small_gallery.probe)
    dry = runner.invoke(app, ["erase", "--photo", probe, "--dry-run", "--data", str(data)])
    assert dry.exit_code == 0, dry.output
    assert "erasure preview, nothing erased" in dry.output and "the requester's face is face 0 of 1" in dry.output
    assert f"{len(obama)} face(s) would be erased" in dry.output
    assert all(f"--face {face_id}" in dry.output for face_id in obama)
    listed = runner.invoke(app, ["erase", "--photo", probe, "--dry-run", "--json", "--data", str(data)])
    assert listed.exit_code == 0, listed.output
    preview = json.loads(listed.output)
    assert sorted(preview["face_ids"]) == obama and "requester_embedding" not in preview
    assert {c["found_by"] for c in preview["candidates"]} <= {"photo", "linked"}
    misuse = runner.invoke(app, ["erase", "--face", "1", "--with-matches", "--reason", "r", "--data", str(data)])
    assert misuse.exit_code == 2 and "--with-matches goes with --label" in misuse.output
    refused = runner.invoke(
        app, ["erase", "--photo", probe, "--face", "999999", "--reason", "request 2", "--data", str(data)]
    )
    assert refused.exit_code == 2 and "not on this request's list" in refused.output
    keep, *erase = obama
    confirmed = runner.invoke(
        app,
        ["erase", "--photo", probe, *[f"--face={i}" for i in erase], "--reason", "request 2", "--data", str(data)],
    )
    assert confirmed.exit_code == 0, confirmed.output
    assert sorted(json.loads(confirmed.output)["face_ids"]) == erase
    reopened = open_engine(data, workers=1)
    try:
        assert set(reopened.catalog.faces_by_id(obama)) == {keep}
    finally:
        reopened.close()


def test_erasure_preview_and_confirmation_over_http(engine: Engine, small_gallery: SmallGallery) -> None:
    admin = {"X-API-Key": engine.users.create_admin("admin", "cli:test").api_key}
    obama = _faces_labelled(engine, "obama")
    photo = {"photo": ("request.jpg", small_gallery.probe.read_bytes(), "image/jpeg")}
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        before = _state(engine)
        preview = client.post("/api/v1/erasures/photo/preview", files=photo, headers=admin)
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert sorted(body["face_ids"]) == obama and body["requester_face_index"] == 0
        assert body["requester_faces"] == 1 and body["false_match_rate"] == 3e-5
        photo_found = [c for c in body["candidates"] if c["found_by"] == "photo"]
        assert photo_found and all(c["similarity"] >= body["min_similarity"] for c in photo_found)
        assert body["requester_box"]["x2"] > body["requester_box"]["x1"]
        assert _state(engine) == before
        wrong = client.post("/api/v1/erasures/photo/preview", files=photo, data={"face_index": "1"}, headers=admin)
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "face_selection"
        refused = client.post(
            "/api/v1/erasures/photo",
            files=photo,
            data={"reason": "request 40", "face_ids": f"{obama[0]} 999999"},
            headers=admin,
        )
        assert refused.status_code == 422 and "not on this request's list" in refused.json()["error"]["message"]
        erased = client.post(
            "/api/v1/erasures/photo",
            files=photo,
            data={"reason": "request 40", "face_ids": ",".join(map(str, obama[1:]))},
            headers=admin,
        )
        assert erased.status_code == 201, erased.text
        assert erased.json()["face_ids"] == obama[1:] and erased.json()["mode"] == "probe"
        person = client.post("/api/v1/erasures/person/preview", json={"label": "biden"}, headers=admin)
        assert person.status_code == 200 and person.json()["face_ids"] == _faces_labelled(engine, "biden")
        assert {c["found_by"] for c in person.json()["candidates"]} == {"label"}
