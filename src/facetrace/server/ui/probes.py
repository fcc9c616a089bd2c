"""The probe faces of each search, kept as small crops beside the case so reviewers and the report can show what
was searched (never the whole probe photo); and probe photos uploaded but not yet searched, kept only while the
investigator picks the faces to search.

Stored under <data>/case_probes/search_<id>/: face_<n>.jpg (the same crop as gallery thumbnails) and faces.json
(each face's box and quality flags). The catalog keeps the probe's sha256 and embedding; these files are for people.

An uploaded probe waits under <data>/case_probes/pending/<token>.jpg with <token>.json (its case, uploader, name,
faces and subject) until it is searched (then removed), or for at most PENDING_TTL_S, and at most PENDING_PER_USER
per user (an upload beyond that removes the user's oldest). Only its uploader, in its case, reaches it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facetrace.core.errors import NotFoundError
from facetrace.core.subject import subject_index
from facetrace.core.types import AnalyzedImage, ProbeResult
from facetrace.vision.alignment import crop_thumbnail
from facetrace.vision.analyzer import THUMBNAIL_JPEG_QUALITY
from facetrace.vision.images import decode_image, encode_jpeg

PROBES_DIR_NAME = "case_probes"
PENDING_DIR_NAME = "pending"
PENDING_TTL_S = 30 * 60
PENDING_PER_USER = 5
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


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


@dataclass(frozen=True)
class PendingProbe:
    """An uploaded probe photo awaiting the investigator's choice of faces: its faces in detector order, and the face
    the subject rule names (core/subject.py; None when no face clearly dominates)."""

    token: str
    case_id: int
    user: str
    name: str
    purpose: str  # as typed in the upload form, offered again with the faces
    top_k: int | None
    width: int
    height: int
    faces: tuple[ProbeFace, ...]
    subject: int | None
    created_at: float


class PendingProbes:
    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self._root = data_dir / PROBES_DIR_NAME / PENDING_DIR_NAME
        self._clock = clock
        # This process's analysis of each upload it kept, so that searching it does not run the models again; an
        # upload kept by another process (or before a restart) is analysed again when searched.
        self._analyzed: dict[str, AnalyzedImage] = {}

    def add(
        self, user: str, case_id: int, data: bytes, image: AnalyzedImage, purpose: str, top_k: int | None
    ) -> PendingProbe:
        """Keep an analysed upload for its user and case; returns it with its token."""
        self._root.mkdir(parents=True, exist_ok=True)
        self._sweep(user)
        boxes = [face.detection.box for face in image.faces]
        probe = PendingProbe(
            token=secrets.token_urlsafe(16),
            case_id=case_id,
            user=user,
            name=image.source,
            purpose=purpose,
            top_k=top_k,
            width=image.width,
            height=image.height,
            faces=tuple(
                ProbeFace(number, (b.x1, b.y1, b.x2, b.y2), face.quality.score, face.quality.flags)
                for number, (face, b) in enumerate(zip(image.faces, boxes, strict=True))
            ),
            subject=subject_index(boxes, image.width, image.height),
            created_at=self._clock(),
        )
        record = {
            "case_id": case_id,
            "user": user,
            "name": probe.name,
            "purpose": purpose,
            "top_k": top_k,
            "width": probe.width,
            "height": probe.height,
            "subject": probe.subject,
            "created_at": probe.created_at,
            "faces": [
                {"box": list(f.box), "quality_score": f.quality_score, "quality_flags": list(f.quality_flags)}
                for f in probe.faces
            ],
        }
        # The record first: a photo is never on disk without the record that lets the sweep expire it.
        (self._root / f"{probe.token}.json").write_text(json.dumps(record), encoding="utf-8")
        (self._root / f"{probe.token}.jpg").write_bytes(data)
        self._analyzed[probe.token] = image
        return probe

    def get(self, token: str, user: str, case_id: int) -> tuple[PendingProbe, bytes]:
        """The pending probe and its photo, if it is this user's in this case and has not expired (else 404)."""
        missing = NotFoundError("this uploaded probe is gone (searched already, or kept no longer): upload it again")
        if not _TOKEN.match(token):
            raise missing
        try:
            record = json.loads((self._root / f"{token}.json").read_text(encoding="utf-8"))
            data = (self._root / f"{token}.jpg").read_bytes()
        except (OSError, ValueError):
            raise missing from None
        if record["user"] != user or record["case_id"] != case_id:
            raise missing
        if self._clock() - record["created_at"] > PENDING_TTL_S:
            self.discard(token)
            raise missing
        faces = tuple(
            ProbeFace(
                number,
                (float(f["box"][0]), float(f["box"][1]), float(f["box"][2]), float(f["box"][3])),
                f["quality_score"],
                tuple(f["quality_flags"]),
            )
            for number, f in enumerate(record["faces"])
        )
        probe = PendingProbe(
            token,
            case_id,
            user,
            record["name"],
            record["purpose"],
            record["top_k"],
            record["width"],
            record["height"],
            faces,
            record["subject"],
            record["created_at"],
        )
        return probe, data

    def analyzed(self, token: str) -> AnalyzedImage | None:
        """The upload's analysis, if this process made it (get() first: this checks no owner)."""
        return self._analyzed.get(token)

    def discard(self, token: str) -> None:
        self._analyzed.pop(token, None)
        if _TOKEN.match(token):
            for suffix in (".json", ".jpg"):
                (self._root / f"{token}{suffix}").unlink(missing_ok=True)

    def tokens(self) -> list[str]:
        """The tokens kept now (any user), oldest first."""
        if not self._root.is_dir():
            return []
        return [p.stem for p in sorted(self._root.glob("*.json"), key=lambda p: p.stat().st_mtime)]

    def _sweep(self, user: str) -> None:
        """Remove expired uploads, and this user's oldest beyond PENDING_PER_USER - 1 (room for one more)."""
        mine: list[tuple[float, str]] = []
        for token in self.tokens():
            try:
                record = json.loads((self._root / f"{token}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.discard(token)
                continue
            if self._clock() - record["created_at"] > PENDING_TTL_S:
                self.discard(token)
            elif record["user"] == user:
                mine.append((record["created_at"], token))
        for _, token in sorted(mine)[: max(0, len(mine) - PENDING_PER_USER + 1)]:
            self.discard(token)
        for token in set(self._analyzed) - set(self.tokens()):  # gone from disk (another process discarded it)
            self._analyzed.pop(token, None)
