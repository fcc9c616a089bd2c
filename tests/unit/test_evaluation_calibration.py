from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from facetrace.evaluation import calibration as calibration_module
from facetrace.evaluation.calibration import (
    calibration_from_histogram,
    fit_impostor_calibration,
    read_calibration_json,
    similarity_at_false_match_rate,
    write_calibration_json,
)


def _random_unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _brute_force_impostor_scores(vectors: np.ndarray, identities: list[str]) -> np.ndarray:
    scores = []
    for i in range(len(identities)):
        for j in range(i + 1, len(identities)):
            if identities[i] != identities[j]:
                scores.append(float(vectors[i] @ vectors[j]))
    return np.array(scores)


@pytest.mark.parametrize("chunk_rows", [7, 1024])
def test_fit_matches_brute_force(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    monkeypatch.setattr(calibration_module, "_CHUNK_ROWS", chunk_rows)
    vectors = _random_unit_vectors(120, 6, seed=1)
    identities = [f"person{i % 15}" for i in range(120)]
    impostor = _brute_force_impostor_scores(vectors, identities)
    table = fit_impostor_calibration(vectors, identities, "test-model", measured_on="synthetic")

    assert table.model_id == "test-model"
    assert table.measured_on == "synthetic"
    assert table.impostor_pairs == impostor.size == 120 * 119 // 2 - 15 * (8 * 7 // 2)
    assert table.false_match_rates[0] == 1.0
    assert table.false_match_rates[-1] > 0.0
    assert table.similarities[0] <= impostor.min() < table.similarities[0] + 0.001
    assert table.similarities[-1] <= impostor.max() < table.similarities[-1] + 0.001
    assert list(table.similarities) == sorted(table.similarities)
    assert all(b <= a for a, b in zip(table.false_match_rates, table.false_match_rates[1:], strict=False))
    # FMR at each edge is the share of impostor scores at or above it (up to float rounding at an exact edge).
    for similarity, rate in zip(table.similarities[::25], table.false_match_rates[::25], strict=True):
        assert rate == pytest.approx(np.mean(impostor >= similarity), abs=2.0 / impostor.size)


def test_histogram_table_bounds() -> None:
    counts = np.array([0, 2, 0, 5, 3, 0])
    edges = np.array([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2])
    table = calibration_from_histogram(counts, edges, model_id="m", measured_on="x")
    assert table.similarities == (-0.2, -0.1, 0.0, 0.1)
    assert table.false_match_rates == (1.0, 0.8, 0.8, 0.3)
    assert table.impostor_pairs == 10
    assert similarity_at_false_match_rate(table, 0.5) == 0.1


def test_single_identity_has_no_impostors() -> None:
    with pytest.raises(ValueError, match="no impostor pairs"):
        fit_impostor_calibration(_random_unit_vectors(4, 3, seed=2), ["a"] * 4, "m")


def test_json_round_trip(tmp_path: Path) -> None:
    vectors = _random_unit_vectors(40, 4, seed=5)
    table = fit_impostor_calibration(vectors, [str(i // 2) for i in range(40)], "pack/model", measured_on="synthetic")
    target = tmp_path / "packs" / "calibration.json"
    write_calibration_json(table, target)
    data = json.loads(target.read_text())
    assert list(data) == ["model_id", "similarities", "false_match_rates", "impostor_pairs", "measured_on"]
    assert read_calibration_json(target) == table
    assert not list(target.parent.glob("*.tmp"))


def test_read_rejects_a_non_monotone_table(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "model_id": "m",
                "similarities": [0.1, 0.2],
                "false_match_rates": [0.1, 0.2],
                "impostor_pairs": 10,
                "measured_on": "x",
            }
        )
    )
    with pytest.raises(ValueError, match="must not increase"):
        read_calibration_json(path)


def test_written_table_is_world_readable(tmp_path: Path) -> None:
    table = calibration_from_histogram([1, 1], [0.0, 0.5], model_id="m", measured_on="x")
    write_calibration_json(table, tmp_path / "calibration.json")
    assert (tmp_path / "calibration.json").stat().st_mode & 0o777 == 0o644


def test_an_old_calibration_file_without_conditioned_tables_still_loads(tmp_path: Path) -> None:
    # The format before quality-conditioned tables: exactly these five keys.
    path = tmp_path / "calibration.json"
    old = {
        "model_id": "m",
        "similarities": [0.1, 0.2, 0.3],
        "false_match_rates": [0.1, 0.01, 0.001],
        "impostor_pairs": 1000,
        "measured_on": "x",
    }
    path.write_text(json.dumps(old))
    loaded = read_calibration_json(path)
    assert loaded.conditioned == () and loaded.table("both_flagged") is None
    assert loaded.table("clean") is loaded and loaded.false_match_rates == (0.1, 0.01, 0.001)
    write_calibration_json(loaded, tmp_path / "again.json")
    assert "conditioned" not in json.loads((tmp_path / "again.json").read_text())


def test_conditioned_tables_round_trip(tmp_path: Path) -> None:
    clean = calibration_from_histogram([5, 3, 1], [0.0, 0.1, 0.2], model_id="m", measured_on="clean")
    both = calibration_from_histogram([1, 2, 2], [0.0, 0.1, 0.2], model_id="m", measured_on="both")
    table = dataclasses.replace(clean, conditioned=(("both_flagged", both),))
    write_calibration_json(table, tmp_path / "calibration.json")
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert set(data["conditioned"]) == {"both_flagged"} and "model_id" not in data["conditioned"]["both_flagged"]
    loaded = read_calibration_json(tmp_path / "calibration.json")
    assert loaded == table and loaded.table("both_flagged") == both
    data["conditioned"]["blurry"] = data["conditioned"]["both_flagged"]
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown quality condition"):
        read_calibration_json(tmp_path / "calibration.json")
