"""`facetrace eval ...`: accuracy on public benchmarks, through the pipeline users run (evaluation/harness.py).

Every command measures the analyzer that `facetrace ingest` and `facetrace search` build from the same settings (the
FACETRACE_* variables, then the defaults); its pipeline flags override single settings. Reports go to stdout (JSON
with --json), progress and diagnostics to stderr through logging; an error exits 1 (with --json, after printing the
error object {"error": {"code", "message"}} on stdout).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer

from facetrace.cli.common import json_requested, print_json
from facetrace.cli.options import DataOpt, JsonOpt, PackOpt
from facetrace.core.errors import FacetraceError, error_code
from facetrace.evaluation import harness
from facetrace.evaluation.robustness.protocol import DEFAULT_FOLDS, DEFAULT_PAIRS_PER_FOLD
from facetrace.vision.options import AnalyzerOptions, Landmarks, Restoration, RotationFallback

eval_app = typer.Typer(
    help="Accuracy on public benchmarks, through the same code path users run: the pipeline flags a command is not "
    "given take the engine's settings (FACETRACE_* variables, docs/configuration.md).",
    no_args_is_help=True,
)

# -- the options of every command: the dataset, the pipeline measured, the embedding cache -------------------------

RootOpt = Annotated[
    Path, typer.Option("--root", help="Dataset folder the CSV paths are relative to.", show_default=False)
]
PairsOpt = Annotated[Path, typer.Option("--pairs", help="Pairs CSV (path_a,path_b,same,fold).", show_default=False)]
# The pipeline's flags: each defaults to its setting (FACETRACE_<NAME>, else docs/configuration.md's default).
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="Inference threads.", show_default="setting")]
RuntimeOpt = Annotated[
    Literal["auto", "opencv", "onnxruntime"] | None,
    typer.Option("--runtime", help="Inference runtime.", show_default="setting"),
]
MaxImagePixelsOpt = Annotated[
    int | None,
    typer.Option("--max-image-pixels", help="Refuse images declaring more pixels.", show_default="setting"),
]
MaxAnalysisPixelsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-analysis-pixels", help="Analyse larger photos reduced to this many pixels.", show_default="setting"
    ),
]
FlipTtaOpt = Annotated[
    bool | None,
    typer.Option(
        "--flip-tta/--no-flip-tta",
        help="Average each face's embedding with its mirror image's.",
        show_default="setting",
    ),
]
MinDetectionScoreOpt = Annotated[
    float | None,
    typer.Option(
        "--min-detection-score",
        help="Ignore faces the detector is less sure of (unset: the pack's own threshold).",
        show_default="setting",
    ),
]
SubjectFallbackOpt = Annotated[
    bool | None,
    typer.Option(
        "--subject-fallback/--no-subject-fallback",
        help="Keep the best doubtful face of a photo without a face at the threshold (flagged).",
        show_default="setting",
    ),
]
RotationFallbackOpt = Annotated[
    RotationFallback | None,
    typer.Option("--rotation-fallback", help="Detect on turned copies of unsure photos.", show_default="setting"),
]
RestorationOpt = Annotated[
    Restoration | None,
    typer.Option(
        "--restoration",
        help="Denoise grainy and stretch flat photos before detection.",
        show_default="setting",
    ),
]
LandmarksOpt = Annotated[
    Landmarks | None,
    typer.Option(
        "--landmarks",
        help="Align on the detector's points, the face mesh's for every face (refined) or for turned and doubted "
        "faces (turned), or auto: refined when the mesh model is installed, else the detector's.",
        show_default="setting",
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Keep embeddings here (one .npz per model) so verify, identify and calibrate embed each photo once.",
    ),
]

# -- the options of the commands that degrade LFW copies (robustness, calibrate-quality): same pairs, same cache ----

FoldsOpt = Annotated[int, typer.Option("--folds", help="Use the first N folds of the pairs file.")]
PairsPerFoldOpt = Annotated[int, typer.Option("--pairs-per-fold", help="Pairs of each fold (half same-person).")]
ConditionsOpt = Annotated[
    str | None,
    typer.Option(
        "--conditions",
        help="Comma-separated degradations, each optionally name=strength (default: all, at every strength).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random degradations (noise, motion).")]


# Every analyzer option that can change a result is a flag of every command, named as its setting (data_dir is
# --data; concurrent_analyses only admits photos, one at a time in a harness anyway).
_PIPELINE_FLAGS = tuple(
    field.name for field in dataclasses.fields(AnalyzerOptions) if field.name not in ("data_dir", "concurrent_analyses")
)


def _pipeline(ctx: typer.Context) -> harness.Pipeline:
    """The engine's pipeline for the command's flags: a flag not given leaves its setting as the engine reads it.

    The flags are read from the command's parameters by their settings' names, so every command declares each of them
    (a command that lacks one fails here, in every test that runs it)."""
    params = ctx.params
    settings = harness.pipeline_settings(params["data"], **{name: params[name] for name in _PIPELINE_FLAGS})
    return harness.Pipeline.from_settings(settings, params["cache_dir"])


def _report(run: Callable[[], str]) -> None:
    """Run one command with progress logged to stderr; print its report, or log its error and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        output = run()
    except FacetraceError as exc:
        harness.logger.error("%s", exc)
        if json_requested():
            print_json({"error": {"code": error_code(exc), "message": str(exc)}})
        raise typer.Exit(1) from exc
    typer.echo(output)


