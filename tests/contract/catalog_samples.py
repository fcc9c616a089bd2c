"""Synthetic catalog data for the contract suites: seeded unit vectors and faces, no models."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facetrace.core.types import AnalyzedFace, BoundingBox, Detection, Embedding, FaceQuality, MediaAsset

MODEL = "test-model-v1"
DIM = 16


def unit_vector(seed: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def make_face(seed: int, model_id: str = MODEL, flags: tuple[str, ...] = (), dim: int = DIM) -> AnalyzedFace:
    rng = np.random.default_rng(seed + 10_000)
    x1, y1 = float(rng.uniform(0, 500)), float(rng.uniform(0, 500))
    landmarks = (rng.uniform(0, 600, size=(5, 2))).astype(np.float32)
    detection = Detection(box=BoundingBox(x1, y1, x1 + 80.25, y1 + 100.5), landmarks=landmarks, score=0.875)
    quality = FaceQuality(
        score=0.625, face_size_px=80.0, sharpness=12.5, detection_score=0.875, yaw_deg=3.0, roll_deg=-1.5, flags=flags
    )
    return AnalyzedFace(detection=detection, quality=quality, embedding=Embedding(model_id, unit_vector(seed, dim)))


def make_asset(number: int, **fields: object) -> MediaAsset:
    sha256 = f"{number:064x}"
    return MediaAsset(sha256=sha256, uri=f"/photos/{number}.jpg", **fields)  # type: ignore[arg-type]
