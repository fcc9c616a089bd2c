"""Safe image decoding: untrusted bytes in, an upright BGR uint8 array out, or a typed error naming the file.

Pillow reads every format (JPEG, PNG, WebP, GIF, BMP, TIFF, and AVIF where its build has libavif: the wheels from
11.3 on); HEIC/HEIF photos (iPhones' default) through the pillow-heif plugin, registered here. A HEIF or AVIF file
that the installed decoders cannot read gets an error saying what is missing. OpenCV is used only to encode JPEG
thumbnails.
"""

from __future__ import annotations

import io
import logging
import math
import re

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError, features

from facetrace.core.errors import ImageDecodeError, ImageTooLargeError

try:  # HEIC/HEIF: a dependency (pyproject.toml); still optional here, so that a missing one is a clear error per file
    import pillow_heif
except ImportError:  # pragma: no cover - installed with facetrace
    HEIF_DECODER = False
else:
    pillow_heif.register_heif_opener()
    HEIF_DECODER = True

log = logging.getLogger(__name__)

BgrImage = npt.NDArray[np.uint8]

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# Transparent pixels are shown on white, the way a browser or photo viewer would show them.
TRANSPARENCY_BACKGROUND_RGB = (255, 255, 255)
_PILLOW_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_EXIF_ORIENTATION = 0x0112
# EXIF orientations that turn the stored image by a quarter: the upright photo's width is the stored height.
_SIDE_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# What ImageOps.exif_transpose does for each orientation, for copies that no longer carry the EXIF block.
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode_image(data: bytes, source: str, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> BgrImage:
    """Decode an encoded image into an upright (EXIF orientation applied) HxWx3 BGR uint8 array.

    Only the first frame of animated or multi-page files is read. Raises ImageTooLargeError when the header declares
    more than max_pixels pixels (checked before any pixel is decoded) and ImageDecodeError for anything unreadable:
    empty, not an image, truncated or corrupt. Both name source.
    """
    bgr, _ = _decode(data, source, max_pixels=max_pixels, max_decoded_pixels=None)
    return bgr


def decode_reduced(
    data: bytes, source: str, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, max_decoded_pixels: int
) -> tuple[BgrImage, tuple[int, int]]:
    """decode_image, reduced to at most max_decoded_pixels (aspect kept): faces need no 49 megapixels, and every
    later step (detection passes, turned copies, restoration) costs time and memory in proportion to the pixels.

    A large JPEG is decoded reduced by its decoder (draft mode: 1/2, 1/4 or 1/8 scale, never below the bound), so
    its full size never reaches memory; other formats are reduced right after decoding. Returns the image and the
    upright photo's own (width, height), which boxes found in the reduced image are mapped back to.
    """
    return _decode(data, source, max_pixels=max_pixels, max_decoded_pixels=max_decoded_pixels)


def _decode(
    data: bytes, source: str, *, max_pixels: int, max_decoded_pixels: int | None
) -> tuple[BgrImage, tuple[int, int]]:
    if not data:
        raise ImageDecodeError(source, "the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (2x Image.MAX_IMAGE_PIXELS) fires inside open(), before ours can look at the header.
        match = _PILLOW_BOMB_PIXELS.search(str(exc))
        raise ImageTooLargeError(source, int(match.group(1)) if match else 0, max_pixels) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(source, _missing_decoder(data) or "not a recognised image format") from None
    except Exception as exc:  # Pillow's format plugins raise many exception types on malformed headers.
        raise ImageDecodeError(source, f"unreadable header ({exc})") from None

    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageDecodeError(source, f"the header declares an empty {width}x{height} image")
        if width * height > max_pixels:
            raise ImageTooLargeError(source, width * height, max_pixels)
        reduce_by = 1.0
        if max_decoded_pixels is not None and width * height > max_decoded_pixels:
            reduce_by = math.sqrt(max_decoded_pixels / (width * height))
            if image.format == "JPEG":
                # The decoder picks the smallest of its scales that is still at least this size.
                image.draft("RGB", (math.ceil(width * reduce_by), math.ceil(height * reduce_by)))
        try:
            # LOAD_TRUNCATED_IMAGES stays False (Pillow's default), so a cut-off file raises here instead of
            # silently coming back half grey.
            image.load()
        except Image.DecompressionBombError as exc:
            match = _PILLOW_BOMB_PIXELS.search(str(exc))
            raise ImageTooLargeError(source, int(match.group(1)) if match else 0, max_pixels) from None
        except Exception as exc:  # truncated data, bad Huffman tables, CRC errors... all mean "cannot read"
            raise ImageDecodeError(source, f"corrupt or truncated image data ({exc})") from None
        orientation = _orientation(image)
        swaps_sides = orientation in _SIDE_SWAPPING_ORIENTATIONS
        if reduce_by < 1.0:
            # A reduced copy carries no EXIF: turn it by the orientation read from the file.
            reduced = _reduced(image, reduce_by * width / image.size[0])
            turn = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
            upright = reduced.transpose(turn) if turn is not None else reduced
        else:
            upright = _apply_exif_orientation(image, source)
        rgb = _to_rgb_array(upright, source)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    upright_size = (height, width) if swaps_sides else (width, height)
    if reduce_by == 1.0:
        return bgr, (int(bgr.shape[1]), int(bgr.shape[0]))
    limit = max_decoded_pixels or 0  # not None here: reduce_by is below 1 only with a bound
    if bgr.shape[0] * bgr.shape[1] > limit:
        factor = math.sqrt(limit / (bgr.shape[0] * bgr.shape[1]))
        size = (max(1, int(bgr.shape[1] * factor)), max(1, int(bgr.shape[0] * factor)))
        bgr = np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return bgr, upright_size


# ISO base media file brands (the ftyp box at offset 4) of HEIF and AVIF images.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def _missing_decoder(data: bytes) -> str | None:
    """What is missing to read data, when it is a HEIF or AVIF image the installed decoders do not take."""
    if data[4:8] != b"ftyp":
        return None
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(len(data), 64), 4)}
    if brands & _AVIF_BRANDS and not features.check_module("avif"):
        return "an AVIF image, and this Pillow has no AVIF decoder (install Pillow 11.3 or later, built with libavif)"
    if brands & _HEIF_BRANDS:
        if not HEIF_DECODER:
            return "a HEIC/HEIF image, and its decoder is not installed (pip install pillow-heif)"
        return "a HEIF image in a coding this build of libheif cannot decode"
    return None