@eval_app.command("verify")
def eval_verify(
    ctx: typer.Context,
    pairs: PairsOpt,
    root: RootOpt,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N pairs (a quick smoke run).")] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="An impostor calibration.json of the same model: also report TAR at the FARs it resolves.",
        ),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = None,
    max_image_pixels: MaxImagePixelsOpt = None,
    max_analysis_pixels: MaxAnalysisPixelsOpt = None,
    flip_tta: FlipTtaOpt = None,
    min_detection_score: MinDetectionScoreOpt = None,
    subject_fallback: SubjectFallbackOpt = None,
    rotation_fallback: RotationFallbackOpt = None,
    restoration: RestorationOpt = None,
    landmarks: LandmarksOpt = None,
    cache_dir: CacheDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """1:1 accuracy on a pairs CSV (path_a,path_b,same,fold): 10-fold accuracy, TAR@FAR, ROC."""

    def run() -> str:
        pipeline = _pipeline(ctx)
        report = harness.run_verify(pipeline, pairs, root, limit=limit, calibration=calibration)
        return report.to_json() if as_json else report.summary()

    _report(run)


@eval_app.command("identify")
def eval_identify(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="Manifest CSV (path,identity).", show_default=False)],
    root: RootOpt,
    hold_out_every: Annotated[
        int, typer.Option("--hold-out-every", help="Hold out every Nth multi-photo person.")
    ] = 10,
    data: DataOpt = None,
    pack: PackOpt = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = None,
    max_image_pixels: MaxImagePixelsOpt = None,
    max_analysis_pixels: MaxAnalysisPixelsOpt = None,
    flip_tta: FlipTtaOpt = None,
    min_detection_score: MinDetectionScoreOpt = None,
    subject_fallback: SubjectFallbackOpt = None,
    rotation_fallback: RotationFallbackOpt = None,
    restoration: RestorationOpt = None,
    landmarks: LandmarksOpt = None,
    cache_dir: CacheDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """1:N on a manifest CSV (path,identity): rank-1, rank-10, FNIR at FPIR 1%."""

    def run() -> str:
        pipeline = _pipeline(ctx)
        report = harness.run_identify(pipeline, manifest, root, hold_out_every=hold_out_every)
        return report.to_json() if as_json else report.summary()

    _report(run)


