"""A folder walk says what it passed over and why, and HEIC/AVIF photos are read (docs/reliability.md).

Before, a folder of HEIC and AVIF photos reported "0 images seen, 0 errors" and exited 0: the walk dropped every file
whose suffix it did not know without a word. The photos here are made in the test from a shared-dataset photo.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from facetrace.core.errors import ImageDecodeError
from facetrace.core.vocabulary import WalkSkip
from facetrace.ingest.sources import iter_paths, skip_key
from facetrace.vision import images
from facetrace.vision.images import decode_image

pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency (pyproject.toml)")
FACETRACE = [sys.executable, "-m", "facetrace"]
PEOPLE = ("Colin_Powell", "George_W_Bush", "Tony_Blair", "Donald_Rumsfeld")


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _encoded(photo: Path, kind: str) -> bytes:
    buffer = io.BytesIO()
    with Image.open(photo) as image:
        image.save(buffer, format=kind, quality=90)
    return buffer.getvalue()


def _facetrace(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}
    return subprocess.run([*FACETRACE, *args], env=env, capture_output=True, text=True, timeout=600)


def test_the_walk_counts_what_it_passes_over_by_reason(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    taken = [
        _touch(root / "a.jpg"),
        _touch(root / "b.HEIC"),
        _touch(root / "c.avif"),
        _touch(root / "linked" / "d.png"),
    ]
    _touch(root / "notes.txt")
    _touch(root / "clip.mov")
    _touch(root / "raw" / "e.CR2")
    _touch(root / "f.svg")
    _touch(root / "._a.jpg")  # a macOS resource fork: not a photo, though its suffix says so
    _touch(root / ".thumbnails" / "g.jpg")  # a hidden folder counts once
    (root / "gone.jpg").symlink_to(root / "missing.jpg")
    (root / "linked" / "back").symlink_to(root)  # a loop: the walk is inside root
    (root / "self").symlink_to(root / "self")  # a link to itself
    elsewhere = _touch(tmp_path / "elsewhere" / "h.jpg")
    (root / "more").symlink_to(elsewhere.parent)  # a linked folder: followed
    counts: Counter[str] = Counter()
    uris = [item.uri for item in iter_paths([root], counts)]
    assert uris == [str(p.resolve()) for p in [taken[0], taken[1], taken[2], taken[3], elsewhere]]
    assert counts == {
        skip_key(WalkSkip.NOT_AN_IMAGE): 2,
        skip_key(WalkSkip.UNSUPPORTED_FORMAT): 2,
        skip_key(WalkSkip.HIDDEN): 2,
        skip_key(WalkSkip.BROKEN_LINK): 1,
        skip_key(WalkSkip.LINK_LOOP): 2,
    }


@pytest.mark.parametrize("kind", ["HEIF", "AVIF"])
def test_heic_and_avif_photos_decode_like_the_jpeg_they_were_made_from(lfw: Path, kind: str) -> None:
    photo = next((lfw / "lfw-deepfunneled" / "Colin_Powell").glob("*.jpg"))
    original = decode_image(photo.read_bytes(), str(photo))
    encoded = _encoded(photo, kind)
    assert encoded[4:8] == b"ftyp"
    decoded = decode_image(encoded, f"photo.{kind.lower()}")
    assert decoded.shape == original.shape and decoded.dtype == np.uint8
    assert float(np.abs(decoded.astype(np.int16) - original.astype(np.int16)).mean()) < 6.0


def test_a_folder_of_heic_and_avif_photos_is_ingested_and_found_and_the_rest_reported(
    lfw: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "phone"
    probes: dict[str, Path] = {}
    for number, person in enumerate(PEOPLE):
        first, second = sorted((lfw / "lfw-deepfunneled" / person).glob("*.jpg"))[:2]
        kind, suffix = ("HEIF", ".heic") if number % 2 == 0 else ("AVIF", ".avif")
        _touch(folder / f"{person}{suffix}", _encoded(first, kind))
        probes[person] = second
    _touch(folder / "IMG_0001.CR2", b"raw")
    _touch(folder / "IMG_0001.xmp", b"<x/>")
    _touch(folder / ".DS_Store", b"\0")
    data = tmp_path / "data"

    plain = _facetrace("ingest", "--data", str(data), "--workers", "1", str(folder))
    assert plain.returncode == 0, plain.stderr
    assert f"{len(PEOPLE)} images seen, {len(PEOPLE)} added" in plain.stdout and "0 errors" in plain.stdout
    assert (
        "passed over in folders: 1 hidden (name starts with '.'), 1 not an image by its suffix, "
        "1 in a photo format not taken (camera RAW, SVG, PSD, JPEG XL...)" in plain.stdout
    )
    again = _facetrace("ingest", "--data", str(data), "--workers", "1", "--json", str(folder))
    summary = json.loads(again.stdout)
    assert summary["images_skipped"] == len(PEOPLE) and summary["errors"] == 0
    assert summary["source_counts"] == {"skipped_hidden": 1, "skipped_not_an_image": 1, "skipped_unsupported_format": 1}

    for person, probe in probes.items():
        found = _facetrace("search", "--data", str(data), "--json", "--top-k", "1", str(probe))
        assert found.returncode == 0, found.stderr
        hit = json.loads(found.stdout)["results"][0]["hits"][0]
        assert Path(hit["face"]["asset_uri"]).stem == person, (person, hit["face"]["asset_uri"])


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("HEIF", "a HEIC/HEIF image, and its decoder is not installed (pip install pillow-heif)"),
        ("AVIF", "an AVIF image, and this Pillow has no AVIF decoder"),
    ],
)
def test_without_its_decoder_each_heic_or_avif_file_gets_an_error_saying_what_is_missing(
    lfw: Path, kind: str, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoders are installed with facetrace; this takes them away to see the error an installation without
    them gives (the real decoding is tested above)."""
    photo = next((lfw / "lfw-deepfunneled" / "Tony_Blair").glob("*.jpg"))
    encoded = _encoded(photo, kind)
    monkeypatch.setattr(Image, "ID", [plugin for plugin in Image.ID if plugin != kind])
    monkeypatch.setattr(images, "HEIF_DECODER", kind != "HEIF")
    checked = features.check_module
    monkeypatch.setattr(features, "check_module", lambda name: False if name == "avif" else checked(name))
    with pytest.raises(ImageDecodeError, match=rf"^IMG\.x: cannot read as an image: {re.escape(missing)}"):
        decode_image(encoded, "IMG.x")
