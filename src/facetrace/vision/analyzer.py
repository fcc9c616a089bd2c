"""The vision pipeline behind core.ports.FaceAnalyzer: decode -> detect -> quality -> align -> embed -> thumbnail."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.core.errors import ConfigError
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Detection,
    Embedding,
    FaceQuality,
    FloatArray,
)
from facetrace.vision import graph_fixes
from facetrace.vision.alignment import align_face, crop_thumbnail
from facetrace.vision.detectors.rotation import (
    MIN_TURNED_VIEW_SCORE,
    ROTATION_MODES,
    SUSPECT_SCORE,
    DetectionReport,
    RotationRobustDetector,
)
from facetrace.vision.detectors.scrfd import ScrfdDetector
from facetrace.vision.detectors.yunet import (
    DEFAULT_MAX_DETECTION_SIDE_PX,
    DEFAULT_MIN_DETECTION_SIDE_PX,
    YuNetDetector,
)
from facetrace.vision.embedders.manifest_embedder import DEFAULT_MAX_BATCH, ManifestEmbedder
from facetrace.vision.images import as_bgr, decode_image, decode_reduced, encode_jpeg
from facetrace.vision.landmarks import face_mesh
from facetrace.vision.landmarks.face_mesh import LANDMARK_MODES, FaceMeshRefiner
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import ModelFile, ModelPack, load_pack
from facetrace.vision.quality import assess_quality, eyes_visible
from facetrace.vision.restoration import RESTORATION_MODES, restore
from facetrace.vision.sessions import RUNTIMES, open_session

log = logging.getLogger(__name__)

BgrImage = npt.NDArray[np.uint8]
THUMBNAIL_JPEG_QUALITY = 85


def thumbnail_jpeg(data: bytes, source: str, box: BoundingBox, *, max_pixels: int) -> bytes:
    """The face crop stored for a face (as ingest makes it), from its photo's bytes and its stored box."""
    return encode_jpeg(crop_thumbnail(decode_image(data, source, max_pixels=max_pixels), box), THUMBNAIL_JPEG_QUALITY)


@dataclass(frozen=True)
class _Models:
    detector: RotationRobustDetector  # wraps the pack's YuNetDetector or ScrfdDetector
    embedder: ManifestEmbedder
    refiner: FaceMeshRefiner | None  # None: the detector's landmarks align every face


@dataclass(frozen=True)
class _PendingImage:
    """An image detected and aligned, waiting for its faces' embeddings (analyze_batch embeds all at once)."""

    source: str
    width: int
    height: int
    detections: tuple[Detection, ...]  # with the landmarks that aligned each face
    qualities: tuple[FaceQuality, ...]
    crops: tuple[BgrImage, ...]
    thumbnails: tuple[bytes, ...]


def _in_photo_pixels(pending: _PendingImage, width: int, height: int) -> _PendingImage:
    """A photo analysed reduced: its detections mapped back to the photo's own pixels (the catalog's convention)."""
    sx, sy = width / pending.width, height / pending.height
    scale = np.asarray([sx, sy], dtype=np.float32)
    detections = tuple(
        Detection(
            box=BoundingBox(d.box.x1 * sx, d.box.y1 * sy, d.box.x2 * sx, d.box.y2 * sy),
            landmarks=(np.asarray(d.landmarks, dtype=np.float32) * scale).astype(np.float32),
            score=d.score,
        )
        for d in pending.detections
    )
    return dataclasses.replace(pending, width=width, height=height, detections=detections)


