"""facetrace: self-hosted, accountable face identification search."""

from facetrace.core.errors import FacetraceError
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Detection,
    Embedding,
    Evidence,
    FaceQuality,
    FaceRecord,
    IngestSummary,
    MediaAsset,
    ProbeResult,
    SearchHit,
)

__version__ = "0.1.0"

__all__ = [
    "AnalyzedFace",
    "AnalyzedImage",
    "BoundingBox",
    "Detection",
    "Embedding",
    "Evidence",
    "FaceQuality",
    "FaceRecord",
    "FacetraceError",
    "IngestSummary",
    "MediaAsset",
    "ProbeResult",
    "SearchHit",
    "__version__",
]
