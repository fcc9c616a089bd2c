"""Searches on real photos with the real models: each probe's own outcome, a face chosen per probe (PATH#N, --face),
fusion refusing two people's photos, hits of the probe's own photo (or a copy) marked, withheld hits backfilled and
counted, compare's face choice, and top_k checked everywhere."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.config import Settings
from facetrace.core.errors import FaceSelectionError, InvalidRequestError, MixedProbesError
from facetrace.core.vocabulary import SameImage, WithheldReason
from facetrace.engine import Engine, open_engine
from facetrace.search.service import FUSION_FALSE_MATCH_RATE

pytestmark = pytest.mark.slow
runner = CliRunner()

# LFW people in the gallery, with how many of their photos (the first ones, in file order) are ingested.
GALLERY_PEOPLE = {"Colin_Powell": 10, "Naomi_Watts": 6, "Arnold_Schwarzenegger": 6, "Gerhard_Schroeder": 6}


@dataclass(frozen=True)
class Photos:
    lfw: Path  # lfw-deepfunneled
    examples: Path  # face_recognition examples
    faceless: Path  # the right half of dogs.jpg: two dogs, no face

    def lfw_photo(self, person: str, number: int) -> Path:
        return self.lfw / person / f"{person}_{number:04d}.jpg"

    @property
    def two_people(self) -> Path:  # face 0: Obama, face 1: Biden
        return self.examples / "two_people.jpg"

    @property
    def biden(self) -> Path:
        return self.examples / "knn_examples" / "train" / "biden" / "biden.jpg"


@pytest.fixture(scope="module")
def photos(lfw: Path, fr_examples: Path, datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Photos:
    dogs = datasets / "dlib_faces_detection" / "images" / "dogs.jpg"
    if not dogs.exists():
        pytest.skip("dogs.jpg not in the datasets")
    # The left half has a poster with a face turned sideways, which the rotation fallback finds.
    faceless = tmp_path_factory.mktemp("probes") / "faceless.jpg"
    picture = cv2.imread(str(dogs))
    assert cv2.imwrite(str(faceless), picture[:, picture.shape[1] // 2 :])
    return Photos(lfw / "lfw-deepfunneled", fr_examples / "examples", faceless)


def _ingest_lfw(engine: Engine, photos: Photos, folder: Path) -> int:
    """The GALLERY_PEOPLE photos, labelled with their person (a manifest); the number of photos."""
    manifest = folder / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        for person, count in GALLERY_PEOPLE.items():
            writer.writerows([photos.lfw_photo(person, n), person] for n in range(1, count + 1))
    summary = engine.ingest.run(manifests=[manifest])
    assert summary.errors == 0
    return summary.images_added


@pytest.fixture(scope="module")
def gallery(photos: Photos, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("search")
    engine = open_engine(folder / "data", workers=1)
    assert _ingest_lfw(engine, photos, folder) == sum(GALLERY_PEOPLE.values())
    assert engine.ingest.run([photos.two_people]).images_added == 1
    yield engine
    engine.close()


def _search_json(engine: Engine, *args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["search", *args, "--data", str(engine.settings.data), "--json"])
    return result.exit_code, json.loads(result.stdout)


# -- every probe gets its own outcome -------------------------------------------------------------------------------


def test_a_faceless_probe_is_reported_and_the_other_probe_searched(gallery: Engine, photos: Photos) -> None:
    good = photos.lfw_photo("Colin_Powell", 12)
    code, body = _search_json(gallery, str(good), str(photos.faceless), "-k", "3")
    assert code == 0
    (result,) = body["results"]  # type: ignore[misc]
    assert result["probe_source"] == str(good) and result["hits"][0]["face"]["label"] == "Colin_Powell"
    (error,) = body["errors"]  # type: ignore[misc]
    assert error["probe_source"] == str(photos.faceless) and error["code"] == "no_face"
    assert "faceless.jpg: no face found" in error["message"]
    assert "error" not in body

    human = runner.invoke(app, ["search", str(good), str(photos.faceless), "--data", str(gallery.settings.data)])
    assert human.exit_code == 0
    assert "Colin_Powell" in human.stdout and "error: " in human.stderr
    assert "faceless.jpg: no face found" in human.stderr


def test_a_search_whose_every_probe_failed_exits_non_zero(gallery: Engine, photos: Photos, tmp_path: Path) -> None:
    unreadable = tmp_path / "unreadable.jpg"
    unreadable.write_bytes(b"GIF89a broken")
    code, body = _search_json(gallery, str(photos.faceless), str(unreadable))
    assert code == 2 and body["results"] == []
    assert [e["code"] for e in body["errors"]] == ["no_face", "image_unreadable"]  # type: ignore[union-attr]
    assert body["error"]["code"] == "all_probes_failed"  # type: ignore[index]
    assert "unreadable.jpg" in body["error"]["message"]  # type: ignore[index]


def test_engine_files_gives_each_probe_its_outcome(gallery: Engine, photos: Photos) -> None:
    outcomes = gallery.search.files([photos.faceless, photos.two_people], top_k=2, faces=[None, 7])
    assert [o.failed for o in outcomes] == [True, True]
    assert [o.error_code for o in outcomes] == ["no_face", "face_selection"]
    assert "face 7 asked for, but the photo has 2 face(s)" in (outcomes[1].error_message or "")
    with pytest.raises(InvalidRequestError, match="2 face choices for 1 probe"):
        gallery.search.files([photos.two_people], faces=[0, 1])


# -- choosing the face ----------------------------------------------------------------------------------------------


def test_path_hash_n_searches_that_face(gallery: Engine, photos: Photos) -> None:
    code, body = _search_json(gallery, f"{photos.two_people}#1", "-k", "2")
    assert code == 0
    (result,) = body["results"]  # type: ignore[misc]
    assert result["probe_face_index"] == 1 and result["probe_source"] == str(photos.two_people)
    assert result["probe_box"]["x1"] > 500  # Biden stands on the right of the photo
    everything = gallery.search.file(photos.two_people, top_k=2)
    assert [r.probe_face_index for r in everything] == [0, 1]
    assert result["hits"][0]["face"]["face_id"] == everything[1].hits[0].face.face_id
    # --face given once per probe, in order; with PATH#N on a probe too it is ambiguous, and refused.
    code, body = _search_json(
        gallery, str(photos.two_people), str(photos.lfw_photo("Naomi_Watts", 7)), "--face", "0", "--face", "0"
    )
    assert code == 0 and [r["probe_face_index"] for r in body["results"]] == [0, 0]  # type: ignore[union-attr]
    both = runner.invoke(
        app,
        [
            "search",
            f"{photos.two_people}#1",
            str(photos.biden),
            "--face",
            "0",
            "--face",
            "0",
            "--data",
            str(gallery.settings.data),
        ],
    )
    assert both.exit_code == 2 and "#1 and --face" in both.stderr


def test_fuse_takes_the_face_chosen_in_each_photo(gallery: Engine, photos: Photos) -> None:
    """--fuse used to ignore --face: Biden's face of two_people.jpg fuses with biden.jpg; Obama's face is refused."""
    code, body = _search_json(gallery, "--fuse", f"{photos.two_people}#1", str(photos.biden), "-k", "1")
    assert code == 0
    (result,) = body["results"]  # type: ignore[misc]
    assert result["fused_face_indexes"] == [1, 0] and result["fusion"]["one_person"]
    obama = runner.invoke(
        app,
        [
            "search",
            "--fuse",
            str(photos.two_people),
            str(photos.biden),
            "--face",
            "0",
            "--data",
            str(gallery.settings.data),
        ],
    )
    # Two photos that do not match: the first names the person, so the second is the odd one.
    assert obama.exit_code == 2 and "biden.jpg (best similarity" in obama.stderr


# -- fusion checks that its photos show one person ------------------------------------------------------------------


def test_fusing_two_peoples_photos_is_refused_naming_the_odd_photo(gallery: Engine, photos: Photos) -> None:
    watts = photos.lfw_photo("Naomi_Watts", 8)
    powell = [photos.lfw_photo("Colin_Powell", n) for n in (12, 13)]
    # The odd one out is the photo outside the largest group of matching faces, wherever it stands.
    with pytest.raises(MixedProbesError) as refused:
        gallery.search.fused([watts, *powell], top_k=3)
    assert refused.value.odd_sources == (str(watts),)
    assert "Naomi_Watts_0008.jpg (best similarity" in str(refused.value)
    assert "--allow-mixed-people" in str(refused.value)

    result = runner.invoke(app, ["search", "--fuse", str(powell[0]), str(watts), "--data", str(gallery.settings.data)])
    assert result.exit_code == 2
    assert "do not show one person" in result.stderr and "Naomi_Watts_0008.jpg" in result.stderr

    # Allowed on request, and still marked, in the result and in the audit log.
    allowed = gallery.search.fused([powell[0], watts], top_k=3, allow_mixed=True)
    assert allowed.fusion is not None and not allowed.fusion.one_person
    assert allowed.fusion.odd_sources == (str(watts),)
    assert allowed.fusion.lowest_similarity < allowed.fusion.threshold
    entry = gallery.audit.entries(0, None)[-1]
    assert entry.action == "search" and entry.details["fused_mixed_sources"] == [str(watts)]
    code, body = _search_json(gallery, "--fuse", "--allow-mixed-people", str(powell[0]), str(watts))
    assert code == 0
    fusion = body["results"][0]["fusion"]  # type: ignore[index]
    assert fusion["one_person"] is False and fusion["odd_sources"] == [str(watts)]
    text = runner.invoke(
        app,
        ["search", "--fuse", "--allow-mixed-people", str(powell[0]), str(watts), "--data", str(gallery.settings.data)],
    )
    assert "MIXED PHOTOS" in text.stdout and "Naomi_Watts_0008.jpg did not match" in text.stdout


def test_fusing_three_photos_of_one_person_passes(gallery: Engine, photos: Photos) -> None:
    probes = [photos.lfw_photo("Gerhard_Schroeder", n) for n in (7, 8, 9)]
    result = gallery.search.fused(probes, top_k=3)
    assert result.fusion is not None and result.fusion.one_person
    assert result.fusion.false_match_rate == FUSION_FALSE_MATCH_RATE
    assert result.fusion.lowest_similarity >= result.fusion.threshold
    assert result.fused_face_indexes == (0, 0, 0)
    assert all(hit.face.label == "Gerhard_Schroeder" for hit in result.hits)


# -- hits of the probe's own photo are marked -----------------------------------------------------------------------


def _copy(path: Path, quality: int, scale: float) -> bytes:
    image = Image.open(path).convert("RGB")
    size = (round(image.width * scale), round(image.height * scale))
    out = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_self_match_is_marked_as_the_same_image(gallery: Engine, photos: Photos) -> None:
    probe = photos.lfw_photo("Naomi_Watts", 3)
    (result,) = gallery.search.file(probe, top_k=3)
    top = result.hits[0]
    assert top.face.asset_uri == str(probe.resolve()) and top.similarity > 0.99
    assert top.same_image is SameImage.IDENTICAL
    assert all(hit.same_image is SameImage.NONE for hit in result.hits[1:])  # her other photos are other photos
    human = runner.invoke(app, ["search", str(probe), "-k", "1", "--data", str(gallery.settings.data)])
    assert "SAME IMAGE as the probe" in human.stdout


def test_a_re_encoded_copy_is_marked_likely_the_same_photo(gallery: Engine, photos: Photos, tmp_path: Path) -> None:
    original = photos.lfw_photo("Arnold_Schwarzenegger", 2)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(_copy(original, quality=60, scale=0.9))
    (result,) = gallery.search.file(copy, top_k=4)
    marked = {hit.face.asset_uri: hit.same_image for hit in result.hits}
    assert marked[str(original.resolve())] is SameImage.NEAR_DUPLICATE
    assert sum(mark is not SameImage.NONE for mark in marked.values()) == 1
    code, body = _search_json(gallery, str(copy), "-k", "1")
    assert code == 0 and body["results"][0]["hits"][0]["same_image"] == "near_duplicate"  # type: ignore[index]
    # Slightly cropped (5% from every side), as a page that shows the photo might.
    image = Image.open(original)
    cropped = tmp_path / "cropped.jpg"
    w, h = image.size
    image.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(cropped, "JPEG", quality=90)
    (result,) = gallery.search.file(cropped, top_k=1)
    assert result.hits[0].face.asset_uri == str(original.resolve())
    assert result.hits[0].same_image is SameImage.NEAR_DUPLICATE


def test_a_different_photo_of_the_same_person_is_not_marked(gallery: Engine, photos: Photos) -> None:
    probe = photos.lfw_photo("Colin_Powell", 14)  # not in the gallery; ten other photos of him are
    (result,) = gallery.search.file(probe, top_k=5)
    assert [hit.face.label for hit in result.hits].count("Colin_Powell") >= 4
    assert all(hit.same_image is SameImage.NONE for hit in result.hits)


# -- withheld hits are backfilled -----------------------------------------------------------------------------------


def test_after_a_partial_erasure_a_search_fills_top_k_and_counts_the_withheld(photos: Photos, tmp_path: Path) -> None:
    """Erasing some of a person's faces suppresses their embeddings: the person's other faces that match them are
    withheld from searches. They must not take the places of the next candidates."""
    with open_engine(tmp_path / "data", workers=1) as engine:
        _ingest_lfw(engine, photos, tmp_path)
        gallery_faces = len(engine.index.stored)
        probe = photos.lfw_photo("Colin_Powell", 12)
        (before,) = engine.search.file(probe, top_k=5)
        assert [hit.face.label for hit in before.hits[:3]] == ["Colin_Powell"] * 3
        erased = [hit.face.face_id for hit in before.hits[:3]]
        engine.erasure.erase_faces("admin", erased, "ticket 12")
        (result,) = engine.search.file(probe, top_k=5)
        assert len(result.hits) == 5, "withheld candidates must not take the places of the next ones"
        withheld = result.withheld.get(WithheldReason.ERASED_PERSON, 0)
        assert withheld >= 1 and set(result.withheld) == {WithheldReason.ERASED_PERSON}
        assert not {hit.face.face_id for hit in result.hits} & set(erased)
        # The whole gallery less the erased faces, less the withheld ones: every other face is still found.
        (every,) = engine.search.file(probe, top_k=gallery_faces)
        assert len(every.hits) + sum(every.withheld.values()) == len(engine.index.stored)
        human = runner.invoke(app, ["search", str(probe), "-k", "5", "--data", str(tmp_path / "data")])
        assert f"{withheld} candidate(s) withheld" in human.stdout and "of an erased person" in human.stdout


# -- compare chooses its faces ----------------------------------------------------------------------------------------


def test_compare_chooses_the_face_of_each_photo(gallery: Engine, photos: Photos) -> None:
    data = str(gallery.settings.data)
    args = ["compare", str(photos.two_people), str(photos.biden), "--data", data, "--json"]
    largest = json.loads(runner.invoke(app, args).stdout)
    biden = json.loads(runner.invoke(app, [*args, "--face-a", "1", "--face-b", "0"]).stdout)
    obama = json.loads(runner.invoke(app, [*args, "--face-a", "0"]).stdout)
    assert (biden["face_index_a"], biden["face_index_b"], obama["face_index_a"]) == (1, 0, 0)
    assert biden["similarity"] > 0.6 > 0.3 > obama["similarity"]
    assert largest["face_index_a"] in (0, 1)
    missing = runner.invoke(app, [*args[:-1], "--face-a", "2"])
    assert missing.exit_code == 2 and "face 2 asked for, but the photo has 2 face(s)" in missing.stderr
    with pytest.raises(FaceSelectionError):
        gallery.search.compare_files(photos.two_people, photos.biden, face_b=1)


# -- top_k is 1..1000 wherever it is given --------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", ["0", "1001", "-3"])
def test_a_top_k_outside_1_to_1000_is_refused_on_the_command_line(gallery: Engine, photos: Photos, top_k: str) -> None:
    result = runner.invoke(app, ["search", str(photos.two_people), "-k", top_k, "--data", str(gallery.settings.data)])
    assert result.exit_code == 2 and "--top-k" in result.output


def test_a_top_k_outside_1_to_1000_is_refused_by_the_engine_and_settings(gallery: Engine, photos: Photos) -> None:
    for top_k in (0, 1001, -1):
        with pytest.raises(InvalidRequestError, match="top_k must be a whole number from 1 to 1000"):
            gallery.search.file(photos.two_people, top_k=top_k)
        with pytest.raises(InvalidRequestError, match="top_k"):
            gallery.search.fused([photos.biden], top_k=top_k)
        with pytest.raises(ValidationError, match="top_k"):
            Settings(top_k=top_k)
    assert len(gallery.search.file(photos.biden, top_k=1)[0].hits) == 1
