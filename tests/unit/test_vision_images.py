import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from facetrace.core.errors import ImageDecodeError, ImageTooLargeError
from facetrace.vision.images import as_bgr, decode_image, decode_reduced, encode_jpeg


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG written by hand: a valid IHDR (correct CRC) declaring width x height, then a few bytes of pixel data.

    Pillow reads chunks up to the first IDAT when opening, so the file must reach one; it is far too short for the
    declared size, which is the point: nothing may try to decode it.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def _noise_jpeg(width: int = 200, height: int = 150) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=90)


RED_RGB = (220, 30, 40)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("PNG", "RGB"),
        ("PNG", "L"),
        ("PNG", "P"),
        ("PNG", "RGBA"),
        ("PNG", "LA"),
        ("JPEG", "CMYK"),
        ("JPEG", "L"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
        ("GIF", "P"),
    ],
)
def test_decodes_common_formats_and_modes_to_bgr(fmt: str, mode: str) -> None:
    image = Image.new("RGB", (64, 48), RED_RGB)
    converted = image.convert(mode) if mode != "CMYK" else image.convert("CMYK")
    data = _encode(converted, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    bgr = decode_image(data, f"red.{fmt.lower()}")
    assert bgr.shape == (48, 64, 3)
    assert bgr.dtype == np.uint8
    centre = bgr[24, 32].astype(int)
    if mode in ("L", "LA"):
        assert abs(centre[0] - centre[1]) <= 2 and abs(centre[1] - centre[2]) <= 2  # grey
    else:
        # BGR order: red is the last channel.
        assert centre[2] > 150 and centre[0] < 110 and centre[1] < 110, centre


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    bgr = decode_image(_encode(image, "PNG"), "clear.png")
    assert bgr[5, 5].tolist() == [255, 255, 255]


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    values = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    image = Image.fromarray(values)
    bgr = decode_image(_encode(image, "PNG"), "deep.png")
    assert 120 <= int(bgr[0, 0, 0]) <= 135


def test_gif_reads_the_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    bgr = decode_image(buffer.getvalue(), "anim.gif")
    assert bgr[8, 8, 2] > 200 and bgr[8, 8, 0] < 50  # red, the first frame


def test_exif_orientation_is_applied() -> None:
    # Stored landscape, left half red; orientation 6 means "rotate 90 degrees clockwise to display".
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = RED_RGB
    image = Image.fromarray(pixels, "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    bgr = decode_image(_encode(image, "JPEG", quality=95, exif=exif), "rotated.jpg")
    assert bgr.shape == (40, 20, 3)  # displayed portrait
    assert bgr[5, 10, 2] > 150  # the red half is now on top
    assert bgr[35, 10, 2] < 60


def test_empty_file_is_a_decode_error_naming_the_source() -> None:
    with pytest.raises(ImageDecodeError, match=r"empty\.jpg.*empty"):
        decode_image(b"", "empty.jpg")


def test_text_file_named_jpg_is_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError, match=r"notes\.jpg: cannot read as an image"):
        decode_image(b"this is not a photo\n" * 20, "notes.jpg")


def test_truncated_jpeg_is_refused_not_half_grey() -> None:
    data = _noise_jpeg()
    with pytest.raises(ImageDecodeError, match=r"cut\.jpg.*(truncated|corrupt)"):
        decode_image(data[: len(data) // 2], "cut.jpg")


def test_huge_declared_png_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png.*900,000,000 pixels") as info:
        decode_image(_png_header_only(30_000, 30_000), "bomb.png")
    assert info.value.pixels == 900_000_000


def test_pixel_limit_is_checked_from_the_header() -> None:
    # 8000 x 8000 is under Pillow's own bomb limit, so this exercises facetrace's check (64M > 50M).
    with pytest.raises(ImageTooLargeError, match=r"big\.png.*64,000,000 pixels exceeds the limit of 50,000,000"):
        decode_image(_png_header_only(8000, 8000), "big.png")
    with pytest.raises(ImageTooLargeError):
        decode_image(_noise_jpeg(200, 150), "small.jpg", max_pixels=10_000)


def test_encode_jpeg_round_trips() -> None:
    bgr = np.zeros((30, 40, 3), dtype=np.uint8)
    bgr[:, :, 0] = 200  # blue
    data = encode_jpeg(bgr, 85)
    assert data[:2] == b"\xff\xd8"
    back = decode_image(data, "thumb.jpg")
    assert back.shape == bgr.shape
    assert back[15, 20, 0] > 180
    with pytest.raises(ValueError):
        encode_jpeg(bgr, 0)


def test_as_bgr_accepts_grey_and_bgra_and_refuses_others() -> None:
    assert as_bgr(np.zeros((4, 5), np.uint8), "g").shape == (4, 5, 3)
    assert as_bgr(np.zeros((4, 5, 4), np.uint8), "a").shape == (4, 5, 3)
    with pytest.raises(ImageDecodeError, match="dtype"):
        as_bgr(np.zeros((4, 5, 3), np.float32), "f")
    with pytest.raises(ImageDecodeError, match="shape"):
        as_bgr(np.zeros((4, 5, 2), np.uint8), "two")


def _quadrants(width: int, height: int) -> Image.Image:
    """Four flat colours, one per quadrant: any turn or mirror of the image moves them."""
    image = Image.new("RGB", (width, height))
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 30)]
    for i, colour in enumerate(colours):
        x, y = (i % 2) * width // 2, (i // 2) * height // 2
        image.paste(colour, (x, y, x + width // 2, y + height // 2))
    return image


def _small(bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(bgr, (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_large_photo_is_decoded_reduced_the_right_way_up(fmt: str, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(_quadrants(4000, 3000), fmt, exif=exif)
    full = decode_image(data, "big")
    reduced, size = decode_reduced(data, "big", max_decoded_pixels=1_000_000)
    assert size == (full.shape[1], full.shape[0])  # the upright photo's own size, turned sides included
    assert reduced.shape[0] * reduced.shape[1] <= 1_000_000
    assert abs(reduced.shape[1] / reduced.shape[0] - full.shape[1] / full.shape[0]) < 0.01
    assert np.abs(_small(reduced) - _small(full)).max() < 30  # the same picture, the same way up


def test_a_photo_within_the_bound_is_decoded_as_it_is() -> None:
    data = _noise_jpeg(640, 480)
    reduced, size = decode_reduced(data, "small", max_decoded_pixels=1_000_000)
    assert size == (640, 480)
    np.testing.assert_array_equal(reduced, decode_image(data, "small"))
