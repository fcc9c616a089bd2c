"""Real models on real photos, through the engine and the CLI: ingest, search, compare, check, rebuild."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from collections import defaultdict
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from conftest import assert_rate_as_stated
from facetrace.cli.main import app
from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow
runner = CliRunner()


def _manifest_rows(root: Path) -> list[tuple[str, str]]:
    with (root / "manifest.csv").open(newline="") as handle:
        return [(row["path"], row["identity"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> tuple[Engine, list[tuple[Path, str]]]:
    """deepface_testset people (all photos but the last of each as gallery) plus 150 LFW photos as distractors."""
    deepface = datasets / "deepface_testset"
    lfw = datasets / "lfw"
    if not (deepface / "manifest.csv").exists() or not (lfw / "manifest.csv").exists():
        pytest.skip("deepface_testset or lfw missing from the datasets folder")
    by_person: dict[str, list[str]] = defaultdict(list)
    for path, identity in _manifest_rows(deepface):
        by_person[identity].append(path)
    work = tmp_path_factory.mktemp("e2e")
    manifest = work / "gallery.csv"
    probes: list[tuple[Path, str]] = []
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at"])
        for identity, paths in sorted(by_person.items()):
            for path in paths[:-1]:
                writer.writerow([deepface / path, identity, f"https://example.org/{identity}", "2019-06-01"])
            probes.append((deepface / paths[-1], identity))
        for path, identity in _manifest_rows(lfw)[:150]:
            writer.writerow([lfw / path, identity, "", ""])
    engine = open_engine(work / "data", workers=2)
    summary = engine.ingest.run(manifests=[manifest])
    assert summary.errors == 0, summary.error_messages
    assert summary.faces_added >= summary.images_added > 150
    return engine, probes


def test_held_out_photos_find_their_person_first(gallery: tuple[Engine, list[tuple[Path, str]]]) -> None:
    engine, probes = gallery
    right = []
    for probe, identity in probes:
        (result,) = engine.search.file(probe, face_index=None)[:1]
        top = result.hits[0]
        right.append(top.face.label == identity)
        assert top.evidence.gallery_size == len(engine.index.stored)
        assert top.face.source_page is None or top.face.source_page.startswith("https://example.org/")
    # deepface's test set is deliberately hard (age, make-up, pose); every person but at most one must be found.
    assert sum(right) >= len(right) - 1, right


def test_hits_carry_provenance_thumbnails_and_calibrated_evidence(
    gallery: tuple[Engine, list[tuple[Path, str]]],
) -> None:
    engine, probes = gallery
    probe, identity = probes[0]
    hit = engine.search.file(probe, top_k=5)[0].hits[0]
    assert hit.face.label == identity
    assert hit.face.captured_at is not None and hit.face.captured_at.year == 2019
    assert hit.face.thumbnail_path and Path(hit.face.thumbnail_path).read_bytes()[:2] == b"\xff\xd8"
    assert hit.evidence.calibrated, "the default pack must ship its impostor calibration"
    assert 0 < hit.evidence.false_match_rate < 1e-3
    assert "stranger" in hit.evidence.verdict


def test_fused_probes_search_as_one_template(gallery: tuple[Engine, list[tuple[Path, str]]]) -> None:
    engine, probes = gallery
    probe, identity = probes[1]
    result = engine.search.fused([probe, probe], top_k=3)
    assert result.probe_face_index is None
    assert result.hits[0].face.label == identity


def test_catalog_and_index_agree_and_the_index_rebuilds(gallery: tuple[Engine, list[tuple[Path, str]]]) -> None:
    engine, _ = gallery
    report = engine.index.check()
    assert report.consistent and report.catalog_faces == len(engine.index.stored)
    assert engine.index.rebuild() == report.catalog_faces


def test_the_same_frame_at_240p_to_1080p_matches_itself(tmp_path: Path, fr_examples: Path) -> None:
    examples = fr_examples / "examples"
    engine = open_engine(tmp_path / "data", workers=1)
    engine.ingest.run([examples / "obama-1080p.jpg"])
    for name in ("obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg"):
        hit = engine.search.file(examples / name)[0].hits[0]
        assert hit.face.asset_uri.endswith("obama-1080p.jpg")
        assert hit.similarity > 0.8, (name, hit.similarity)
    engine.close()


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_hostile_files_are_reported_and_the_run_completes(tmp_path: Path, fr_examples: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = (fr_examples / "examples" / "obama_small.jpg").read_bytes()
    (folder / "a_good.jpg").write_bytes(good)
    (folder / "b_truncated.jpg").write_bytes((fr_examples / "examples" / "obama-720p.jpg").read_bytes()[:3000])
    (folder / "c_empty.jpg").write_bytes(b"")
    (folder / "d_text.jpg").write_text("this is not a photo\n")
    (folder / "e_bomb.png").write_bytes(_png_declaring(30000, 30000))
    data = tmp_path / "data"
    result = runner.invoke(app, ["ingest", str(folder), "--data", str(data), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["images_seen"], summary["images_added"], summary["errors"]) == (5, 1, 4)
    messages = "\n".join(summary["error_messages"])
    for name in ("b_truncated.jpg", "c_empty.jpg", "d_text.jpg", "e_bomb.png"):
        assert name in messages
    assert "900,000,000 pixels" in messages


def test_cli_search_compare_check_and_rebuild(tmp_path: Path, fr_examples: Path) -> None:
    examples = fr_examples / "examples"
    data = str(tmp_path / "data")
    train = examples / "knn_examples" / "train"
    ingest = runner.invoke(app, ["ingest", str(train), "--data", data, "--json"])
    assert ingest.exit_code == 0, ingest.output
    assert json.loads(ingest.stdout)["faces_added"] >= 8

    search = runner.invoke(
        app, ["search", str(examples / "knn_examples" / "test" / "obama1.jpg"), "--data", data, "--json", "-k", "3"]
    )
    assert search.exit_code == 0, search.output
    (result,) = json.loads(search.stdout)["results"]
    top = result["hits"][0]
    assert "/obama/" in top["face"]["asset_uri"]
    assert top["evidence"]["false_match_rate"] is not None and top["evidence"]["gallery_size"] >= 8
    # Evidence as data, unrounded: the strong top hit's rate is the "1 in N" its sentence says (it printed 0.0).
    assert top["evidence"]["strength"] == "strong" and top["evidence"]["verdict"].startswith("strong lead:")
    assert top["evidence"]["false_match_rate"] < 5e-7
    assert_rate_as_stated(top["evidence"])
    assert top["evidence"]["quality_condition"] in ("clean", "one_flagged", "both_flagged")
    assert isinstance(top["evidence"]["weak_probe"], bool) and isinstance(top["evidence"]["weak_candidate"], bool)
    human = runner.invoke(app, ["search", str(examples / "knn_examples" / "test" / "obama1.jpg"), "--data", data])
    assert "similarity" in human.stdout and "stranger" in human.stdout

    same = runner.invoke(
        app,
        ["compare", str(train / "obama" / "obama.jpg"), str(train / "obama" / "obama2.jpg"), "--data", data, "--json"],
    )
    other = runner.invoke(
        app,
        ["compare", str(train / "obama" / "obama.jpg"), str(train / "biden" / "biden.jpg"), "--data", data, "--json"],
    )
    assert same.exit_code == other.exit_code == 0, same.output + other.output
    assert json.loads(same.stdout)["similarity"] > json.loads(other.stdout)["similarity"] + 0.2

    with open_engine(data) as engine:  # every search and comparison left an audit entry, chained
        actions = [entry.action for entry in engine.audit.entries(0, None)]
        assert actions.count("search") == 2 and actions.count("compare") == 2
        assert engine.audit.verify().ok

    check = runner.invoke(app, ["check", "--data", data, "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["consistent"]
    assert json.loads(check.stdout)["index"]["structure"] == "IDMap2,Flat"
    (tmp_path / "data" / "faces.faiss").unlink()  # lose the derived index: the catalog still knows every face
    rebuilt = runner.invoke(app, ["index", "rebuild", "--data", data])
    assert rebuilt.exit_code == 0 and "index rebuilt" in rebuilt.stdout
    again = runner.invoke(
        app, ["search", str(examples / "knn_examples" / "test" / "obama1.jpg"), "--data", data, "--json"]
    )
    assert "/obama/" in json.loads(again.stdout)["results"][0]["hits"][0]["face"]["asset_uri"]


def test_no_face_in_probe_is_a_clear_error(tmp_path: Path, datasets: Path) -> None:
    dogs = next((datasets / "dlib_faces_detection").rglob("dogs.jpg"), None)
    if dogs is None:
        pytest.skip("dogs.jpg not in the datasets")
    # The right half: two dogs only. The left half has a poster with a real face turned sideways, which the rotation
    # fallback finds (tests/integration/test_vision_detection.py).
    probe = tmp_path / "dogs.jpg"
    photo = cv2.imread(str(dogs))
    assert cv2.imwrite(str(probe), photo[:, photo.shape[1] // 2 :])
    open_engine(tmp_path / "data").close()  # an empty gallery: search refuses a data directory that does not exist
    result = runner.invoke(app, ["search", str(probe), "--data", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert "no face found" in result.stderr and "dogs.jpg" in result.stderr


def test_unreadable_probe_is_a_clear_error(tmp_path: Path) -> None:
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(io.BytesIO(b"GIF89a broken").getvalue())
    open_engine(tmp_path / "data").close()  # compare records itself in the audit log of an existing data directory
    result = runner.invoke(app, ["compare", str(probe), str(probe), "--data", str(tmp_path / "data")])
    assert result.exit_code == 2 and "probe.jpg" in result.stderr
