"""verify / identify / the embedding cache, driven by a scripted analyzer (no model, no real photos)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrace.core.errors import FacetraceError, ImageDecodeError
from facetrace.core.types import (
    AnalyzedFace,
    AnalyzedImage,
    BoundingBox,
    Detection,
    Embedding,
    FaceQuality,
)
from facetrace.evaluation.datasets import LabeledImage, VerificationPair
from facetrace.evaluation.embeddings import embed_images, select_subject_face
from facetrace.evaluation.identify import evaluate_identification, split_gallery_probes
from facetrace.evaluation.verify import evaluate_verification
from facetrace.vision.options import AnalyzerOptions

DIM = 4
Face = tuple[tuple[float, float, float, float], list[float]]  # (box, vector)


def _face(box: tuple[float, float, float, float], vector: Sequence[float]) -> AnalyzedFace:
    unit = np.asarray(vector, dtype=np.float32)
    unit = unit / np.linalg.norm(unit)
    return AnalyzedFace(
        detection=Detection(BoundingBox(*box), np.zeros((5, 2), np.float32), 0.9),
        quality=FaceQuality(1.0, 100.0, 1.0, 0.9, 0.0, 0.0),
        embedding=Embedding("scripted", unit),
    )


class ScriptedAnalyzer:
    """Returns the faces scripted for each source; counts how many images it analysed."""

    # The detection settings a real analyzer resolves (the default pack's); the harness's cache key names them.
    min_detection_score = 0.8
    fallback_score: float | None = 0.65
    landmarks_in_force = "detector"

    def __init__(self, script: dict[str, list[Face] | Exception]) -> None:
        self.script = script
        self.analyzed = 0

    @property
    def model_id(self) -> str:
        return "scripted"

    @property
    def embedding_dim(self) -> int:
        return DIM

    def analyze(self, data: bytes, source: str) -> AnalyzedImage:
        self.analyzed += 1
        entry = self.script[source]
        if isinstance(entry, Exception):
            raise entry
        return AnalyzedImage(source, 250, 250, tuple(_face(box, vector) for box, vector in entry))

    def analyze_batch(self, items: Sequence[tuple[bytes, str]]) -> list[AnalyzedImage | Exception]:
        results: list[AnalyzedImage | Exception] = []
        for data, source in items:
            try:
                results.append(self.analyze(data, source))
            except Exception as exc:
                results.append(exc)
        return results


CENTRE = (75.0, 75.0, 175.0, 175.0)


def _person_vector(person: int, jitter: float, seed: int) -> list[float]:
    base = np.zeros(DIM)
    base[person % DIM] = 1.0
    base[(person + 1) % DIM] = 0.3 * (person // DIM)
    noise = np.random.default_rng(seed).normal(scale=jitter, size=DIM)
    return (base + noise).tolist()


def _files(root: Path, names: Sequence[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded by the scripted analyzer")


def test_select_subject_face_prefers_the_central_face_over_a_larger_corner_face() -> None:
    image = AnalyzedImage(
        "x",
        250,
        250,
        (
            _face((0.0, 0.0, 120.0, 120.0), [1, 0, 0, 0]),  # larger, in the corner
            _face((80.0, 80.0, 170.0, 170.0), [0, 1, 0, 0]),  # centred subject
            _face((100.0, 100.0, 110.0, 110.0), [0, 0, 1, 0]),  # tiny, centred
        ),
    )
    chosen = select_subject_face(image)
    assert chosen is not None
    assert chosen.embedding.vector.tolist() == pytest.approx([0, 1, 0, 0])
    assert select_subject_face(AnalyzedImage("y", 250, 250, ())) is None


def _verification_fixture(tmp_path: Path) -> tuple[ScriptedAnalyzer, list[VerificationPair]]:
    script: dict[str, list[Face] | Exception] = {}
    pairs: list[VerificationPair] = []
    for fold in (1, 2):
        for k in range(5):
            person, other = 2 * k + 10 * fold, 2 * k + 1 + 10 * fold
            a, b, c = f"p{person}/1.jpg", f"p{person}/2.jpg", f"p{other}/1.jpg"
            script[a] = [(CENTRE, _person_vector(person, 0.05, 1))]
            script[b] = [(CENTRE, _person_vector(person, 0.05, 2))]
            script[c] = [(CENTRE, _person_vector(other, 0.05, 3))]
            pairs.append(VerificationPair(a, b, True, fold))
            pairs.append(VerificationPair(a, c, False, fold))
    _files(tmp_path, list(script))
    return ScriptedAnalyzer(script), pairs


def test_evaluate_verification_on_separable_scores(tmp_path: Path) -> None:
    analyzer, pairs = _verification_fixture(tmp_path)
    report = evaluate_verification(analyzer, pairs, tmp_path)
    assert report.accuracy == 1.0
    assert report.accuracy_std == 0.0
    assert (report.pairs, report.same_pairs, report.different_pairs, report.folds) == (20, 10, 10, 2)
    assert report.images == 30
    assert analyzer.analyzed == 30  # each distinct image once, though p*/1.jpg appears in two pairs
    assert report.pairs_with_failure == 0
    assert report.accuracy_excluding_failures is None
    # 10 impostor pairs cannot resolve FAR 1e-3: the report says so.
    assert [p.far_target for p in report.tar_at_far] == [1e-3, 1e-4]
    assert not report.tar_at_far[0].resolved
    assert any("below the resolution" in note for note in report.notes)
    data = json.loads(report.to_json())
    assert data["tar_at_far"][0]["far_resolution"] == pytest.approx(0.1)
    assert "accuracy 100.00% ± 0.00%" in report.summary()


def test_detection_failures_score_minus_one_and_are_reported(tmp_path: Path) -> None:
    analyzer, pairs = _verification_fixture(tmp_path)
    analyzer.script[pairs[0].path_b] = []  # a same pair loses a face: a miss
    analyzer.script[pairs[3].path_b] = ImageDecodeError(pairs[3].path_b, "truncated")  # a different pair
    report = evaluate_verification(analyzer, pairs, tmp_path)
    assert report.images_without_face == 2
    assert report.unreadable_images == 1
    assert report.pairs_with_failure == 2
    assert set(report.failed_images) == {pairs[0].path_b, pairs[3].path_b}
    assert report.accuracy < 1.0  # the same pair scored -1 is rejected
    assert report.accuracy_excluding_failures == 1.0


def test_the_turned_faces_subset_is_judged_as_the_protocol_judged_it() -> None:
    from facetrace.evaluation import metrics
    from facetrace.evaluation.verify import turned_subset

    rng = np.random.default_rng(5)
    same = np.tile([True, False], 2000)
    scores = np.where(same, rng.normal(0.7, 0.1, same.size), rng.normal(0.0, 0.1, same.size))
    folds = np.repeat(np.arange(1, 11), 400)
    yaw_a = np.zeros(same.size, dtype=np.float32)
    yaw_b = np.zeros(same.size, dtype=np.float32)
    kfold = metrics.kfold_accuracy(scores, same, folds)
    assert turned_subset(scores, same, folds, kfold, yaw_a, yaw_b) is None
    yaw_a[:100] = 35.0  # turned in photo a
    yaw_b[100:150] = -40.0  # turned the other way in photo b
    yaw_b[150:200] = np.nan  # no face: not turned
    scores[0] = 0.05  # a turned genuine pair far below every threshold
    kfold = metrics.kfold_accuracy(scores, same, folds)
    subset = turned_subset(scores, same, folds, kfold, yaw_a, yaw_b)
    assert subset is not None
    assert (subset.yaw_deg, subset.pairs, subset.same_pairs) == (30.0, 150, 75)
    assert subset.accuracy == pytest.approx(149 / 150)
    assert subset.threshold == metrics.tar_at_far(scores, same, 1e-3).threshold
    assert subset.tar == pytest.approx(74 / 75)
    assert subset.impostors_accepted == 0


def test_embedding_cache_is_reused_across_runs(tmp_path: Path) -> None:
    analyzer, pairs = _verification_fixture(tmp_path)
    cache = tmp_path / "cache"
    paths = [pair.path_a for pair in pairs]
    first = embed_images(analyzer, tmp_path, paths, cache_dir=cache)
    assert analyzer.analyzed == 10
    assert len(list(cache.glob("embeddings-scripted.npz"))) == 1
    progress: list[tuple[int, int]] = []
    second = embed_images(analyzer, tmp_path, paths, cache_dir=cache, progress=lambda d, t: progress.append((d, t)))
    assert analyzer.analyzed == 10  # nothing re-analysed
    assert second.newly_embedded == 0
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert progress == [(10, 10)]
    # A different cache key (e.g. flip TTA) keeps its own file.
    embed_images(analyzer, tmp_path, paths[:4], cache_dir=cache, cache_key="scripted+flip_tta")
    assert analyzer.analyzed == 12
    np.testing.assert_array_equal(second.yaw_deg, np.zeros(10, dtype=np.float32))  # each subject face's yaw, kept
    # A cache made before caches kept the yaw is not trusted: its images are analysed again.
    stored = dict(np.load(cache / "embeddings-scripted.npz"))
    del stored["yaw_deg"]
    np.savez(cache / "embeddings-scripted.npz", **stored)
    embed_images(analyzer, tmp_path, paths, cache_dir=cache)
    assert analyzer.analyzed == 22


def _identification_fixture(tmp_path: Path, people: int) -> tuple[ScriptedAnalyzer, list[LabeledImage]]:
    script: dict[str, list[Face] | Exception] = {}
    manifest: list[LabeledImage] = []
    for person in range(people):
        photos = 3 if person % 2 == 0 else 1
        for k in range(photos):
            path = f"id{person:02d}/{k}.jpg"
            script[path] = [(CENTRE, _person_vector(person, 0.02, person * 10 + k))]
            manifest.append(LabeledImage(path, f"id{person:02d}"))
    _files(tmp_path, list(script))
    return ScriptedAnalyzer(script), manifest


def test_split_gallery_probes() -> None:
    manifest = [LabeledImage(f"m{p}/{k}.jpg", f"m{p}") for p in range(4) for k in range(3)]
    manifest += [LabeledImage("single/0.jpg", "single")]
    split = split_gallery_probes(manifest, hold_out_every=2)
    # Multi-photo people m0..m3: the 2nd and 4th (m1, m3) are held out.
    assert split.gallery == ("m0/0.jpg", "m2/0.jpg", "single/0.jpg")
    assert split.mated_probes == ("m0/1.jpg", "m0/2.jpg", "m2/1.jpg", "m2/2.jpg")
    assert split.nonmated_probes == ("m1/1.jpg", "m1/2.jpg", "m3/1.jpg", "m3/2.jpg")
    assert (split.enrolled_people, split.distractors, split.held_out_people) == (2, 1, 2)


def test_evaluate_identification(tmp_path: Path) -> None:
    analyzer, manifest = _identification_fixture(tmp_path, people=8)
    report = evaluate_identification(analyzer, manifest, tmp_path, hold_out_every=4)
    # Multi-photo people: id00, id02, id04, id06; id06 (4th) is held out.
    assert (report.enrolled_people, report.distractors, report.held_out_people) == (3, 4, 1)
    assert (report.gallery_size, report.mated_probes, report.nonmated_probes) == (7, 6, 2)
    assert report.rank1 == 1.0
    assert report.rank10 == 1.0
    assert report.fnir_at_fpir[0].fpir_target == 0.01
    json.loads(report.to_json())
    assert "rank-1 100.00%" in report.summary()


def test_identification_counts_a_faceless_gallery_photo_as_lost_mates(tmp_path: Path) -> None:
    analyzer, manifest = _identification_fixture(tmp_path, people=8)
    analyzer.script["id00/0.jpg"] = []
    report = evaluate_identification(analyzer, manifest, tmp_path, hold_out_every=4)
    assert report.gallery_images_without_face == 1
    assert report.gallery_size == 6
    assert report.rank10 == pytest.approx(4 / 6)  # id00's two probes have no mate to find, at any rank
    assert any("lost their mate" in note for note in report.notes)


def test_the_eval_commands_run_verify_identify_and_calibrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facetrace.cli.main import app
    from facetrace.evaluation import harness
    from facetrace.evaluation.calibration import read_calibration_json, write_calibration_json

    analyzer, pairs = _verification_fixture(tmp_path)
    id_analyzer, manifest = _identification_fixture(tmp_path / "ids", people=8)
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text(
        "path_a,path_b,same,fold\n" + "".join(f"{p.path_a},{p.path_b},{int(p.same)},{p.fold}\n" for p in pairs)
    )
    manifest_csv = tmp_path / "manifest.csv"
    manifest_csv.write_text("path,identity\n" + "".join(f"{m.path},{m.identity}\n" for m in manifest))
    runner = CliRunner()

    monkeypatch.setattr(harness.Pipeline, "open_analyzer", lambda self: analyzer)
    result = runner.invoke(app, ["eval", "verify", "--pairs", str(pairs_csv), "--root", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == 1.0

    monkeypatch.setattr(harness.Pipeline, "open_analyzer", lambda self: id_analyzer)
    common = ["--manifest", str(manifest_csv), "--root", str(tmp_path / "ids")]
    result = runner.invoke(app, ["eval", "identify", *common, "--hold-out-every", "4"])
    assert result.exit_code == 0, result.output
    assert "rank-1 100.00%" in result.stdout

    out = tmp_path / "calibration.json"
    result = runner.invoke(app, ["eval", "calibrate", *common, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert read_calibration_json(out).model_id == "scripted"
    assert "impostor pairs" in result.stdout
    # A refit keeps the quality-conditioned tables already in the file (calibrate-quality measured them).
    fitted = read_calibration_json(out)
    with_tables = dataclasses.replace(fitted, conditioned=(("both_flagged", fitted),))
    write_calibration_json(with_tables, out)
    assert runner.invoke(app, ["eval", "calibrate", *common, "--out", str(out)]).exit_code == 0
    assert read_calibration_json(out).table("both_flagged") == fitted


def test_an_eval_command_reports_a_bad_csv_without_a_traceback(tmp_path: Path) -> None:
    from facetrace.cli.main import app

    bad = tmp_path / "pairs.csv"
    bad.write_text("path_a,path_b\n")
    result = CliRunner().invoke(app, ["eval", "verify", "--pairs", str(bad), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert not isinstance(result.exception, FacetraceError)  # handled: exit 1, not an uncaught error


def test_eval_measures_the_analyzer_the_engine_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness's analyzer options equal the engine's for the same settings: environment, defaults and the flags
    given alike (an earlier harness kept options of its own and measured another pipeline)."""
    from facetrace.cli.main import app
    from facetrace.engine import open_engine
    from facetrace.evaluation import harness

    analyzer, pairs = _verification_fixture(tmp_path)
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text(
        "path_a,path_b,same,fold\n" + "".join(f"{p.path_a},{p.path_b},{int(p.same)},{p.fold}\n" for p in pairs)
    )
    monkeypatch.setenv("FACETRACE_FLIP_TTA", "true")
    monkeypatch.setenv("FACETRACE_MAX_IMAGE_PIXELS", "4000000")
    monkeypatch.setenv("FACETRACE_RESTORATION", "off")
    data = tmp_path / "data"
    flags = {"runtime": "opencv", "min_detection_score": 0.7, "rotation_fallback": "always", "threads": 2}
    measured: list[AnalyzerOptions] = []

    def record(pipeline: harness.Pipeline) -> ScriptedAnalyzer:
        measured.append(pipeline.options)
        return analyzer

    monkeypatch.setattr(harness.Pipeline, "open_analyzer", record)
    command = ["eval", "verify", "--pairs", str(pairs_csv), "--root", str(tmp_path), "--data", str(data)]
    command += [arg for name, value in flags.items() for arg in (f"--{name.replace('_', '-')}", str(value))]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    with open_engine(data, **flags) as engine:
        engine_options = engine.analyzer_factory()().options  # type: ignore[attr-defined]
    assert measured == [engine_options]
    assert (engine_options.flip_tta, engine_options.max_image_pixels, engine_options.restoration) == (
        True,
        4_000_000,
        "off",
    )
    assert (engine_options.runtime, engine_options.rotation_fallback, engine_options.threads) == ("opencv", "always", 2)
    # Without flags or environment, both run the defaults.
    for name in ("FACETRACE_FLIP_TTA", "FACETRACE_MAX_IMAGE_PIXELS", "FACETRACE_RESTORATION"):
        monkeypatch.delenv(name)
    default = harness.Pipeline.from_settings(harness.pipeline_settings(data))
    with open_engine(data) as engine:
        assert default.options == engine.analyzer_factory()().options  # type: ignore[attr-defined]
    # The key names the threshold and fallback floor the analyzer resolved (the pack's own, or an override); without
    # the subject-face fallback it is the key caches had before the fallback existed.
    resolved = ScriptedAnalyzer({})
    assert default.cache_key(resolved) == "scripted+min_det=0.8+fallback=0.65+rotation=auto+restoration=auto"
    resolved.fallback_score = None
    assert default.cache_key(resolved) == "scripted+min_det=0.8+rotation=auto+restoration=auto"
    assert harness.Pipeline(AnalyzerOptions(runtime="opencv", flip_tta=True)).cache_key(resolved) == (
        "scripted+min_det=0.8+rotation=auto+restoration=auto+runtime=opencv+flip_tta"
    )
    # The landmarks in force: auto without the face mesh model installed is the detector's, as before the option.
    resolved.landmarks_in_force = "refined"
    assert default.cache_key(resolved) == "scripted+min_det=0.8+rotation=auto+restoration=auto+landmarks=refined"
    resolved.landmarks_in_force = "turned"
    assert default.cache_key(resolved) == "scripted+min_det=0.8+rotation=auto+restoration=auto+landmarks=turned"


