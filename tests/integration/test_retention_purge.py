"""Retention on a real gallery: photos ingested with a retention period are purged after it (catalog rows, index
entries, thumbnails), the rest stay; the purge is audited with its counts; nothing is suppressed, so the same photos
can be ingested again; the CLI and the admin API route run the same job."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import GALLERY, SmallGallery
from facetrace.cli.main import app
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app

pytestmark = pytest.mark.slow

# Biden's photos are held for 0 days (expired at once), Alex Lacamoire's for 30 days, the others without a limit.
RETAIN_DAYS = {"biden": "0", "alex_lacamoire": "30"}


@pytest.fixture
def retained_manifest(small_gallery: SmallGallery, tmp_path: Path) -> Path:
    manifest = tmp_path / "retained.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "retain_days"])
        for path, identity in GALLERY:
            writer.writerow([small_gallery.root / path, identity, RETAIN_DAYS.get(identity, "")])
    return manifest


@pytest.fixture
def engine(retained_manifest: Path, tmp_path: Path) -> Iterator[Engine]:
    opened = open_engine(tmp_path / "data", workers=1)
    summary = opened.ingest.run(manifests=[retained_manifest])
    assert summary.errors == 0
    yield opened
    opened.close()


def _faces_by_label(engine: Engine) -> dict[str, list[int]]:
    records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
    found: dict[str, list[int]] = {}
    for face_id, record in sorted(records.items()):
        found.setdefault(record.label or "", []).append(face_id)
    return found


def test_purge_removes_only_expired_faces_and_is_audited(engine: Engine, small_gallery: SmallGallery) -> None:
    faces = _faces_by_label(engine)
    biden, alex = faces["biden"], faces["alex_lacamoire"]
    others = [face_id for label, ids in faces.items() if label not in RETAIN_DAYS for face_id in ids]
    records = engine.catalog.faces_by_id(biden + others)
    thumbnails = {face_id: engine.settings.thumbnails_dir / r.thumbnail_path for face_id, r in records.items()
                  if r.thumbnail_path}  # fmt: skip
    assert all(path.exists() for path in thumbnails.values()) and set(biden) <= set(thumbnails)
    assert records[biden[0]].retain_until is not None and records[others[0]].retain_until is None
    audit_before = len(engine.audit.entries())

    dry = engine.retention.purge("admin", dry_run=True)
    assert dry.dry_run and list(dry.face_ids) == biden and dry.audit_seq is None
    assert engine.catalog.faces_by_id(biden).keys() == set(biden)  # a dry run changes nothing
    assert len(engine.audit.entries()) == audit_before

    summary = engine.retention.purge("admin")
    assert list(summary.face_ids) == biden
    assert len(summary.asset_ids) == len(small_gallery.paths_of("biden"))
    assert summary.thumbnails_removed == len(biden) and summary.index_entries_removed == len(biden)
    # Gone from catalog, index and disk; everything else stays.
    assert not engine.catalog.faces_by_id(biden)
    assert not set(biden) & set(engine.index.stored.ids().tolist())
    assert not any(thumbnails[face_id].exists() for face_id in biden)
    assert engine.catalog.faces_by_id(others + alex).keys() == set(others + alex)
    assert all(thumbnails[face_id].exists() for face_id in others if face_id in thumbnails)
    assert engine.index.check().consistent
    # One audit entry with the counts, in an intact chain.
    (entry,) = engine.audit.entries(summary.audit_seq - 1, 1) if summary.audit_seq else ()
    assert (entry.action, entry.actor, entry.target) == ("purge", "admin", f"purge:{summary.purge_id}")
    assert entry.details["faces"] == len(biden) and entry.details["assets"] == len(summary.asset_ids)
    assert engine.audit.verify().ok

    # Thirty-one days on, Alex Lacamoire's photo has expired too; the unlimited ones never do.
    later = engine.retention.purge("admin", now=datetime.now(UTC) + timedelta(days=31))
    assert list(later.face_ids) == alex
    assert engine.retention.purge("admin", now=datetime.now(UTC) + timedelta(days=3650)).face_ids == ()
    assert engine.catalog.faces_by_id(others).keys() == set(others)


def test_purged_people_are_not_suppressed(engine: Engine, small_gallery: SmallGallery) -> None:
    """Retention ending is not an erasure request: the same photos may come back from another source."""
    biden = _faces_by_label(engine)["biden"]
    engine.retention.purge("admin")
    assert engine.catalog.governance_store().suppressed_vectors(engine.model_id).shape[0] == 0
    again = engine.ingest.run(small_gallery.paths_of("biden"))
    assert again.faces_added == len(biden)
    assert again.source_counts.get("suppressed_faces", 0) == 0


def test_purge_cli_and_admin_route(retained_manifest: Path, tmp_path: Path) -> None:
    data = tmp_path / "cli-data"
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", "--data", str(data), "--workers", "1", "--retain-days", "5",
                                   "--manifest", str(retained_manifest), "--json"])  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    dry = runner.invoke(app, ["purge", "--data", str(data), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # Only Biden's rows (retain_days 0) expired: the option fills in rows without their own retain_days.
    biden_count = len(json.loads(dry.output)["face_ids"])
    assert biden_count >= 2 and json.loads(dry.output)["audit_seq"] is None

    with open_engine(data, workers=1) as engine:
        records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
        unlimited = [r for r in records.values() if r.label == "obama"]
        assert unlimited and all(r.retain_until is not None for r in unlimited)  # --retain-days 5
        keys = {"admin": engine.users.create_admin("root", "cli:test").api_key}
        keys["investigator"] = engine.users.add_user("ivy", "investigator", "root").api_key
        with TestClient(create_app(engine), raise_server_exceptions=False) as client:
            refused = client.post("/api/v1/retention/purge", json={}, headers={"X-API-Key": keys["investigator"]})
            assert refused.status_code == 403
            response = client.post("/api/v1/retention/purge", json={}, headers={"X-API-Key": keys["admin"]})
            assert response.status_code == 200, response.text
            body = response.json()
        assert len(body["face_ids"]) == biden_count and body["audit_seq"] is not None
        assert engine.audit.entries(body["audit_seq"] - 1, 1)[0].action == "purge"