class OnnxFaceAnalyzer:
    """Implements core.ports.FaceAnalyzer with a model pack's detector and embedder.

    Models load on first use, once, under a lock; analyze calls are then safe from several threads. options.pack and
    options.data_dir say where pack came from (open_analyzer loads it from them); the other options are validated here.
    """

    def __init__(
        self,
        pack: ModelPack,
        options: AnalyzerOptions | None = None,
        *,
        max_detection_side_px: int = DEFAULT_MAX_DETECTION_SIDE_PX,
        min_detection_side_px: int = DEFAULT_MIN_DETECTION_SIDE_PX,
        embed_batch_size: int = DEFAULT_MAX_BATCH,
    ) -> None:
        options = AnalyzerOptions() if options is None else options
        if options.runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {options.runtime!r}")
        if options.threads < 1:
            raise ConfigError(f"threads must be at least 1, not {options.threads}")
        if options.min_detection_score is not None and not 0.0 <= options.min_detection_score <= 1.0:
            raise ConfigError(f"min_detection_score must be in [0, 1], not {options.min_detection_score}")
        if options.rotation_fallback not in ROTATION_MODES:
            raise ConfigError(
                f"rotation_fallback must be one of {', '.join(ROTATION_MODES)}, not {options.rotation_fallback!r}"
            )
        if options.restoration not in RESTORATION_MODES:
            raise ConfigError(f"restoration must be one of {', '.join(RESTORATION_MODES)}, not {options.restoration!r}")
        if options.landmarks not in LANDMARK_MODES:
            raise ConfigError(f"landmarks must be one of {', '.join(LANDMARK_MODES)}, not {options.landmarks!r}")
        self.pack = pack
        self.options = options
        # The installed landmark refinement model, when the landmarks option uses one; None: the detector's points.
        self.landmark_model = _landmark_model(pack, options)
        # The threshold in force: the options' or, where they leave it to the pack (None), the pack's own.
        self.min_detection_score = (
            pack.detector.score_threshold if options.min_detection_score is None else float(options.min_detection_score)
        )
        # The subject-face fallback's floor (None: no fallback): the pack's, while it is below the threshold in force.
        floor = pack.detector.fallback_score
        self.fallback_score = (
            floor if options.subject_fallback and floor is not None and floor < self.min_detection_score else None
        )
        self.max_detection_side_px = max_detection_side_px
        self.min_detection_side_px = min_detection_side_px
        self.embed_batch_size = embed_batch_size
        # Admission: at most this many photos decoded and analysed at once, whatever the number of calling threads;
        # the models run that many at once too (an OpenCV model gets a net per concurrent analysis).
        self.concurrent_analyses = options.analysis_slots
        self._admission = threading.BoundedSemaphore(self.concurrent_analyses)
        self._lock = threading.Lock()
        self._models: _Models | None = None

    # -- FaceAnalyzer -------------------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.pack.model_id

    @property
    def embedding_dim(self) -> int:
        return self.pack.embedding_dim

    @property
    def landmarks_in_force(self) -> str:
        """The landmarks option as it runs: "detector" when no refinement model is in use (auto without one),
        "refined" for auto with one (it refines every face), else the option."""
        if self.landmark_model is None:
            return "detector"
        return "refined" if self.options.landmarks == "auto" else self.options.landmarks

    def analyze(self, data: bytes, source: str) -> AnalyzedImage:
        """Every face in an encoded image. Raises ImageDecodeError (naming source) for unreadable input. A photo of
        more than options.max_analysis_pixels is analysed reduced; its boxes and landmarks are in its own pixels."""
        with self._admission:  # the embedding too: concurrent_analyses photos in the models at once, no more
            pending = self._prepare_admitted(data, source)
            return self._finish(pending, self.embed_aligned(pending.crops))

    def analyze_array(self, bgr: BgrImage, source: str) -> AnalyzedImage:
        """Every face in an already decoded HxWx3 BGR uint8 image (e.g. a deliberately degraded copy)."""
        pending = self._prepare(as_bgr(bgr, source), source)
        vectors = self.embed_aligned(pending.crops)
        return self._finish(pending, vectors)

    def analyze_batch(self, items: Sequence[tuple[bytes, str]]) -> list[AnalyzedImage | Exception]:
        """Several images; all their faces are embedded together. A failing image yields its exception in place."""
        self._load()  # a model that cannot load fails the whole call, not each image
        prepared: list[_PendingImage | Exception] = []
        for data, source in items:
            try:
                prepared.append(self._prepare_encoded(data, source))
            except Exception as exc:  # an ingest run reports bad files and carries on; the error names the file
                log.debug("%s: %s", source, exc)
                prepared.append(exc)
        crops = [crop for p in prepared if isinstance(p, _PendingImage) for crop in p.crops]
        vectors = self.embed_aligned(crops)
        results: list[AnalyzedImage | Exception] = []
        offset = 0
        for p in prepared:
            if isinstance(p, Exception):
                results.append(p)
                continue
            count = len(p.crops)
            results.append(self._finish(p, vectors[offset : offset + count]))
            offset += count
        return results

    # -- finer-grained steps (evaluation and tests use them) ----------------------------------------------------------

    def detect(self, bgr: BgrImage) -> list[Detection]:
        """Faces scoring at least min_detection_score, largest first (turned copies searched per rotation_fallback);
        failing any, the subject-face fallback's one face (detect_report)."""
        return self.detect_report(bgr).detections

    def detect_report(self, bgr: BgrImage) -> DetectionReport:
        """detect, and the turns of the detection passes it ran (one, 0.0, when the upright pass sufficed).

        The subject-face fallback comes last, after the rotation fallback: when no face scores min_detection_score
        upright or (per rotation_fallback) on a turned copy, the best upright detection scoring at least
        fallback_score whose aligned crop shows eyes (quality.eyes_visible) is kept alone, and the report says so
        (fallback=True; its face is flagged low_detection_score). Turned views are not candidates: a turned copy can
        level an animal's face into a high score (detectors/rotation.py). Measured in bench/detection_thresholds.py."""
        report = self._load().detector.detect_report(bgr)
        if report.detections or self.fallback_score is None:
            return report
        for candidate in report.below_threshold:  # best score first
            if eyes_visible(self.align(bgr, candidate)):
                return dataclasses.replace(report, detections=[candidate], fallback=True)
        return report

    def align(self, bgr: BgrImage, detection: Detection) -> BgrImage:
        spec = self.pack.embedder
        return align_face(bgr, detection.landmarks, spec.input_width, spec.input_height)

    def alignment_points(self, bgr: BgrImage, detection: Detection, *, fallback: bool = False) -> Detection:
        """The detection with the landmarks that align it: the face mesh's where a refinement model is in use and the
        landmarks option refines this face (face_mesh.wants_refinement; fallback: the face was kept by the
        subject-face fallback), else the detector's own."""
        refiner = self._load().refiner
        if refiner is None or not face_mesh.wants_refinement(
            self.options.landmarks,
            detection,
            confident_score=self.pack.detector.confident_detection_score,
            fallback=fallback,
        ):
            return detection
        return refiner.refine(bgr, detection)

    def embed_aligned(self, crops: Sequence[BgrImage]) -> FloatArray:
        """L2-normalised embeddings of aligned crops, (n, embedding_dim)."""
        if not crops:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self._load().embedder.embed(np.stack(crops))

    def warmup(self) -> None:
        """Load both models now rather than on the first image."""
        self._load()

    # -- internals ----------------------------------------------------------------------------------------------------

    def _load(self) -> _Models:
        models = self._models
        if models is not None:
            return models
        with self._lock:
            if self._models is None:
                self._models = self._build()
            return self._models

    def _build(self) -> _Models:
        pack = self.pack
        detector_spec = pack.detector
        detector_label = f"{pack.id} detector ({detector_spec.model.location})"
        detector_session = open_session(
            # Detectors run at each image's padded size, on either runtime: sizes fixed in the graph become scales.
            graph_fixes.scale_fixed_resizes(detector_spec.model.read_verified(), detector_label),
            self.options.runtime,
            self.options.threads,
            preferred_runtime=detector_spec.preferred_runtime,
            label=detector_label,
            dynamic_spatial=True,
            concurrency=self.concurrent_analyses,
        )
        refiner = None
        if self.landmark_model is not None:
            refiner = FaceMeshRefiner(
                open_session(
                    self.landmark_model.read_verified(),
                    self.options.runtime,
                    self.options.threads,
                    preferred_runtime=face_mesh.PREFERRED_RUNTIME,
                    label=f"{pack.id} landmarks ({self.landmark_model.location})",
                    concurrency=self.concurrent_analyses,
                )
            )
        embedder_spec = pack.embedder
        embedder_session = open_session(
            embedder_spec.model.read_verified(),
            self.options.runtime,
            self.options.threads,
            preferred_runtime=embedder_spec.preferred_runtime,
            label=f"{pack.id} embedder ({embedder_spec.model.location})",
            concurrency=self.concurrent_analyses,
        )
        log.info(
            "pack %s loaded: detector on %s, embedder on %s, %d thread(s), flip TTA %s, min detection score %.2f, "
            "subject-face fallback %s, rotation fallback %s, restoration %s, landmarks %s",
            pack.id,
            detector_session.runtime,
            embedder_session.runtime,
            self.options.threads,
            "on" if self.options.flip_tta else "off",
            self.min_detection_score,
            "off" if self.fallback_score is None else f"down to {self.fallback_score:.2f}",
            self.options.rotation_fallback,
            self.options.restoration,
            self.landmarks_in_force,
        )
        if self.landmark_model is None and self.options.landmarks == "auto" and pack.landmarks is not None:
            log.info(
                "landmarks auto: the face mesh model is not installed, the detector's landmarks align every face "
                "(turned faces match better with it: %s; docs/accuracy.md)",
                pack.landmarks.install,
            )
        detector_class = ScrfdDetector if detector_spec.kind == "scrfd" else YuNetDetector
        detector = detector_class(
            detector_session,
            # Down to the fallback's floor: RotationRobustDetector keeps what scores below the threshold apart.
            score_threshold=self.min_detection_score if self.fallback_score is None else self.fallback_score,
            nms_iou=detector_spec.nms_iou,
            colour_order=detector_spec.colour_order,
            max_side_px=self.max_detection_side_px,
            min_side_px=self.min_detection_side_px,
        )
        # The sweep's score bounds were measured on YuNet's scores; other detectors use their pack's confident bound.
        rotation_bounds = (
            {"suspect_score": SUSPECT_SCORE, "turned_view_score": MIN_TURNED_VIEW_SCORE}
            if detector_spec.kind == "yunet"
            else {
                "suspect_score": detector_spec.confident_detection_score,
                "turned_view_score": detector_spec.confident_detection_score,
            }
        )
        return _Models(
            detector=RotationRobustDetector(
                detector, self.options.rotation_fallback, score_threshold=self.min_detection_score, **rotation_bounds
            ),
            embedder=ManifestEmbedder(
                embedder_session,
                input_width=embedder_spec.input_width,
                input_height=embedder_spec.input_height,
                colour_order=embedder_spec.colour_order,
                mean=embedder_spec.mean,
                std=embedder_spec.std,
                embedding_dim=embedder_spec.embedding_dim,
                flip_tta=self.options.flip_tta,
                max_batch=self.embed_batch_size,
                label=f"{pack.id} embedder",
            ),
            refiner=refiner,
        )

    def _prepare_encoded(self, data: bytes, source: str) -> _PendingImage:
        with self._admission:
            return self._prepare_admitted(data, source)

    def _prepare_admitted(self, data: bytes, source: str) -> _PendingImage:
        bgr, (width, height) = decode_reduced(
            data,
            source,
            max_pixels=self.options.max_image_pixels,
            max_decoded_pixels=self.options.max_analysis_pixels,
        )
        pending = self._prepare(bgr, source)
        if (width, height) == (pending.width, pending.height):
            return pending
        return _in_photo_pixels(pending, width, height)

    def _prepare(self, bgr: BgrImage, source: str) -> _PendingImage:
        # The detector and the embedder see the restored photo (vision/restoration.py); quality and the thumbnail the
        # photo as it came, so a restored face keeps the flags that say it is weak.
        restored, steps = restore(bgr, self.options.restoration)
        report = self.detect_report(restored)
        confident = self.pack.detector.confident_detection_score
        # The embedder's crops, and the detections kept, carry the points that aligned them (landmarks option).
        aligned_by = tuple(self.alignment_points(restored, d, fallback=report.fallback) for d in report.detections)
        crops = tuple(self.align(restored, d) for d in aligned_by)
        # Quality is assessed as its bounds were measured, whatever the landmarks option: on the detector's points
        # (pose) and the crop they align (appearance flags, sharpness).
        refined = any(a is not d for a, d in zip(aligned_by, report.detections, strict=True))
        as_taken = tuple(self.align(bgr, d) for d in report.detections) if steps or refined else crops
        qualities = tuple(
            assess_quality(d, crop, confident, below_threshold=report.fallback)
            for d, crop in zip(report.detections, as_taken, strict=True)
        )
        thumbnails = tuple(encode_jpeg(crop_thumbnail(bgr, d.box), THUMBNAIL_JPEG_QUALITY) for d in aligned_by)
        return _PendingImage(
            source=source,
            width=int(bgr.shape[1]),
            height=int(bgr.shape[0]),
            detections=aligned_by,
            qualities=qualities,
            crops=crops,
            thumbnails=thumbnails,
        )

    def _finish(self, pending: _PendingImage, vectors: FloatArray) -> AnalyzedImage:
        faces = tuple(
            AnalyzedFace(
                detection=detection,
                quality=quality,
                embedding=Embedding(model_id=self.model_id, vector=np.ascontiguousarray(vector, dtype=np.float32)),
                thumbnail_jpeg=thumbnail,
            )
            for detection, quality, vector, thumbnail in zip(
                pending.detections, pending.qualities, vectors, pending.thumbnails, strict=True
            )
        )
        return AnalyzedImage(source=pending.source, width=pending.width, height=pending.height, faces=faces)


