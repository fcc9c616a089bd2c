"""A photo with its faces drawn on it: each face's box and number, its quality flags, and which faces are picked.

One drawing for every reader: the web UI's probe overview and a candidate's whole photo, and `facetrace search
--annotate out.jpg`. The photo is decoded EXIF-upright (the boxes' frame, core/types.py), downscaled so that its
longer side is at most max_side, and returned as a JPEG. Picked faces get a thick yellow box, the others a thin
grey one (orange when flagged); each box is tagged with its name alone, so that tags of faces side by side do not
cover each other, and the flags of weak faces are listed in a strip under the photo ("2 weak: blurry, profile").
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
from PIL import Image, ImageDraw, ImageFont

from facetrace.core.types import BoundingBox
from facetrace.vision.images import DEFAULT_MAX_IMAGE_PIXELS, decode_image

ANNOTATED_MAX_SIDE = 1024
ANNOTATED_JPEG_QUALITY = 85
_PICKED = (255, 200, 0)
_OTHER = (200, 200, 200)
_WEAK = (255, 120, 40)
_INK = (0, 0, 0)


@dataclass(frozen=True)
class MarkedFace:
    """A face to draw: its name on the tag (a probe face's number, as --face and face_index count from 0), its box in
    the photo's pixels, its quality flags, and whether it is picked (to be searched, or the candidate shown)."""

    name: str
    box: BoundingBox
    flags: tuple[str, ...] = ()
    picked: bool = False

    @property
    def note(self) -> str | None:
        """Its line in the strip under the photo, if it is weak."""
        return f"{self.name} weak: {', '.join(self.flags)}" if self.flags else None


def annotate(
    data: bytes,
    source: str,
    faces: Sequence[MarkedFace],
    *,
    max_side: int = ANNOTATED_MAX_SIDE,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> bytes:
    """The photo (bytes, named source in errors), downscaled to max_side, with faces drawn on it, as JPEG bytes.
    Raises ImageDecodeError (or ImageTooLargeError) for a photo that cannot be read."""
    bgr = decode_image(data, source, max_pixels=max_pixels)
    photo = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    scale = min(1.0, max_side / max(photo.width, photo.height))
    if scale < 1.0:
        size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
        photo = photo.resize(size, Image.Resampling.LANCZOS)
    longer = max(photo.width, photo.height)
    line = max(2, round(longer / 300))
    font = ImageFont.load_default(size=max(14, round(longer / 40)))
    notes = [note for face in faces if (note := face.note) is not None]
    row = round(font.size) + 2 * line if isinstance(font, ImageFont.FreeTypeFont) else 16
    image = Image.new("RGB", (photo.width, photo.height + (len(notes) * row + 2 * line if notes else 0)), _INK)
    image.paste(photo)
    draw = ImageDraw.Draw(image)
    # Picked faces last, so that their boxes lie on top where faces overlap.
    for face in sorted(faces, key=lambda f: f.picked):
        x1, y1, x2, y2 = (v * scale for v in (face.box.x1, face.box.y1, face.box.x2, face.box.y2))
        colour = _PICKED if face.picked else (_WEAK if face.flags else _OTHER)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line * 2 if face.picked else line)
        left, top, right, bottom = draw.textbbox((0, 0), face.name, font=font)
        tag_w, tag_h = right - left + 2 * line, bottom - top + 2 * line
        tag_x = min(max(0.0, x1), max(0.0, photo.width - tag_w))
        tag_y = y1 - tag_h if y1 - tag_h >= 0 else min(y2, photo.height - tag_h)
        draw.rectangle((tag_x, tag_y, tag_x + tag_w, tag_y + tag_h), fill=colour)
        draw.text((tag_x + line - left, tag_y + line - top), face.name, fill=_INK, font=font)
    for number, note in enumerate(notes):
        draw.text((2 * line, photo.height + line + number * row), note, fill=_WEAK, font=font)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=ANNOTATED_JPEG_QUALITY)
    return out.getvalue()
