"""The analyzer's options: one frozen record, so the engine, the accuracy harness and the benchmarks run one pipeline.

config.Settings takes its defaults for these fields from here and builds the record (Settings.analyzer_options());
open_analyzer() and OnnxFaceAnalyzer take it. It is picklable: worker processes and Ray actors build their analyzer
from it. Plain values only, so that config can import it without loading the runtimes; OnnxFaceAnalyzer validates
them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RotationFallback = Literal["off", "auto", "always"]  # vision/detectors/rotation.py
Restoration = Literal["off", "auto"]  # vision/restoration.py
Landmarks = Literal["detector", "turned", "refined", "auto"]  # vision/landmarks/face_mesh.py


@dataclass(frozen=True)
class AnalyzerOptions:
    """How to analyse photos; the defaults are the engine's (config.Settings, docs/configuration.md)."""

    pack: str | None = None  # model pack id or folder; None: the built-in default pack
    data_dir: Path | None = None  # the data directory whose packs/ holds added packs; None: built-in packs only
    threads: int = 1  # inference threads
    runtime: str = "auto"  # auto (fastest measured per model), opencv or onnxruntime
    flip_tta: bool = False  # average each face's embedding with its mirror image's
    max_image_pixels: int = 50_000_000  # images declaring more pixels are refused (decompression-bomb guard)
    # Larger photos are analysed reduced to this many pixels (a JPEG decoded reduced): bounds time and memory.
    max_analysis_pixels: int = 12_000_000
    # Photos one analyzer decodes and analyses at once (more callers wait their turn): bounds the memory of concurrent
    # large probes. 0: the number of cores.
    concurrent_analyses: int = 0
    # Faces the detector is less sure of are ignored. None: the pack's own threshold (its manifest's score_threshold,
    # calibrated per detector: 0.8 for the default pack's YuNet, docs/models.md); a number overrides it.
    min_detection_score: float | None = None
    # A photo with no face at that threshold keeps its best face above the pack's fallback_score, flagged
    # low_detection_score (vision/analyzer.py); False: such a photo has no face.
    subject_fallback: bool = True
    rotation_fallback: RotationFallback = "auto"  # detect on turned copies of unsure photos
    restoration: Restoration = "auto"  # denoise grainy and stretch flat photos before detection
    # Where the five alignment points come from: the detector's, the face mesh's for every face (refined; its model
    # installed in data_dir's models/) or for turned and doubted faces only (turned), or auto: refined when the model
    # is installed, else the detector's (vision/landmarks/face_mesh.py).
    landmarks: Landmarks = "auto"

    @property
    def analysis_slots(self) -> int:
        """Photos analysed at once: concurrent_analyses, or the number of cores where that is 0."""
        return self.concurrent_analyses or max(1, os.cpu_count() or 1)
