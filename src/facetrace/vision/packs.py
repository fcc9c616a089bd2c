"""Model packs: a detector and an embedder, pinned by sha256, described by a manifest validated at load.

A pack is a directory holding manifest.json and the files it names (user packs, added by path into
<data_dir>/packs/<id>/), or a manifest inside facetrace whose files point into an installed Python package (the
built-in default). A pack's id is the model id of every embedding it makes, so two packs never mix in one index:
a new embedder, detector, alignment or preprocessing needs a new id. The manifest format is documented in
docs/models.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import itertools
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.core.errors import ModelPackError
from facetrace.core.types import QUALITY_CONDITIONS, ScoreCalibration
from facetrace.vision import graph_fixes
from facetrace.vision.detectors.scrfd import HEAD_WIDTHS, scrfd_output_roles
from facetrace.vision.detectors.yunet import YUNET_OUTPUT_NAMES
from facetrace.vision.quality import MIN_CONFIDENT_DETECTION
from facetrace.vision.sessions import CONCRETE_RUNTIMES, open_session

log = logging.getLogger(__name__)

DEFAULT_PACK_ID = "sface-2021dec-int8bq+yunet-2023mar"
MANIFEST_NAME = "manifest.json"
PACKS_SUBDIR = "packs"
MANIFEST_FORMAT = 1
PACK_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,99}$")
DETECTOR_KINDS = ("yunet", "scrfd")
# Detectors a user pack can reuse with {"builtin": ...}: the default pack's.
BUILTIN_DETECTORS = ("yunet",)
ALIGNMENTS = ("arcface-5point",)
COLOUR_ORDERS = ("RGB", "BGR")

_TOP_KEYS = {
    "format": False,
    "id": True,
    "name": True,
    "version": True,
    "description": False,
    "licence": True,
    "commercial_use": True,
    "detector": True,
    "embedder": True,
    "calibration": False,
    "landmarks": False,
}
_LICENCE_KEYS = {"spdx": True, "summary": True, "url": True}
_DETECTOR_KEYS = {
    "file": True,
    "sha256": True,
    "kind": True,
    "colour_order": True,
    "score_threshold": True,
    "nms_iou": True,
    "preferred_runtime": False,
    "confident_detection_score": False,
    "fallback_score": False,
}
# A user pack may reuse the built-in detector, optionally with its own thresholds.
_BUILTIN_DETECTOR_KEYS = {
    "builtin": True,
    "score_threshold": False,
    "nms_iou": False,
    "confident_detection_score": False,
    "fallback_score": False,
}
_EMBEDDER_KEYS = {
    "file": True,
    "sha256": True,
    "input_size": True,
    "colour_order": True,
    "mean": True,
    "std": True,
    "embedding_dim": True,
    "alignment": False,
    "preferred_runtime": False,
}
_CALIBRATION_KEYS = {
    "model_id": True,
    "similarities": True,
    "false_match_rates": True,
    "impostor_pairs": True,
    "measured_on": True,
    "conditioned": False,  # quality-conditioned tables: {"one_flagged"|"both_flagged": {similarities, ...}}
}
# The landmark refinement model (vision/landmarks/face_mesh.py): a file an install step puts into the data directory's
# models/ folder, pinned here by sha256, with its own licence and where it comes from.
_LANDMARKS_KEYS = {
    "kind": True,
    "installed_file": True,
    "sha256": True,
    "source": True,
    "install": True,
    "licence": True,
}
LANDMARK_KINDS = ("mediapipe-face-mesh",)
MODELS_SUBDIR = "models"
_CONDITIONED_KEYS = {key: True for key in ("similarities", "false_match_rates", "impostor_pairs", "measured_on")}


@dataclass(frozen=True)
class Licence:
    spdx: str  # SPDX expression, e.g. "Apache-2.0 AND MIT"
    summary: str  # one sentence a person can act on
    url: str


@dataclass(frozen=True)
class ModelFile:
    """A model file and the sha256 it must have. read_verified() is the only way its bytes are read."""

    location: str  # for messages: a path, or "package:resource"
    source: Traversable
    sha256: str

    def read_verified(self) -> bytes:
        try:
            data = self.source.read_bytes()
        except OSError as exc:
            raise ModelPackError(f"model file {self.location} cannot be read: {exc}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.sha256:
            raise ModelPackError(
                f"model file {self.location}: expected sha256 {self.sha256}, file has {actual} "
                "(a different or damaged file; the manifest pins the exact bytes)"
            )
        return data


@dataclass(frozen=True)
class DetectorSpec:
    model: ModelFile
    kind: str  # one of DETECTOR_KINDS: how the outputs are decoded and the input prepared
    colour_order: str  # channel order the network reads: "BGR" or "RGB"
    # Faces scoring below this are not faces: the detector's own threshold, calibrated on LFW (every face found) and
    # dlib's dogs.jpg (no dog found); the engine uses it unless min_detection_score overrides it.
    score_threshold: float
    nms_iou: float  # boxes overlapping a better one by more than this IoU are dropped
    preferred_runtime: str  # "opencv" or "onnxruntime": the faster one, as measured
    # Faces scored below this are flagged "low_detection_score" by quality: detectors score clear faces differently.
    confident_detection_score: float = MIN_CONFIDENT_DETECTION
    # The subject-face fallback's floor: a photo with no face at score_threshold keeps its best face scoring at least
    # this (vision/analyzer.py). None: no fallback (a pack whose manifest predates the key).
    fallback_score: float | None = None


@dataclass(frozen=True)
class EmbedderSpec:
    model: ModelFile
    input_width: int
    input_height: int
    colour_order: str  # channel order the network reads: "BGR" or "RGB"
    mean: tuple[float, float, float]  # per channel, in colour_order; x' = (x - mean) / std on 0..255 pixels
    std: tuple[float, float, float]
    embedding_dim: int
    alignment: str  # how landmarks map into the crop: "arcface-5point"
    preferred_runtime: str


@dataclass(frozen=True)
class LandmarkSpec:
    """The pack's landmark refinement model: not shipped by a package, installed into <data_dir>/models/ by an
    explicit step (the install command), and checked against sha256 when it is read."""

    kind: str  # one of LANDMARK_KINDS
    installed_file: str  # its name in <data_dir>/models/
    sha256: str
    source: str  # where its bytes come from, for people
    install: str  # the command that installs it
    licence: Licence

    def installed(self, data_dir: Path | None) -> ModelFile | None:
        """The installed file in data_dir, or None when it is not there (or there is no data directory)."""
        if data_dir is None:
            return None
        path = Path(data_dir) / MODELS_SUBDIR / self.installed_file
        return ModelFile(location=str(path), source=path, sha256=self.sha256) if path.is_file() else None


@dataclass(frozen=True)
class ModelPack:
    id: str
    name: str
    version: str
    description: str
    licence: Licence
    commercial_use: bool
    detector: DetectorSpec
    embedder: EmbedderSpec
    calibration: ScoreCalibration | None
    location: str  # the manifest's path (or package resource) for messages and listings
    builtin: bool
    landmarks: LandmarkSpec | None = None  # the optional landmark refinement model (setting `landmarks`)

    @property
    def model_id(self) -> str:
        """The model id of the embeddings this pack makes (its id)."""
        return self.id

    @property
    def embedding_dim(self) -> int:
        return self.embedder.embedding_dim


@dataclass(frozen=True)
class PackInfo:
    """One line of `list_packs`: enough to choose a pack, read from the manifest without hashing files."""

    id: str
    name: str
    version: str
    licence_spdx: str
    licence_summary: str
    licence_url: str
    commercial_use: bool
    embedding_dim: int
    builtin: bool
    location: str
    problem: str | None = None  # why the pack cannot be loaded, when its manifest is already wrong
    landmark_model: str | None = None  # the pack's landmark refinement model (kind, licence), when it has one
    landmark_model_installed: str | None = None  # where it is installed in the data directory; None: not installed
    landmark_model_install: str | None = None  # the command that installs it


# ---- public functions ----------------------------------------------------------------------------------------------


def list_packs(data_dir: Path | None = None) -> list[PackInfo]:
    """The built-in packs, then those added to data_dir. A broken user pack is listed with its problem."""
    infos: list[PackInfo] = []
    for pack_id, manifest in _builtin_manifests().items():
        infos.append(_info_from_manifest(pack_id, manifest, manifest.parent, builtin=True, data_dir=data_dir))
    if data_dir is not None:
        root = Path(data_dir) / PACKS_SUBDIR
        if root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                info = _info_from_manifest(
                    folder.name, folder / MANIFEST_NAME, folder, builtin=False, data_dir=data_dir
                )
                infos.append(info)
    return infos


def load_pack(name_or_path: str | None = None, data_dir: Path | None = None) -> ModelPack:
    """Load and validate a pack: None for the default, a built-in or added pack id, or a pack directory.

    Validation reads every file once: sha256, then the ONNX graph (input shape, output size). A mismatch raises
    ModelPackError with a sentence naming what was expected and what was found.
    """
    name = DEFAULT_PACK_ID if name_or_path is None else name_or_path
    builtin = _builtin_manifests()
    if name in builtin:
        return _load_manifest(builtin[name], builtin[name].parent, builtin=True)
    if data_dir is not None and PACK_ID_PATTERN.match(name):
        installed = Path(data_dir) / PACKS_SUBDIR / name
        if (installed / MANIFEST_NAME).is_file():
            pack = _load_manifest(installed / MANIFEST_NAME, installed, builtin=False)
            if pack.id != name:
                raise ModelPackError(f"{installed} holds pack {pack.id!r}, not {name!r}; it was edited after adding")
            return pack
    candidate = Path(name).expanduser()
    if candidate.is_file() and candidate.name == MANIFEST_NAME:
        candidate = candidate.parent
    if candidate.is_dir():
        manifest = candidate / MANIFEST_NAME
        if not manifest.is_file():
            raise ModelPackError(f"{candidate} is not a model pack: it has no {MANIFEST_NAME}")
        return _load_manifest(manifest, candidate, builtin=False)
    known = ", ".join(info.id for info in list_packs(data_dir))
    raise ModelPackError(
        f"no model pack named {name!r}: not a built-in or added pack id, nor a folder (known: {known})"
    )


def verify_pack(name_or_path: str | None = None, data_dir: Path | None = None) -> ModelPack:
    """load_pack, then run each model once on a synthetic input to check the outputs it really produces."""
    pack = load_pack(name_or_path, data_dir)
    embedder = pack.embedder
    session = open_session(embedder.model.read_verified(), "onnxruntime", 1, label=f"{pack.id} embedder")
    probe = np.zeros((2, 3, embedder.input_height, embedder.input_width), dtype=np.float32)
    try:
        outputs = session.run(probe)
    except Exception as exc:  # the runtime's own error types; the message is what matters
        raise ModelPackError(
            f"pack {pack.id}: the embedder fails on a 2x3x{embedder.input_height}x{embedder.input_width} input: {exc}"
        ) from None
    got = outputs[0].reshape(outputs[0].shape[0], -1).shape if outputs[0].ndim >= 1 else outputs[0].shape
    if got != (2, embedder.embedding_dim):
        raise ModelPackError(
            f"pack {pack.id}: the embedder should return {embedder.embedding_dim} numbers per face, "
            f"it returned an output of shape {outputs[0].shape} for a batch of 2"
        )
    detector_session = open_session(
        pack.detector.model.read_verified(), "onnxruntime", 1, label=f"{pack.id} detector", dynamic_spatial=True
    )
    detector_session.run(np.zeros((1, 3, 320, 320), dtype=np.float32))
    return pack


def add_pack(path: Path | str, data_dir: Path) -> ModelPack:
    """Validate the pack directory at path, then copy it into <data_dir>/packs/<id>/ (atomically) and load the copy.

    Adding the same pack twice is a no-op; a different pack under an id already taken is refused, because the id is
    the model id of its embeddings.
    """
    source = Path(path).expanduser()
    if not source.is_dir():
        raise ModelPackError(f"{source} is not a directory; a pack to add is a folder holding {MANIFEST_NAME}")
    pack = load_pack(str(source), None)
    if pack.id in _builtin_manifests():
        raise ModelPackError(f"pack id {pack.id!r} is the built-in pack's; give the new pack its own id")
    root = Path(data_dir) / PACKS_SUBDIR
    target = root / pack.id
    if target.exists():
        existing = load_pack(str(target), None)
        if _same_models(existing, pack):
            log.info("pack %s is already installed at %s", pack.id, target)
            return existing
        raise ModelPackError(
            f"a different pack with id {pack.id!r} is already installed at {target}; "
            "a pack id names one set of weights for good, so give the new pack a new id"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".incoming-{pack.id}-{uuid.uuid4().hex}"
    try:
        shutil.copytree(source, staging, symlinks=False)
        os.replace(staging, target)
    except OSError as exc:
        raise ModelPackError(f"could not copy pack {pack.id} into {target}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("added pack %s (%s) at %s", pack.id, pack.licence.spdx, target)
    return load_pack(str(target), None)


# ---- loading -------------------------------------------------------------------------------------------------------


def _builtin_manifests() -> dict[str, Path]:
    root = Path(str(importlib.resources.files("facetrace.vision") / "packs"))
    return {
        folder.name: folder / MANIFEST_NAME
        for folder in sorted(root.iterdir())
        if folder.is_dir() and (folder / MANIFEST_NAME).is_file()
    }


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelPackError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelPackError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelPackError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def _info_from_manifest(
    folder_name: str, manifest: Path, base: Path, *, builtin: bool, data_dir: Path | None
) -> PackInfo:
    try:
        data = _read_manifest(manifest)
        _check_keys(data, _TOP_KEYS, str(manifest))
        licence = _section(data, "licence", str(manifest))
        _check_keys(licence, _LICENCE_KEYS, f"{manifest} licence")
        embedder = _section(data, "embedder", str(manifest))
        landmarks = (
            _load_landmarks(_section(data, "landmarks", str(manifest)), str(manifest)) if "landmarks" in data else None
        )
        installed = None if landmarks is None else landmarks.installed(data_dir)
        return PackInfo(
            id=_str(data, "id", str(manifest)),
            name=_str(data, "name", str(manifest)),
            version=_str(data, "version", str(manifest)),
            licence_spdx=_str(licence, "spdx", f"{manifest} licence"),
            licence_summary=_str(licence, "summary", f"{manifest} licence"),
            licence_url=_str(licence, "url", f"{manifest} licence"),
            commercial_use=_bool(data, "commercial_use", str(manifest)),
            embedding_dim=_int(embedder, "embedding_dim", f"{manifest} embedder"),
            builtin=builtin,
            location=str(base),
            landmark_model=None if landmarks is None else f"{landmarks.kind} ({landmarks.licence.spdx})",
            landmark_model_installed=None if installed is None else installed.location,
            landmark_model_install=None if landmarks is None else landmarks.install,
        )
    except ModelPackError as exc:
        return PackInfo(folder_name, "?", "?", "?", "?", "?", False, 0, builtin, str(base), problem=str(exc))


def _load_manifest(manifest: Path, base: Path, *, builtin: bool) -> ModelPack:
    where = str(manifest)
    data = _read_manifest(manifest)
    _check_keys(data, _TOP_KEYS, where)
    fmt = data.get("format", MANIFEST_FORMAT)
    if fmt != MANIFEST_FORMAT:
        raise ModelPackError(f"{where}: format {fmt!r} is not supported; this facetrace reads format {MANIFEST_FORMAT}")
    pack_id = _str(data, "id", where)
    if not PACK_ID_PATTERN.match(pack_id):
        raise ModelPackError(
            f"{where}: id {pack_id!r} must be 1-100 characters of a-z, 0-9, '.', '_', '+', '-', starting with a "
            "letter or digit (it names a folder and every embedding the pack makes)"
        )
    licence = _licence(_section(data, "licence", where), f"{where} licence")
    detector = _load_detector(_section(data, "detector", where), base, f"{where} detector")
    embedder = _load_embedder(_section(data, "embedder", where), base, f"{where} embedder")
    calibration = None
    if "calibration" in data:
        calibration = _load_calibration(base, _str(data, "calibration", where), pack_id, where)
    pack = ModelPack(
        id=pack_id,
        name=_str(data, "name", where),
        version=_str(data, "version", where),
        description=str(data.get("description", "")),
        licence=licence,
        commercial_use=_bool(data, "commercial_use", where),
        detector=detector,
        embedder=embedder,
        calibration=calibration,
        location=where,
        builtin=builtin,
        landmarks=_load_landmarks(_section(data, "landmarks", where), where) if "landmarks" in data else None,
    )
    if not pack.commercial_use:
        log.warning("pack %s is licensed %s: not for commercial use (%s)", pack.id, licence.spdx, licence.url)
    return pack


def _licence(data: Mapping[str, Any], where: str) -> Licence:
    _check_keys(data, _LICENCE_KEYS, where)
    return Licence(spdx=_str(data, "spdx", where), summary=_str(data, "summary", where), url=_str(data, "url", where))


def _load_landmarks(data: Mapping[str, Any], where: str) -> LandmarkSpec:
    where = f"{where} landmarks"
    _check_keys(data, _LANDMARKS_KEYS, where)
    name = _str(data, "installed_file", where)
    if Path(name).name != name:
        raise ModelPackError(
            f"{where}: installed_file must be a file name (in the data directory's models/), got {name!r}"
        )
    sha = _str(data, "sha256", where).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelPackError(f"{where}: sha256 must be 64 hex digits, got {sha!r}")
    return LandmarkSpec(
        kind=_choice(data, "kind", LANDMARK_KINDS, where),
        installed_file=name,
        sha256=sha,
        source=_str(data, "source", where),
        install=_str(data, "install", where),
        licence=_licence(_section(data, "licence", where), f"{where} licence"),
    )


def _load_detector(data: Mapping[str, Any], base: Path, where: str) -> DetectorSpec:
    if "builtin" in data:
        _check_keys(data, _BUILTIN_DETECTOR_KEYS, where)
        name = _str(data, "builtin", where)
        if name not in BUILTIN_DETECTORS:
            raise ModelPackError(
                f"{where}: builtin detector {name!r} is unknown; expected one of {', '.join(BUILTIN_DETECTORS)}"
            )
        default = _builtin_manifests()[DEFAULT_PACK_ID]
        reused = _load_detector(
            _section(_read_manifest(default), "detector", str(default)), default.parent, f"{default} detector"
        )
        threshold = _threshold(data, where) if "score_threshold" in data else reused.score_threshold
        fallback: float | None
        if "fallback_score" in data:
            fallback = _fallback_score(data, threshold, where)
        else:
            # The built-in floor, where it is still below this pack's own threshold; otherwise no fallback.
            inherited = reused.fallback_score
            fallback = inherited if inherited is not None and inherited < threshold else None
        return DetectorSpec(
            model=reused.model,
            kind=reused.kind,
            colour_order=reused.colour_order,
            score_threshold=threshold,
            nms_iou=_unit_float(data, "nms_iou", where) if "nms_iou" in data else reused.nms_iou,
            preferred_runtime=reused.preferred_runtime,
            confident_detection_score=_unit_float(data, "confident_detection_score", where)
            if "confident_detection_score" in data
            else reused.confident_detection_score,
            fallback_score=fallback,
        )
    _check_keys(data, _DETECTOR_KEYS, where)
    kind = _choice(data, "kind", DETECTOR_KINDS, where)
    threshold = _threshold(data, where)
    spec = DetectorSpec(
        model=_model_file(data, base, where),
        kind=kind,
        colour_order=_choice(data, "colour_order", COLOUR_ORDERS, where),
        score_threshold=threshold,
        nms_iou=_unit_float(data, "nms_iou", where),
        preferred_runtime=_choice(data, "preferred_runtime", CONCRETE_RUNTIMES, where, default="onnxruntime"),
        confident_detection_score=_unit_float(data, "confident_detection_score", where)
        if "confident_detection_score" in data
        else MIN_CONFIDENT_DETECTION,
        fallback_score=_fallback_score(data, threshold, where) if "fallback_score" in data else None,
    )
    summary = _summarize_file(spec.model)
    _check_single_image_input(summary, spec.model.location, channels=3)
    if kind == "scrfd":
        _check_scrfd_outputs(summary, spec.model.location)
        return spec
    names = {o.name for o in summary.outputs}
    if names != set(YUNET_OUTPUT_NAMES):
        missing = sorted(set(YUNET_OUTPUT_NAMES) - names)
        raise ModelPackError(
            f"{spec.model.location}: a yunet detector has outputs {', '.join(YUNET_OUTPUT_NAMES)}; "
            f"this file has {', '.join(sorted(names))} (missing: {', '.join(missing) or 'none'})"
        )
    return spec


def _check_scrfd_outputs(summary: graph_fixes.GraphSummary, location: str) -> None:
    try:
        roles = scrfd_output_roles([o.name for o in summary.outputs])
    except ValueError as exc:
        raise ModelPackError(f"{location}: {exc}") from None
    for output, role in zip(summary.outputs, roles, strict=True):
        width = HEAD_WIDTHS[role.split("_")[0]]
        last = output.shape[-1] if output.shape else None
        if isinstance(last, int) and last != width:
            raise ModelPackError(
                f"{location}: SCRFD output {output.name!r} ({role}) should give {width} numbers per anchor, "
                f"its shape is {_fmt_shape(output.shape)}"
            )


def _load_embedder(data: Mapping[str, Any], base: Path, where: str) -> EmbedderSpec:
    _check_keys(data, _EMBEDDER_KEYS, where)
    size = data.get("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 16 <= v <= 1024 for v in size)):
        raise ModelPackError(f"{where}: input_size must be [width, height] in pixels, e.g. [112, 112]; got {size!r}")
    width, height = int(size[0]), int(size[1])
    spec = EmbedderSpec(
        model=_model_file(data, base, where),
        input_width=width,
        input_height=height,
        colour_order=_choice(data, "colour_order", COLOUR_ORDERS, where),
        mean=_triple(data, "mean", where, positive=False),
        std=_triple(data, "std", where, positive=True),
        embedding_dim=_int(data, "embedding_dim", where),
        alignment=_choice(data, "alignment", ALIGNMENTS, where, default="arcface-5point"),
        preferred_runtime=_choice(data, "preferred_runtime", CONCRETE_RUNTIMES, where, default="onnxruntime"),
    )
    if spec.embedding_dim < 2:
        raise ModelPackError(f"{where}: embedding_dim must be at least 2, got {spec.embedding_dim}")
    summary = _summarize_file(spec.model, infer=True)
    shape = _check_single_image_input(summary, spec.model.location, channels=3)
    declared = (shape[2], shape[3])
    if any(isinstance(d, int) and d != want for d, want in zip(declared, (height, width), strict=True)):
        raise ModelPackError(
            f"{spec.model.location}: the manifest says input_size [{width}, {height}], the graph takes "
            f"{_fmt_shape(shape)} (N, C, height, width)"
        )
    output = summary.outputs[0]
    if output.shape is not None and len(output.shape) >= 1 and isinstance(output.shape[-1], int):
        if output.shape[-1] != spec.embedding_dim:
            raise ModelPackError(
                f"{spec.model.location}: the manifest says embedding_dim {spec.embedding_dim}, the graph's output "
                f"{output.name!r} has shape {_fmt_shape(output.shape)}, i.e. {output.shape[-1]} numbers per face"
            )
    else:
        log.info("%s: output size not declared in the graph; checked on first use", spec.model.location)
    return spec


def _load_calibration(base: Path, file_name: str, pack_id: str, where: str) -> ScoreCalibration | None:
    if Path(file_name).name != file_name:
        raise ModelPackError(f"{where}: calibration must be a file name inside the pack, got {file_name!r}")
    path = base / file_name
    if not path.is_file():
        # The default pack's calibration is generated separately; without it scores are reported uncalibrated.
        log.info(
            "pack %s: no calibration file %s; similarities will not be converted to false-match rates", pack_id, path
        )
        return None
    data = _read_manifest(path)
    _check_keys(data, _CALIBRATION_KEYS, str(path))
    model_id = _str(data, "model_id", str(path))
    if model_id != pack_id:
        raise ModelPackError(f"{path}: calibration was measured for model {model_id!r}, this pack is {pack_id!r}")
    conditioned_data = data.get("conditioned", {})
    if not isinstance(conditioned_data, Mapping):
        raise ModelPackError(f"{path}: conditioned must be an object of tables keyed by quality condition")
    conditioned: list[tuple[str, ScoreCalibration]] = []
    for condition, table in conditioned_data.items():
        where = f"{path}: conditioned.{condition}"
        if condition not in QUALITY_CONDITIONS[1:]:
            raise ModelPackError(f"{where}: unknown quality condition; expected {', '.join(QUALITY_CONDITIONS[1:])}")
        if not isinstance(table, Mapping):
            raise ModelPackError(f"{where}: must be an object")
        _check_keys(table, _CONDITIONED_KEYS, where)
        conditioned.append((condition, _calibration_table(table, model_id, where)))
    return dataclasses.replace(_calibration_table(data, model_id, str(path)), conditioned=tuple(conditioned))


def _calibration_table(data: Mapping[str, Any], model_id: str, where: str) -> ScoreCalibration:
    similarities = _float_list(data, "similarities", where)
    rates = _float_list(data, "false_match_rates", where)
    if len(similarities) != len(rates) or not similarities:
        raise ModelPackError(
            f"{where}: similarities and false_match_rates must be non-empty and of equal length, "
            f"got {len(similarities)} and {len(rates)}"
        )
    if any(b < a for a, b in itertools.pairwise(similarities)) or any(b > a for a, b in itertools.pairwise(rates)):
        raise ModelPackError(f"{where}: similarities must ascend and false_match_rates descend")
    return ScoreCalibration(
        model_id=model_id,
        similarities=tuple(similarities),
        false_match_rates=tuple(rates),
        impostor_pairs=_int(data, "impostor_pairs", where),
        measured_on=_str(data, "measured_on", where),
    )


def _model_file(data: Mapping[str, Any], base: Path, where: str) -> ModelFile:
    sha = _str(data, "sha256", where).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelPackError(f"{where}: sha256 must be 64 hex digits, got {sha!r}")
    ref = data.get("file")
    if isinstance(ref, str):
        relative = Path(ref)
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelPackError(f"{where}: file {ref!r} must be a path inside the pack folder")
        path = base / relative
        if not path.is_file():
            raise ModelPackError(f"{where}: model file {path} is missing (the manifest names {ref!r})")
        return ModelFile(location=str(path), source=path, sha256=sha)
    if isinstance(ref, dict) and set(ref) == {"package", "resource"}:
        package, resource = str(ref["package"]), str(ref["resource"])
        try:
            traversable = importlib.resources.files(package).joinpath(*resource.split("/"))
        except ModuleNotFoundError:
            raise ModelPackError(
                f"{where}: file comes from Python package {package!r}, which is not installed (pip install {package})"
            ) from None
        if not traversable.is_file():
            raise ModelPackError(f"{where}: package {package!r} has no file {resource!r} (a different version?)")
        return ModelFile(location=f"{package}:{resource}", source=traversable, sha256=sha)
    raise ModelPackError(
        f'{where}: file must be a path relative to the pack folder or {{"package": …, "resource": …}}, got {ref!r}'
    )


def _summarize_file(model: ModelFile, *, infer: bool = False) -> graph_fixes.GraphSummary:
    parsed = graph_fixes.parse_model(model.read_verified(), model.location)
    summary = graph_fixes.summarize(parsed)
    first = summary.outputs[0].shape if summary.outputs else None
    if infer and (not first or not isinstance(first[-1], int)):
        summary = graph_fixes.GraphSummary(
            inputs=summary.inputs, outputs=graph_fixes.infer_output_shapes(parsed), dequantize_nodes=0
        )
    return summary


def _check_single_image_input(
    summary: graph_fixes.GraphSummary, location: str, *, channels: int
) -> tuple[graph_fixes.Dim, ...]:
    if len(summary.inputs) != 1:
        names = ", ".join(i.name for i in summary.inputs) or "none"
        raise ModelPackError(f"{location}: expected one image input, the graph has {len(summary.inputs)} ({names})")
    spec = summary.inputs[0]
    if spec.shape is None or len(spec.shape) != 4 or (isinstance(spec.shape[1], int) and spec.shape[1] != channels):
        raise ModelPackError(
            f"{location}: expected an input of shape [N, {channels}, height, width], "
            f"the graph's input {spec.name!r} is {_fmt_shape(spec.shape)}"
        )
    return spec.shape


def _same_models(a: ModelPack, b: ModelPack) -> bool:
    """Whether two packs make identical embeddings: same weights and the same preprocessing."""

    def key(pack: ModelPack) -> tuple[object, ...]:
        e = pack.embedder
        return (
            pack.id,
            pack.detector.model.sha256,
            e.model.sha256,
            (e.input_width, e.input_height, e.colour_order, e.mean, e.std, e.embedding_dim, e.alignment),
        )

    return key(a) == key(b)


# ---- small validators: each names the key, what it expected and what it got ----------------------------------------


def _check_keys(data: Mapping[str, Any], keys: Mapping[str, bool], where: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ModelPackError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected keys: {', '.join(keys)}"
        )
    missing = [key for key, required in keys.items() if required and key not in data]
    if missing:
        raise ModelPackError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")


def _section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ModelPackError(f"{where}: {key!r} must be an object, got {type(value).__name__}")
    return value


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ModelPackError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ModelPackError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ModelPackError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
    return value


def _unit_float(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise ModelPackError(f"{where}: {key!r} must be a number in [0, 1], got {value!r}")
    return float(value)


def _threshold(data: Mapping[str, Any], where: str) -> float:
    """score_threshold: strictly between 0 and 1 (at 0 every anchor of the grid is a face, at 1 none is)."""
    value = data.get("score_threshold")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 < float(value) < 1.0:
        raise ModelPackError(
            f"{where}: 'score_threshold' must be a number between 0 and 1 (exclusive), the detector score from which "
            f"a face counts (the default pack's YuNet: 0.8), got {value!r}"
        )
    return float(value)


def _fallback_score(data: Mapping[str, Any], threshold: float, where: str) -> float:
    """fallback_score: above 0 and below score_threshold (the fallback looks below the threshold, never above)."""
    value = data.get("fallback_score")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 < float(value) < threshold:
        raise ModelPackError(
            f"{where}: 'fallback_score' must be a number above 0 and below score_threshold ({threshold:g}): the floor "
            f"down to which a photo without a face keeps its best one, got {value!r}"
        )
    return float(value)


def _float_list(data: Mapping[str, Any], key: str, where: str) -> list[float]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ModelPackError(f"{where}: {key!r} must be a list of numbers")
    return [float(v) for v in value]


def _triple(data: Mapping[str, Any], key: str, where: str, *, positive: bool) -> tuple[float, float, float]:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or (positive and any(v <= 0 for v in value))
    ):
        kind = "positive numbers" if positive else "numbers"
        raise ModelPackError(f"{where}: {key!r} must be one or three {kind} (per channel), got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _choice(
    data: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str, *, default: str | None = None
) -> str:
    value = data.get(key, default)
    if value not in allowed:
        raise ModelPackError(f"{where}: {key!r} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _fmt_shape(shape: tuple[graph_fixes.Dim, ...] | None) -> str:
    if shape is None:
        return "[unknown rank]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
