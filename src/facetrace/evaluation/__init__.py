"""Accuracy harness: LFW-protocol verification, 1:N identification, and impostor-score calibration.

Run it with `facetrace eval verify|identify|calibrate|robustness|calibrate-quality` (cli/eval.py over harness.py).
"""

from facetrace.evaluation.calibration import fit_impostor_calibration, read_calibration_json, write_calibration_json
from facetrace.evaluation.datasets import (
    DatasetFormatError,
    LabeledImage,
    VerificationPair,
    read_manifest,
    read_pairs,
)
from facetrace.evaluation.embeddings import EmbeddedImages, embed_images, select_subject_face
from facetrace.evaluation.identify import IdentificationReport, evaluate_identification, split_gallery_probes
from facetrace.evaluation.verify import VerificationReport, evaluate_verification

__all__ = [
    "DatasetFormatError",
    "EmbeddedImages",
    "IdentificationReport",
    "LabeledImage",
    "VerificationPair",
    "VerificationReport",
    "embed_images",
    "evaluate_identification",
    "evaluate_verification",
    "fit_impostor_calibration",
    "read_calibration_json",
    "read_manifest",
    "read_pairs",
    "select_subject_face",
    "split_gallery_probes",
    "write_calibration_json",
]
