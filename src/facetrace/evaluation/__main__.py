"""python -m facetrace.evaluation verify|identify|calibrate|robustness|calibrate-quality: the accuracy harness.

The CLI's `facetrace eval ...` commands call the same functions; this entry exists so the harness runs on its own.
Reports go to stdout (JSON with --json), progress and diagnostics to stderr through logging.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facetrace.config import Settings
from facetrace.core.errors import ConfigError, FacetraceError
from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import ScoreCalibration
from facetrace.evaluation.calibration import fit_impostor_calibration, read_calibration_json, write_calibration_json
from facetrace.evaluation.datasets import read_manifest, read_pairs, require_files
from facetrace.evaluation.embeddings import ProgressCallback, embed_images
from facetrace.evaluation.identify import evaluate_identification
from facetrace.evaluation.robustness import DEFAULT_FOLDS, DEFAULT_PAIRS_PER_FOLD
from facetrace.evaluation.verify import evaluate_verification

if TYPE_CHECKING:
    from facetrace.vision.analyzer import OnnxFaceAnalyzer

logger = logging.getLogger("facetrace.evaluation")


def _progress_logger(label: str) -> ProgressCallback:
    """Log every ~5% so a 10-minute run shows it is alive without flooding the log."""
    last_logged = [-1]

    def report(done: int, total: int) -> None:
        step = max(1, total // 20)
        if done // step != last_logged[0] or done == total:
            last_logged[0] = done // step
            logger.info("%s: %d/%d images", label, done, total)

    return report


def _open_analyzer(args: argparse.Namespace) -> OnnxFaceAnalyzer:
    # Imported here: the vision layer loads ONNX models, which the argument parsing and --help never need.
    from facetrace.vision.analyzer import open_analyzer

    return open_analyzer(
        args.pack,
        data_dir=args.data_dir,
        threads=args.threads,
        flip_tta=args.flip_tta,
        min_detection_score=args.min_detection_score,
        rotation_fallback=args.rotation_fallback,
        restoration=args.restoration,
    )


def _cache_key(analyzer: FaceAnalyzer, args: argparse.Namespace) -> str:
    # These settings change which faces are found or their embeddings, but not the model id: keep their caches apart.
    # Caches made before the rotation fallback existed had it off, and keep their names.
    key = f"{analyzer.model_id}+min_det={args.min_detection_score:g}"
    key += "" if args.rotation_fallback == "off" else f"+rotation={args.rotation_fallback}"
    key += "" if args.restoration == "off" else f"+restoration={args.restoration}"
    return key + ("+flip_tta" if args.flip_tta else "")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="dataset folder the CSV paths are relative to")
    parser.add_argument("--pack", default=None, help="model pack id (default: the default pack)")
    parser.add_argument("--data-dir", type=Path, default=None, help="facetrace data directory (extra model packs)")
    parser.add_argument("--threads", type=int, default=2, help="inference threads")
    parser.add_argument("--flip-tta", action="store_true", help="average each face's embedding with its mirror image")
    parser.add_argument(
        "--min-detection-score",
        type=float,
        default=None,
        help="ignore faces the detector is less sure of (default: the engine's setting, FACETRACE_MIN_DETECTION_SCORE)",
    )
    parser.add_argument(
        "--rotation-fallback",
        choices=("off", "auto", "always"),
        default=None,
        help="detect on turned copies of unsure photos (default: the engine's setting, FACETRACE_ROTATION_FALLBACK)",
    )
    parser.add_argument(
        "--restoration",
        choices=("off", "auto"),
        default=None,
        help="denoise grainy and stretch flat photos before detection (default: the engine's setting, "
        "FACETRACE_RESTORATION)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep embeddings here (one .npz per model) so verify, identify and calibrate embed each photo once",
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facetrace.evaluation", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="1:1 verification accuracy on a pairs CSV (path_a,path_b,same,fold)")
    verify.add_argument("--pairs", type=Path, required=True)
    verify.add_argument("--limit", type=int, default=None, help="only the first N pairs (a quick smoke run)")
    verify.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="an impostor calibration.json of the same model: also report TAR at the FARs it resolves",
    )
    _add_common(verify)

    identify = commands.add_parser("identify", help="1:N identification on a manifest CSV (path,identity)")
    identify.add_argument("--manifest", type=Path, required=True)
    identify.add_argument("--hold-out-every", type=int, default=10, help="hold out every Nth multi-photo person")
    _add_common(identify)

    calibrate = commands.add_parser("calibrate", help="fit similarity -> false-match rate on all impostor pairs")
    calibrate.add_argument("--manifest", type=Path, required=True)
    calibrate.add_argument("--out", type=Path, required=True, help="calibration.json to write")
    calibrate.add_argument("--measured-on", default="", help="dataset description stored in the table")
    _add_common(calibrate)

    robustness = commands.add_parser(
        "robustness", help="verification and identification on LFW pairs under controlled degradations"
    )
    _add_degradation_args(robustness, calibration_help="impostor calibration.json (default: the pack's own)")
    robustness.add_argument("--plot", type=Path, default=None, help="write the PNG plot here (needs matplotlib)")
    _add_common(robustness)

    quality = commands.add_parser(
        "calibrate-quality",
        help="impostor tables for pairs with one or both faces flagged, from the robustness degradations of LFW",
    )
    quality.add_argument("--out", type=Path, required=True, help="calibration.json to write (clean table + tables)")
    _add_degradation_args(quality, calibration_help="the clean calibration.json to extend (default: the pack's own)")
    _add_common(quality)
    return parser


def _add_degradation_args(parser: argparse.ArgumentParser, *, calibration_help: str) -> None:
    """The arguments of the commands that degrade LFW copies (robustness, calibrate-quality): same pairs, same cache."""
    parser.add_argument("--pairs", type=Path, required=True, help="pairs CSV (path_a,path_b,same,fold)")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="use the first N folds of the pairs file")
    parser.add_argument(
        "--pairs-per-fold", type=int, default=DEFAULT_PAIRS_PER_FOLD, help="pairs of each fold (half same-person)"
    )
    parser.add_argument(
        "--conditions",
        default=None,
        help="comma-separated degradations, each optionally name=strength (default: all, at every strength)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random degradations (noise, motion)")
    parser.add_argument("--calibration", type=Path, default=None, help=calibration_help)


def _run(args: argparse.Namespace) -> str:
    if args.command == "verify":
        pairs = read_pairs(args.pairs)
        if args.limit is not None:
            pairs = pairs[: args.limit]
        analyzer = _open_analyzer(args)
        verification = evaluate_verification(
            analyzer,
            pairs,
            args.root,
            progress=_progress_logger("verify"),
            cache_dir=args.cache_dir,
            cache_key=_cache_key(analyzer, args),
            calibration=read_calibration_json(args.calibration) if args.calibration else None,
        )
        return verification.to_json() if args.json else verification.summary()
    if args.command == "robustness":
        return _run_robustness(args)
    if args.command == "calibrate-quality":
        return _run_quality_calibration(args)
    if args.command == "identify":
        manifest = read_manifest(args.manifest)
        analyzer = _open_analyzer(args)
        identification = evaluate_identification(
            analyzer,
            manifest,
            args.root,
            hold_out_every=args.hold_out_every,
            progress=_progress_logger("identify"),
            cache_dir=args.cache_dir,
            cache_key=_cache_key(analyzer, args),
        )
        return identification.to_json() if args.json else identification.summary()
    # calibrate
    manifest = read_manifest(args.manifest)
    require_files([image.path for image in manifest], args.root)
    analyzer = _open_analyzer(args)
    embedded = embed_images(
        analyzer,
        args.root,
        [image.path for image in manifest],
        cache_dir=args.cache_dir,
        cache_key=_cache_key(analyzer, args),
        progress=_progress_logger("calibrate"),
    )
    identity_of = {image.path: image.identity for image in manifest}
    found = embedded.has_face
    identities = [identity_of[path] for path, has_face in zip(embedded.paths, found, strict=True) if has_face]
    measured_on = args.measured_on or (
        f"{args.manifest.resolve().parent.name}/{args.manifest.name}: all cross-identity pairs of "
        f"{len(identities)} photos with a detected face "
        f"({len(set(identities))} identities; {len(manifest) - len(identities)} photos without a face left out)"
    )
    calibration = fit_impostor_calibration(
        embedded.vectors[found], identities, analyzer.model_id, measured_on=measured_on
    )
    if args.out.is_file():
        # A refit of the clean table keeps the quality-conditioned tables (calibrate-quality) measured for this model.
        previous = read_calibration_json(args.out)
        if previous.model_id == calibration.model_id and previous.conditioned:
            calibration = dataclasses.replace(calibration, conditioned=previous.conditioned)
            kept = ", ".join(condition for condition, _ in previous.conditioned)
            logger.info("kept the conditioned tables of %s: %s", args.out, kept)
    write_calibration_json(calibration, args.out)
    return (
        f"wrote {args.out}: {len(calibration.similarities)} points, {calibration.impostor_pairs} impostor pairs, "
        f"smallest FMR {calibration.false_match_rates[-1]:.2e} at similarity {calibration.similarities[-1]:.3f}"
    )


def _degradation_setup(args: argparse.Namespace) -> tuple[Any, OnnxFaceAnalyzer, ScoreCalibration]:
    """(conditions or None, analyzer, clean calibration) for the commands that degrade LFW copies."""
    # The benchmark pulls in OpenCV (through vision): only these commands need it.
    from facetrace.evaluation.robustness import parse_conditions

    try:
        conditions = parse_conditions(args.conditions) if args.conditions else None
    except ValueError as exc:
        raise ConfigError(f"--conditions: {exc}") from None
    # The same analyzer as the other commands (rotation fallback and restoration as asked): an earlier version
    # opened its own and silently measured the engine's defaults whatever --rotation-fallback said.
    analyzer = _open_analyzer(args)
    calibration = read_calibration_json(args.calibration) if args.calibration else analyzer.pack.calibration
    if calibration is None:
        raise FacetraceError(f"pack {analyzer.model_id} has no calibration.json: pass --calibration")
    return conditions, analyzer, calibration


def _run_quality_calibration(args: argparse.Namespace) -> str:
    from facetrace.evaluation.quality_calibration import measure_quality_calibration

    pairs = read_pairs(args.pairs)
    conditions, analyzer, calibration = _degradation_setup(args)
    # Tables already in the file are measured again, not merged: start from the clean table alone.
    calibration = dataclasses.replace(calibration, conditioned=())
    report = measure_quality_calibration(
        analyzer,
        pairs,
        args.root,
        calibration,
        folds=args.folds,
        pairs_per_fold=args.pairs_per_fold,
        conditions=conditions,
        seed=args.seed,
        cache_dir=args.cache_dir,
        cache_key=_cache_key(analyzer, args),
        progress=lambda message: logger.info("calibrate-quality: %s", message),
    )
    write_calibration_json(report.calibration, args.out)
    logger.info("wrote %s", args.out)
    return report.to_json() if args.json else report.summary()


def _run_robustness(args: argparse.Namespace) -> str:
    # The plot needs matplotlib: only this command does.
    from facetrace.evaluation.robustness import evaluate_robustness, plot_report

    pairs = read_pairs(args.pairs)
    conditions, analyzer, calibration = _degradation_setup(args)
    report = evaluate_robustness(
        analyzer,
        pairs,
        args.root,
        calibration,
        folds=args.folds,
        pairs_per_fold=args.pairs_per_fold,
        conditions=conditions,
        seed=args.seed,
        cache_dir=args.cache_dir,
        cache_key=_cache_key(analyzer, args),
        progress=lambda message: logger.info("robustness: %s", message),
        pairs_csv=args.pairs.name,
    )
    if args.plot is not None:
        plot_report(report, args.plot)
        logger.info("wrote %s", args.plot)
    return report.to_json() if args.json else report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_detection_score is None:
        # Measure what the engine ingests and searches with, not a different operating point.
        args.min_detection_score = Settings().min_detection_score
    if args.rotation_fallback is None:
        args.rotation_fallback = Settings().rotation_fallback
    if args.restoration is None:
        args.restoration = Settings().restoration
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        output = _run(args)
    except FacetraceError as exc:
        logger.error("%s", exc)
        return 1
    sys.stdout.write(output + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
