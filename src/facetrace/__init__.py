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


def __getattr__(name: str) -> object:
    """facetrace.open_engine, imported on first use: `import facetrace` (and every worker process) stays light."""
    if name == "open_engine":
        from facetrace.engine import open_engine

        return open_engine
    raise AttributeError(f"module 'facetrace' has no attribute {name!r}")


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
    "open_engine",
]