def encode_jpeg(bgr: BgrImage, quality: int = 85) -> bytes:
    """Encode a BGR uint8 image as JPEG bytes."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} {bgr.dtype} array as JPEG")
    return bytes(buffer.tobytes())


def as_bgr(image: npt.NDArray[np.generic], source: str) -> BgrImage:
    """Check (and if needed adapt) an already-decoded array: HxW grey, HxWx3 BGR or HxWx4 BGRA, uint8."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ImageDecodeError(source, f"expected a uint8 image array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ImageDecodeError(source, f"expected an HxWx3 BGR array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageDecodeError(source, f"the array is empty (shape {array.shape})")
    return np.ascontiguousarray(array)


def _reduced(image: Image.Image, factor: float) -> Image.Image:
    """The decoded image shrunk by the largest whole factor that keeps it at least `factor` of its size (a box
    filter, before any array copy is made); the exact size is reached after conversion."""
    whole = math.floor(1.0 / factor)
    if whole < 2:
        return image
    try:
        return image.reduce(whole)
    except (ValueError, NotImplementedError):  # modes reduce() does not take (palette, 1-bit): reduced later
        return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a malformed EXIF block: _apply_exif_orientation keeps the pixels as stored then
        return 1


def _apply_exif_orientation(image: Image.Image, source: str) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception as exc:
        # A malformed EXIF block should not cost the whole photo: keep the pixels as stored.
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", source, exc)
        return image
    return upright if upright is not None else image


def _to_rgb_array(image: Image.Image, source: str) -> npt.NDArray[np.uint8]:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_grey_to_rgb(image)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENCY_BACKGROUND_RGB, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        try:
            # CMYK, YCbCr, LAB, HSV, L and 1 all have a direct conversion in Pillow.
            image = image.convert("RGB")
        except Exception as exc:
            raise ImageDecodeError(source, f"cannot convert colour mode {mode} to RGB ({exc})") from None
    return np.asarray(image, dtype=np.uint8)


def _high_depth_grey_to_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    # Pillow's convert("L") clips 16-bit values at 255 (an almost white image), so scale by the depth instead.
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        peak = float(values.max()) if values.size else 0.0
        scaled = values * 255.0 if peak <= 1.0 else values
    else:
        peak = float(values.max()) if values.size else 0.0
        scaled = values / 257.0 if peak > 255 else values
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)
