"""The probe faces of each search, kept as small crops beside the case so reviewers and the report can show what
was searched (never the whole probe photo).

Stored under <data>/case_probes/search_<id>/: face_<n>.jpg (the same crop as gallery thumbnails) and faces.json
(each face's box and quality flags). The catalog keeps the probe's sha256 and embedding; these files are for people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facetrace.core.types import ProbeResult
from facetrace.vision.alignment import crop_thumbnail
from facetrace.vision.analyzer import THUMBNAIL_JPEG_QUALITY
from facetrace.vision.images import decode_image, encode_jpeg

PROBES_DIR_NAME = "case_probes"


@dataclass(frozen=True)
class ProbeFace:
    face_index: int
    box: tuple[float, float, float, float]
    quality_score: float | None
    quality_flags: tuple[str, ...]

    @property
    def weak(self) -> bool:
        return bool(self.quality_flags)


class ProbeStore:
    def __init__(self, data_dir: Path, max_image_pixels: int) -> None:
        self._root = data_dir / PROBES_DIR_NAME
        self._max_image_pixels = max_image_pixels

    def save(self, search_id: int, data: bytes, name: str, results: list[ProbeResult]) -> None:
        folder = self._root / f"search_{search_id}"
        folder.mkdir(parents=True, exist_ok=True)
        bgr = decode_image(data, name, max_pixels=self._max_image_pixels)
        faces = []
        for result in results:
            if result.probe_face_index is None or result.probe_box is None:
                continue
            crop = encode_jpeg(crop_thumbnail(bgr, result.probe_box), THUMBNAIL_JPEG_QUALITY)
            (folder / f"face_{result.probe_face_index}.jpg").write_bytes(crop)
            quality = result.probe_quality
            faces.append(
                {
                    "face_index": result.probe_face_index,
                    "box": [result.probe_box.x1, result.probe_box.y1, result.probe_box.x2, result.probe_box.y2],
                    "quality_score": quality.score if quality else None,
                    "quality_flags": list(quality.flags) if quality else [],
                }
            )
        (folder / "faces.json").write_text(json.dumps(faces), encoding="utf-8")

    def faces(self, search_id: int) -> dict[int, ProbeFace]:
        path = self._root / f"search_{search_id}" / "faces.json"
        if not path.exists():
            return {}
        found = {}
        for item in json.loads(path.read_text(encoding="utf-8")):
            x1, y1, x2, y2 = (float(v) for v in item["box"])
            face = ProbeFace(
                face_index=int(item["face_index"]),
                box=(x1, y1, x2, y2),
                quality_score=item.get("quality_score"),
                quality_flags=tuple(item.get("quality_flags", ())),
            )
            found[face.face_index] = face
        return found

    def crop(self, search_id: int, face_index: int) -> bytes | None:
        path = self._root / f"search_{search_id}" / f"face_{face_index}.jpg"
        return path.read_bytes() if path.exists() else None
