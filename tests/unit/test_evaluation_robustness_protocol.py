"""The robustness benchmark's protocol pieces: which pairs it takes, how conditions are named on the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.evaluation.datasets import VerificationPair
from facetrace.evaluation.robustness.observations import Observations
from facetrace.evaluation.robustness.protocol import (
    default_conditions,
    identity_of,
    parse_conditions,
    select_pairs,
    subset_of,
)
from facetrace.evaluation.robustness.report import side_by_side_table
from facetrace.evaluation.robustness.scoring import measure_condition


def _pairs() -> tuple[VerificationPair, ...]:
    pairs = []
    for fold in (1, 2, 3):
        for index in range(6):
            pairs.append(VerificationPair(f"a/P{fold}{index}/x.jpg", f"a/P{fold}{index}/y.jpg", True, fold))
        for index in range(6):
            pairs.append(VerificationPair(f"a/Q{fold}{index}/x.jpg", f"a/R{fold}{index}/y.jpg", False, fold))
    return tuple(pairs)


def test_select_pairs_takes_the_first_folds_half_same_half_different() -> None:
    subset, in_folds = select_pairs(_pairs(), folds=2, pairs_per_fold=4)
    assert {pair.fold for pair in in_folds} == {1, 2} and len(in_folds) == 24
    assert len(subset) == 8
    for fold in (1, 2):
        same = [pair.same for pair in subset if pair.fold == fold]
        assert same.count(True) == 2 and same.count(False) == 2


def test_parse_conditions_expands_strengths_and_rejects_unknown_names() -> None:
    everything = default_conditions()
    assert len(everything) >= 25
    assert parse_conditions("jpeg=10, rotate=45") == (("jpeg", 10.0, "quality"), ("rotate", 45.0, "degrees"))
    blur = parse_conditions("gaussian_blur")
    assert [strength for _, strength, _ in blur] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="unknown degradation"):
        parse_conditions("sepia")


def test_identity_is_the_folder_name() -> None:
    assert identity_of("lfw-deepfunneled/Abel_Pacheco/Abel_Pacheco_0001.jpg") == "Abel_Pacheco"


def _unit(*components: float) -> np.ndarray:
    vector = np.array(components, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_one_condition_counts_impostors_flags_and_failures_by_hand() -> None:
    """Seven clean photos of five people in 4 dimensions; C's degraded copy drifts towards B, D's loses its face."""
    e1, e2, e3, e4 = _unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0), _unit(0, 0, 0, 1)
    paths = ["x/A/1.jpg", "x/A/2.jpg", "x/B/1.jpg", "x/C/1.jpg", "x/D/1.jpg", "x/D/2.jpg", "x/E/1.jpg"]
    clean = Observations(
        vectors=np.stack([e1, e1, e2, e3, e4, e4, e2]),
        has_face=np.ones(7, dtype=np.bool_),
        landmarks=np.zeros((7, 5, 2), dtype=np.float32),
        quality=np.ones(7),
        yaw=np.zeros(7),
        flags=((),) * 7,
    )
    pairs = [
        VerificationPair("x/A/1.jpg", "x/A/2.jpg", True, 1),
        VerificationPair("x/B/1.jpg", "x/C/1.jpg", False, 1),
        VerificationPair("x/D/1.jpg", "x/D/2.jpg", True, 2),
        VerificationPair("x/E/1.jpg", "x/B/1.jpg", False, 2),
    ]
    subset = subset_of(pairs, paths, {path: row for row, path in enumerate(paths)})
    assert subset.probe_paths == ("x/A/2.jpg", "x/C/1.jpg", "x/D/2.jpg", "x/B/1.jpg")
    # Degraded probes A2 (unchanged), C1 (half way to B, flagged), D2 (no face), B1 (unchanged).
    probes = Observations(
        vectors=np.stack([e1, _unit(0, 1, 1, 0), np.zeros(4, dtype=np.float32), e2]),
        has_face=np.array([True, True, False, True]),
        landmarks=np.zeros((4, 5, 2), dtype=np.float32),
        quality=np.ones(4),
        yaw=np.zeros(4),
        flags=((), ("blurry",), (), ()),
    )
    clean_scores = np.array([1.0, 0.0, 1.0, 1.0])
    result = measure_condition("gaussian_blur", 4.0, "sigma px", probes, clean, subset, clean_scores, threshold=0.5)
    assert result.tar_at_fmr == 0.5  # A matches, D's probe has no face
    assert result.failure_to_detect == 0.25
    assert result.rank1 == 0.5
    assert result.probes_flagged == pytest.approx(1 / 3)
    # vs clean: A2 vs 5 others, C1 vs 6, B1 vs 6; C1 reaches B1 and E1 (0.71), B1 reaches E1 (1.0).
    assert (result.impostor_pairs, result.high_impostors, result.high_impostors_flagged) == (17, 3, 2)
    assert result.flagged_impostor_pairs == 6
    # alike: the three probes with a face against each other; only C1 and B1 meet, and C1 is flagged.
    assert (result.alike_impostor_pairs, result.alike_high_impostors, result.alike_high_impostors_flagged) == (3, 1, 1)


def test_the_robustness_command_measures_the_pipeline_it_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rotation-fallback and --restoration reach the analyzer (an earlier version measured the defaults)."""
    from typer.testing import CliRunner

    from facetrace.cli.main import app
    from facetrace.evaluation.robustness import benchmark

    seen: dict[str, object] = {}

    def fake_evaluate(analyzer: object, *args: object, **kwargs: object) -> object:
        options = getattr(analyzer, "options", None)
        seen["rotation_fallback"] = getattr(options, "rotation_fallback", None)
        seen["restoration"] = getattr(options, "restoration", None)
        seen["cache_key"] = kwargs["cache_key"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(benchmark, "evaluate_robustness", fake_evaluate)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path_a,path_b,same,fold\na.jpg,b.jpg,1,0\n")
    for rotation, restoration in [("off", "off"), ("always", "auto")]:
        result = CliRunner().invoke(
            app,
            [
                *("eval", "robustness", "--pairs", str(pairs), "--root", str(tmp_path)),
                *("--min-detection-score", "0.8", "--rotation-fallback", rotation, "--restoration", restoration),
            ],
        )
        assert isinstance(result.exception, RuntimeError) and str(result.exception) == "stop here", result.output
        assert (seen["rotation_fallback"], seen["restoration"]) == (rotation, restoration)
        assert (f"rotation={rotation}" in str(seen["cache_key"])) == (rotation != "off")
        assert (f"restoration={restoration}" in str(seen["cache_key"])) == (restoration != "off")


def _report(tar_rotate: float, *, threshold: float = 0.3674) -> dict[str, object]:
    def row(condition: str, strength: float, unit: str, tar: float, rank1: float | None) -> dict[str, object]:
        return {
            "condition": condition,
            "strength": strength,
            "unit": unit,
            "accuracy": 0.5 + tar / 2,
            "tar_at_fmr": tar,
            "failure_to_detect": 1 - tar,
            "rank1": rank1,
        }

    results = [row("clean", 0.0, "", 1.0, 0.99), row("rotate", 90.0, "degrees", tar_rotate, tar_rotate)]
    return {"model_id": "m", "pairs": 400, "threshold": threshold, "seed": 0, "folds": [1, 2], "results": results}


def test_side_by_side_puts_each_runs_figures_next_to_the_plain_ones() -> None:
    table = side_by_side_table([("plain", _report(0.0)), ("+fallback", _report(0.995))])
    lines = table.splitlines()
    assert lines[0] == (
        "| condition | strength | accuracy % (plain / +fallback) | TAR@FMR1e-3 % (plain / +fallback) | "
        "failed to detect % (plain / +fallback) | rank-1 % (plain / +fallback) |"
    )
    assert "| rotate | 90 degrees | 50.0 / 99.8 | 0.0 / 99.5 | 100.0 / 0.5 | 0.0 / 99.5 |" in lines
    with pytest.raises(ValueError, match="threshold"):
        side_by_side_table([("plain", _report(0.0)), ("other", _report(0.5, threshold=0.4))])
