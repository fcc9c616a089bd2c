"""Vision layer: decode, detect, assess, align and embed faces with a model pack.

The front door is open_analyzer(AnalyzerOptions(...)); packs are listed, loaded, verified and added with the functions
in packs.py.
Exports resolve lazily so that importing a pure-numpy submodule (geometry, quality) does not load the runtimes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
    from facetrace.vision.images import decode_image, encode_jpeg
    from facetrace.vision.options import AnalyzerOptions
    from facetrace.vision.packs import ModelPack, PackInfo, add_pack, list_packs, load_pack, verify_pack

_EXPORTS = {
    "AnalyzerOptions": "facetrace.vision.options",
    "OnnxFaceAnalyzer": "facetrace.vision.analyzer",
    "open_analyzer": "facetrace.vision.analyzer",
    "decode_image": "facetrace.vision.images",
    "encode_jpeg": "facetrace.vision.images",
    "ModelPack": "facetrace.vision.packs",
    "PackInfo": "facetrace.vision.packs",
    "add_pack": "facetrace.vision.packs",
    "list_packs": "facetrace.vision.packs",
    "load_pack": "facetrace.vision.packs",
    "verify_pack": "facetrace.vision.packs",
}

__all__ = [
    "AnalyzerOptions",
    "ModelPack",
    "OnnxFaceAnalyzer",
    "PackInfo",
    "add_pack",
    "decode_image",
    "encode_jpeg",
    "list_packs",
    "load_pack",
    "open_analyzer",
    "verify_pack",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facetrace.vision' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