def test_calibrated_operating_point_reads_the_threshold_from_the_table() -> None:
    from facetrace.core.types import ScoreCalibration
    from facetrace.evaluation.verify import calibrated_operating_point

    table = ScoreCalibration("m", (0.1, 0.2, 0.3, 0.4), (1.0, 1e-2, 1e-3, 1e-5), 100_000, "synthetic")
    point = calibrated_operating_point([0.25, 0.35, 0.45, 0.5], table, 1e-3)
    assert (point.threshold, point.far, point.tar, point.resolved) == (0.3, 1e-3, 0.75, True)
    deep = calibrated_operating_point([0.25, 0.35, 0.45, 0.5], table, 1e-6)
    assert (deep.threshold, deep.resolved) == (0.4, False)


def test_verification_with_calibration_of_another_model_is_refused(tmp_path: Path) -> None:
    from facetrace.core.errors import ModelMismatchError
    from facetrace.core.types import ScoreCalibration

    analyzer, pairs = _verification_fixture(tmp_path)
    table = ScoreCalibration("other-model", (0.1,), (1.0,), 10, "synthetic")
    with pytest.raises(ModelMismatchError):
        evaluate_verification(analyzer, pairs, tmp_path, calibration=table)
    report = evaluate_verification(
        analyzer, pairs, tmp_path, calibration=ScoreCalibration("scripted", (0.0, 0.9), (1.0, 1e-3), 10**6, "s")
    )
    assert report.calibrated_tar_at_far[0].threshold == 0.9
    assert "calibrated threshold" in report.summary()
