"""The one drawing of a photo's faces (vision/annotate.py), on a real two-face photo: downscaled, each face's box
where its pixels are, picked faces in yellow over the others' grey, weak faces' flags listed under it, and a photo
that cannot be read refused as such."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from facetrace.core.errors import ImageDecodeError
from facetrace.core.types import BoundingBox
from facetrace.vision.annotate import ANNOTATED_MAX_SIDE, MarkedFace, annotate

# two_people.jpg is 1126 x 661; two boxes around where its two faces are (the drawing does not detect).
LEFT = BoundingBox(200.0, 100.0, 400.0, 300.0)
RIGHT = BoundingBox(700.0, 120.0, 880.0, 320.0)


@pytest.fixture(scope="module")
def photo(fr_examples: Path) -> bytes:
    return (fr_examples / "examples" / "two_people.jpg").read_bytes()


def _rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.convert("RGB")


def _yellow(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 220 and 170 < g < 230 and b < 60


def _grey(pixel: tuple[int, int, int]) -> bool:
    return all(180 < v < 220 for v in pixel) and max(pixel) - min(pixel) < 20


def test_boxes_are_drawn_where_the_faces_are_picked_in_yellow(photo: bytes) -> None:
    marks = [MarkedFace("0", LEFT), MarkedFace("1", RIGHT, picked=True)]
    drawn = _rgb(annotate(photo, "two_people.jpg", marks, max_side=2000))
    assert drawn.size == (1126, 661)  # within max_side: kept at its size
    # The middle of each box's lower edge (no tag there): the picked one yellow, the other grey.
    assert _yellow(drawn.getpixel((790, 319)))
    assert _grey(drawn.getpixel((300, 299)))
    assert not _yellow(drawn.getpixel((300, 299)))


def test_a_large_photo_is_downscaled_and_its_boxes_with_it(photo: bytes) -> None:
    drawn = _rgb(annotate(photo, "two_people.jpg", [MarkedFace("1", RIGHT, picked=True)], max_side=563))
    assert drawn.size == (563, 330)
    assert _yellow(drawn.getpixel((395, 159)))  # (790, 319) at half scale
    assert max(_rgb(annotate(photo, "p", [])).size) <= ANNOTATED_MAX_SIDE


def test_weak_faces_flags_are_listed_under_the_photo(photo: bytes) -> None:
    assert MarkedFace("2", LEFT, ("profile", "blurry")).note == "2 weak: profile, blurry"
    assert MarkedFace("face 17", LEFT).note is None
    marks = [MarkedFace("0", LEFT, ("profile",)), MarkedFace("1", RIGHT, ("blurry", "small"))]
    drawn = _rgb(annotate(photo, "two_people.jpg", marks, max_side=2000))
    assert drawn.width == 1126 and drawn.height > 661 + 2 * 28  # a strip of two lines under the photo
    strip = [drawn.getpixel((x, y)) for x in range(0, 400) for y in range(662, drawn.height)]
    assert any(r > 220 and 90 < g < 150 and b < 80 for r, g, b in strip)  # orange writing on black


def test_a_photo_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(ImageDecodeError):
        annotate(b"not a photo", "junk.jpg", [MarkedFace("0", LEFT)])