def _landmark_model(pack: ModelPack, options: AnalyzerOptions) -> ModelFile | None:
    """The refinement model the landmarks option uses: None for "detector", and for "auto" when the pack has none or
    it is not installed in options.data_dir; "refined" or "turned" without one is a ConfigError saying how to install
    it."""
    mode = options.landmarks
    if mode == "detector":
        return None
    spec = pack.landmarks
    model = None if spec is None else spec.installed(options.data_dir)
    if model is None and mode != "auto":
        if spec is None:
            raise ConfigError(f"landmarks={mode}: pack {pack.id} has no landmark refinement model")
        where = "no data directory" if options.data_dir is None else f"{options.data_dir}"
        raise ConfigError(
            f"landmarks={mode}: the face mesh model {spec.installed_file} is not installed ({where}); install it "
            f"with `{spec.install}`, or set landmarks to auto or detector"
        )
    return model


def open_analyzer(options: AnalyzerOptions | None = None) -> OnnxFaceAnalyzer:
    """An analyzer for options.pack (None: the built-in default; an id; or a pack folder). Models load on first use.

    Without options: the engine's defaults (AnalyzerOptions()); Settings.analyzer_options() gives the configured ones.
    """
    options = AnalyzerOptions() if options is None else options
    return OnnxFaceAnalyzer(load_pack(options.pack, options.data_dir), options)
