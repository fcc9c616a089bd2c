"""The accuracy harness's runs (`facetrace eval ...`, cli/eval.py) and the pipeline they measure.

The pipeline is the engine's: Settings as `facetrace ingest` and `facetrace search` read them (FACETRACE_* variables,
then the defaults) with only the flags the user gave on top, turned into the analyzer's options by the same
Settings.analyzer_options() the engine uses. An earlier harness repeated the options with defaults of its own and
measured another pipeline than users run. Progress and diagnostics go to the "facetrace.evaluation" logger.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from facetrace.config import Settings
from facetrace.core.errors import ConfigError, FacetraceError
from facetrace.core.types import ScoreCalibration
from facetrace.evaluation.calibration import fit_impostor_calibration, read_calibration_json, write_calibration_json
from facetrace.evaluation.datasets import read_manifest, read_pairs, require_files
from facetrace.evaluation.embeddings import ProgressCallback, embed_images
from facetrace.evaluation.identify import IdentificationReport, evaluate_identification
from facetrace.evaluation.robustness.protocol import (
    DEFAULT_FOLDS,
    DEFAULT_PAIRS_PER_FOLD,
    ConditionSpec,
    parse_conditions,
)
from facetrace.evaluation.verify import VerificationReport, evaluate_verification
from facetrace.vision.options import AnalyzerOptions

if TYPE_CHECKING:
    from facetrace.evaluation.quality_calibration import QualityCalibrationReport
    from facetrace.evaluation.robustness.report import RobustnessReport
    from facetrace.vision.analyzer import OnnxFaceAnalyzer

logger = logging.getLogger("facetrace.evaluation")


def pipeline_settings(data: Path | str | None = None, **overrides: Any) -> Settings:
    """The engine's Settings (environment, then defaults) with the overrides that are not None, as open_engine reads
    them; invalid values raise ConfigError naming the setting."""
    given = {name: value for name, value in overrides.items() if value is not None}
    if data is not None:
        given["data"] = Path(data).expanduser().resolve()
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc


@dataclass(frozen=True)
class Pipeline:
    """The analyzer a run measures, and where the runs keep its embeddings (None: nowhere)."""

    options: AnalyzerOptions
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, cache_dir: Path | None = None) -> Pipeline:
        return cls(settings.analyzer_options(), cache_dir)

    def open_analyzer(self) -> OnnxFaceAnalyzer:
        # Imported here: the vision layer loads ONNX runtimes, which reading the CSVs never needs.
        from facetrace.vision.analyzer import open_analyzer

        return open_analyzer(self.options)

    def cache_key(self, analyzer: OnnxFaceAnalyzer) -> str:
        """The embedding caches' key: the options that change which faces are found or their embeddings, but not the
        model id, keep their caches apart. The detection threshold, the subject-face fallback's floor and the
        landmarks in force are the ones the analyzer resolved (a pack's own, or the override; auto without the face
        mesh model installed aligns on the detector's points, as before the option existed). Options at their old
        defaults add nothing, so older caches keep their names (those made before the rotation fallback existed had it
        off; before the subject-face fallback, none had it)."""
        options = self.options
        key = f"{analyzer.model_id}+min_det={analyzer.min_detection_score:g}"
        key += "" if analyzer.fallback_score is None else f"+fallback={analyzer.fallback_score:g}"
        key += "" if options.rotation_fallback == "off" else f"+rotation={options.rotation_fallback}"
        key += "" if options.restoration == "off" else f"+restoration={options.restoration}"
        key += "" if analyzer.landmarks_in_force == "detector" else f"+landmarks={analyzer.landmarks_in_force}"
        key += "" if options.runtime == "auto" else f"+runtime={options.runtime}"
        defaults = AnalyzerOptions()
        key += (
            "" if options.max_image_pixels == defaults.max_image_pixels else f"+max_pixels={options.max_image_pixels}"
        )
        analysed = options.max_analysis_pixels
        key += "" if analysed == defaults.max_analysis_pixels else f"+analysis_pixels={analysed}"
        return key + ("+flip_tta" if options.flip_tta else "")


def progress_logger(label: str) -> ProgressCallback:
    """Log every ~5% so a 10-minute run shows it is alive without flooding the log."""
    last_logged = [-1]

    def report(done: int, total: int) -> None:
        step = max(1, total // 20)
        if done // step != last_logged[0] or done == total:
            last_logged[0] = done // step
            logger.info("%s: %d/%d images", label, done, total)

    return report


def run_verify(
    pipeline: Pipeline, pairs_csv: Path, root: Path, *, limit: int | None = None, calibration: Path | None = None
) -> VerificationReport:
    """1:1 verification on a pairs CSV (path_a,path_b,same,fold); with an impostor calibration.json of the same model,
    also TAR at the FARs it resolves."""
    pairs = read_pairs(pairs_csv)
    if limit is not None:
        pairs = pairs[:limit]
    analyzer = pipeline.open_analyzer()
    return evaluate_verification(
        analyzer,
        pairs,
        root,
        progress=progress_logger("verify"),
        cache_dir=pipeline.cache_dir,
        cache_key=pipeline.cache_key(analyzer),
        calibration=read_calibration_json(calibration) if calibration else None,
    )


def run_identify(pipeline: Pipeline, manifest_csv: Path, root: Path, *, hold_out_every: int) -> IdentificationReport:
    """1:N identification on a manifest CSV (path,identity)."""
    manifest = read_manifest(manifest_csv)
    analyzer = pipeline.open_analyzer()
    return evaluate_identification(
        analyzer,
        manifest,
        root,
        hold_out_every=hold_out_every,
        progress=progress_logger("identify"),
        cache_dir=pipeline.cache_dir,
        cache_key=pipeline.cache_key(analyzer),
    )


def run_calibrate(pipeline: Pipeline, manifest_csv: Path, root: Path, *, out: Path, measured_on: str = "") -> str:
    """Fit similarity -> false-match rate on every impostor pair of the manifest and write it to out; returns the
    one-line summary."""
    manifest = read_manifest(manifest_csv)
    require_files([image.path for image in manifest], root)
    analyzer = pipeline.open_analyzer()
    embedded = embed_images(
        analyzer,
        root,
        [image.path for image in manifest],
        cache_dir=pipeline.cache_dir,
        cache_key=pipeline.cache_key(analyzer),
        progress=progress_logger("calibrate"),
    )
    identity_of = {image.path: image.identity for image in manifest}
    found = embedded.has_face
    identities = [identity_of[path] for path, has_face in zip(embedded.paths, found, strict=True) if has_face]
    measured_on = measured_on or (
        f"{manifest_csv.resolve().parent.name}/{manifest_csv.name}: all cross-identity pairs of "
        f"{len(identities)} photos with a detected face "
        f"({len(set(identities))} identities; {len(manifest) - len(identities)} photos without a face left out)"
    )
    calibration = fit_impostor_calibration(
        embedded.vectors[found], identities, analyzer.model_id, measured_on=measured_on
    )
    if out.is_file():
        # A refit of the clean table keeps the quality-conditioned tables (calibrate-quality) measured for this model.
        previous = read_calibration_json(out)
        if previous.model_id == calibration.model_id and previous.conditioned:
            calibration = dataclasses.replace(calibration, conditioned=previous.conditioned)
            kept = ", ".join(condition for condition, _ in previous.conditioned)
            logger.info("kept the conditioned tables of %s: %s", out, kept)
    write_calibration_json(calibration, out)
    return (
        f"wrote {out}: {len(calibration.similarities)} points, {calibration.impostor_pairs} impostor pairs, "
        f"smallest FMR {calibration.false_match_rates[-1]:.2e} at similarity {calibration.similarities[-1]:.3f}"
    )


@dataclass(frozen=True)
class Degradations:
    """What the commands that degrade LFW copies (robustness, calibrate-quality) share: same pairs, same cache."""

    pairs_csv: Path
    root: Path
    folds: int = DEFAULT_FOLDS
    pairs_per_fold: int = DEFAULT_PAIRS_PER_FOLD
    conditions: str | None = None  # comma-separated degradations, each optionally name=strength; None: all
    seed: int = 0
    calibration: Path | None = None  # an impostor calibration.json; None: the pack's own

    def conditions_chosen(self) -> tuple[ConditionSpec, ...] | None:
        try:
            return parse_conditions(self.conditions) if self.conditions else None
        except ValueError as exc:
            raise ConfigError(f"--conditions: {exc}") from None

    def clean_calibration(self, analyzer: OnnxFaceAnalyzer) -> ScoreCalibration:
        calibration = read_calibration_json(self.calibration) if self.calibration else analyzer.pack.calibration
        if calibration is None:
            raise FacetraceError(f"pack {analyzer.model_id} has no calibration.json: pass --calibration")
        return calibration


def run_robustness(pipeline: Pipeline, run: Degradations, *, plot: Path | None = None) -> RobustnessReport:
    """Verification and identification on LFW pairs under controlled degradations (docs/robustness.md)."""
    from facetrace.evaluation.robustness.benchmark import evaluate_robustness

    pairs = read_pairs(run.pairs_csv)
    conditions = run.conditions_chosen()
    analyzer = pipeline.open_analyzer()
    report = evaluate_robustness(
        analyzer,
        pairs,
        run.root,
        run.clean_calibration(analyzer),
        folds=run.folds,
        pairs_per_fold=run.pairs_per_fold,
        conditions=conditions,
        seed=run.seed,
        cache_dir=pipeline.cache_dir,
        cache_key=pipeline.cache_key(analyzer),
        progress=lambda message: logger.info("robustness: %s", message),
        pairs_csv=run.pairs_csv.name,
    )
    if plot is not None:
        # The plot needs matplotlib: only this command does.
        from facetrace.evaluation.robustness.plot import plot_report

        plot_report(report, plot)
        logger.info("wrote %s", plot)
    return report


def run_quality_calibration(pipeline: Pipeline, run: Degradations, *, out: Path) -> QualityCalibrationReport:
    """Impostor tables for pairs with one or both faces flagged, from the robustness degradations; written to out."""
    from facetrace.evaluation.quality_calibration import measure_quality_calibration

    pairs = read_pairs(run.pairs_csv)
    conditions = run.conditions_chosen()
    analyzer = pipeline.open_analyzer()
    # Tables already in the file are measured again, not merged: start from the clean table alone.
    calibration = dataclasses.replace(run.clean_calibration(analyzer), conditioned=())
    report = measure_quality_calibration(
        analyzer,
        pairs,
        run.root,
        calibration,
        folds=run.folds,
        pairs_per_fold=run.pairs_per_fold,
        conditions=conditions,
        seed=run.seed,
        cache_dir=pipeline.cache_dir,
        cache_key=pipeline.cache_key(analyzer),
        progress=lambda message: logger.info("calibrate-quality: %s", message),
    )
    write_calibration_json(report.calibration, out)
    logger.info("wrote %s", out)
    return report