@eval_app.command("calibrate")
def eval_calibrate(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="Manifest CSV (path,identity).", show_default=False)],
    root: RootOpt,
    out: Annotated[Path, typer.Option("--out", help="calibration.json to write.", show_default=False)],
    measured_on: Annotated[str, typer.Option("--measured-on", help="Dataset description stored in the table.")] = "",
    data: DataOpt = None,
    pack: PackOpt = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = None,
    max_image_pixels: MaxImagePixelsOpt = None,
    max_analysis_pixels: MaxAnalysisPixelsOpt = None,
    flip_tta: FlipTtaOpt = None,
    min_detection_score: MinDetectionScoreOpt = None,
    subject_fallback: SubjectFallbackOpt = None,
    rotation_fallback: RotationFallbackOpt = None,
    restoration: RestorationOpt = None,
    landmarks: LandmarksOpt = None,
    cache_dir: CacheDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a pack's impostor score distribution on a labelled manifest (writes calibration.json)."""

    def run() -> str:
        pipeline = _pipeline(ctx)
        summary = harness.run_calibrate(pipeline, manifest, root, out=out, measured_on=measured_on)
        return json.dumps({"summary": summary, "out": str(out)}, indent=2) if as_json else summary

    _report(run)


@eval_app.command("robustness")
def eval_robustness(
    ctx: typer.Context,
    pairs: PairsOpt,
    root: RootOpt,
    folds: FoldsOpt = DEFAULT_FOLDS,
    pairs_per_fold: PairsPerFoldOpt = DEFAULT_PAIRS_PER_FOLD,
    conditions: ConditionsOpt = None,
    seed: SeedOpt = 0,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="Impostor calibration.json (default: the pack's own)."),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the PNG plot here (needs matplotlib).")] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = None,
    max_image_pixels: MaxImagePixelsOpt = None,
    max_analysis_pixels: MaxAnalysisPixelsOpt = None,
    flip_tta: FlipTtaOpt = None,
    min_detection_score: MinDetectionScoreOpt = None,
    subject_fallback: SubjectFallbackOpt = None,
    rotation_fallback: RotationFallbackOpt = None,
    restoration: RestorationOpt = None,
    landmarks: LandmarksOpt = None,
    cache_dir: CacheDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy on LFW pairs under blur, downscaling, JPEG, noise, occlusion, rotation... (docs/robustness.md)."""

    def run() -> str:
        pipeline = _pipeline(ctx)
        degradations = harness.Degradations(pairs, root, folds, pairs_per_fold, conditions, seed, calibration)
        report = harness.run_robustness(pipeline, degradations, plot=plot)
        return report.to_json() if as_json else report.summary()

    _report(run)


@eval_app.command("calibrate-quality")
def eval_calibrate_quality(
    ctx: typer.Context,
    pairs: PairsOpt,
    root: RootOpt,
    out: Annotated[
        Path, typer.Option("--out", help="calibration.json to write (clean table + tables).", show_default=False)
    ],
    folds: FoldsOpt = DEFAULT_FOLDS,
    pairs_per_fold: PairsPerFoldOpt = DEFAULT_PAIRS_PER_FOLD,
    conditions: ConditionsOpt = None,
    seed: SeedOpt = 0,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="The clean calibration.json to extend (default: the pack's own)."),
    ] = None,
    data: DataOpt = None,
    pack: PackOpt = None,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = None,
    max_image_pixels: MaxImagePixelsOpt = None,
    max_analysis_pixels: MaxAnalysisPixelsOpt = None,
    flip_tta: FlipTtaOpt = None,
    min_detection_score: MinDetectionScoreOpt = None,
    subject_fallback: SubjectFallbackOpt = None,
    rotation_fallback: RotationFallbackOpt = None,
    restoration: RestorationOpt = None,
    landmarks: LandmarksOpt = None,
    cache_dir: CacheDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Impostor tables for pairs with one or both faces flagged, on degraded LFW (writes calibration.json)."""

    def run() -> str:
        pipeline = _pipeline(ctx)
        degradations = harness.Degradations(pairs, root, folds, pairs_per_fold, conditions, seed, calibration)
        report = harness.run_quality_calibration(pipeline, degradations, out=out)
        return report.to_json() if as_json else report.summary()

    _report(run)
