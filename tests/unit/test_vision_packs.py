"""Model packs: manifests, validation sentences, adding by path. ArcFace-format packs are built with onnx.helper."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from facetrace.core.errors import ModelPackError
from facetrace.vision.packs import DEFAULT_PACK_ID, add_pack, list_packs, load_pack, verify_pack


def tiny_arcface_model(dim: int = 512, size: int = 112, declare_output: bool = True, seed: int = 3) -> bytes:
    """[N, 3, size, size] float -> GlobalAveragePool -> Flatten -> MatMul -> [N, dim]: the ArcFace interface."""
    weight = np.random.default_rng(seed).normal(0, 1, (3, dim)).astype(np.float32)
    output_shape = ["N", dim] if declare_output else None
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "proj"], ["embedding"]),
        ],
        "tiny_arcface",
        inputs=[helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, size, size])],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(weight, "proj")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def write_pack(
    folder: Path,
    *,
    pack_id: str = "tiny-arcface-r0",
    model: bytes | None = None,
    file_name: str = "w600k_tiny.onnx",
    sha256: str | None = None,
    embedder: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    write_model: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = tiny_arcface_model() if model is None else model
    if write_model:
        (folder / file_name).write_bytes(data)
    manifest: dict[str, Any] = {
        "format": 1,
        "id": pack_id,
        "name": "Tiny ArcFace-format test pack",
        "version": "0",
        "licence": {
            "spdx": "LicenseRef-test",
            "summary": "Test weights, non-commercial research only.",
            "url": "https://example.org/licence",
        },
        "commercial_use": False,
        "detector": {"builtin": "yunet"},
        "embedder": {
            "file": file_name,
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "input_size": [112, 112],
            "colour_order": "RGB",
            "mean": [127.5, 127.5, 127.5],
            "std": [127.5, 127.5, 127.5],
            "embedding_dim": 512,
            "preferred_runtime": "onnxruntime",
            **(embedder or {}),
        },
        **(extra or {}),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def test_default_pack_loads_and_verifies() -> None:
    pack = load_pack(None)
    assert pack.id == pack.model_id == DEFAULT_PACK_ID
    assert pack.builtin and pack.commercial_use
    assert pack.embedding_dim == 128
    assert pack.embedder.colour_order == "RGB"  # what FaceRecognizerSF feeds; pinned by an integration test
    assert pack.licence.spdx == "Apache-2.0 AND MIT"
    assert pack.detector.kind == "yunet"


def test_arcface_pack_loads_by_path(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "src")
    pack = load_pack(str(folder))
    assert pack.model_id == "tiny-arcface-r0"
    assert pack.embedding_dim == 512
    assert pack.embedder.mean == (127.5, 127.5, 127.5)
    assert not pack.commercial_use and not pack.builtin
    assert pack.detector.model.sha256 == load_pack(None).detector.model.sha256  # reuses the built-in YuNet
    assert verify_pack(str(folder)).id == "tiny-arcface-r0"


def test_add_pack_copies_it_into_the_data_dir(tmp_path: Path) -> None:
    source = write_pack(tmp_path / "incoming")
    data_dir = tmp_path / "data"
    added = add_pack(source, data_dir)
    installed = data_dir / "packs" / "tiny-arcface-r0"
    assert (installed / "manifest.json").is_file() and (installed / "w600k_tiny.onnx").is_file()
    assert str(installed) in added.location
    assert not [p for p in (data_dir / "packs").iterdir() if p.name.startswith(".")]  # no staging left behind
    for path in source.iterdir():
        path.unlink()
    assert load_pack("tiny-arcface-r0", data_dir).embedding_dim == 512  # loads from the copy
    listed = {info.id: info for info in list_packs(data_dir)}
    assert set(listed) == {DEFAULT_PACK_ID, "tiny-arcface-r0"}
    assert listed["tiny-arcface-r0"].commercial_use is False
    assert listed["tiny-arcface-r0"].licence_spdx == "LicenseRef-test"
    assert listed[DEFAULT_PACK_ID].builtin
    # The default pack's face mesh model is named with its licence and install command, and is not installed here.
    assert listed[DEFAULT_PACK_ID].landmark_model == "mediapipe-face-mesh (Apache-2.0)"
    assert listed[DEFAULT_PACK_ID].landmark_model_installed is None
    assert "install_face_mesh.py" in str(listed[DEFAULT_PACK_ID].landmark_model_install)
    assert listed["tiny-arcface-r0"].landmark_model is None


def test_adding_the_same_pack_twice_is_a_no_op_but_a_different_one_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_pack(write_pack(tmp_path / "a"), data_dir)
    add_pack(write_pack(tmp_path / "b"), data_dir)
    other = write_pack(tmp_path / "c", model=tiny_arcface_model(seed=4))  # same id, other weights
    with pytest.raises(ModelPackError, match="different pack with id 'tiny-arcface-r0' is already installed"):
        add_pack(other, data_dir)


def test_the_built_in_id_cannot_be_taken(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="built-in pack's"):
        add_pack(write_pack(tmp_path / "p", pack_id=DEFAULT_PACK_ID), tmp_path / "data")


def test_sha256_mismatch_names_both_digests(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", sha256="ab" * 32)
    actual = hashlib.sha256((folder / "w600k_tiny.onnx").read_bytes()).hexdigest()
    with pytest.raises(ModelPackError, match=f"expected sha256 {'ab' * 32}, file has {actual}"):
        load_pack(str(folder))


def test_wrong_output_dim_is_found_in_the_graph(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", model=tiny_arcface_model(dim=256))
    with pytest.raises(ModelPackError, match=r"manifest says embedding_dim 512.*i\.e\. 256 numbers per face"):
        load_pack(str(folder))


def test_undeclared_output_dim_is_found_by_shape_inference(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", model=tiny_arcface_model(dim=256, declare_output=False))
    with pytest.raises(ModelPackError, match="embedding_dim 512"):
        load_pack(str(folder))


def test_wrong_input_size_is_found_in_the_graph(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", model=tiny_arcface_model(size=96))
    with pytest.raises(ModelPackError, match=r"input_size \[112, 112\], the graph takes \[N, 3, 96, 96\]"):
        load_pack(str(folder))


def test_missing_model_file(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", write_model=False)
    with pytest.raises(ModelPackError, match=r"model file .*w600k_tiny\.onnx is missing"):
        load_pack(str(folder))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    junk = b"<html>404 not found</html>\n"
    folder = write_pack(tmp_path / "p", model=junk)  # the sha256 matches, so the parse is what fails
    with pytest.raises(ModelPackError, match=r"w600k_tiny\.onnx is not an ONNX model"):
        load_pack(str(folder))


def test_unknown_and_missing_keys_are_named(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", embedder={"normalise": True})
    with pytest.raises(ModelPackError, match=r"unknown key.*'normalise'"):
        load_pack(str(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["embedder"]["normalise"]
    del manifest["licence"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelPackError, match=r"missing key.*'licence'"):
        load_pack(str(folder))


@pytest.mark.parametrize(
    ("embedder", "message"),
    [
        ({"colour_order": "GBR"}, "'colour_order' must be one of RGB, BGR"),
        ({"std": [127.5, 0, 127.5]}, "'std' must be one or three positive numbers"),
        ({"input_size": [112]}, r"input_size must be \[width, height\]"),
        ({"preferred_runtime": "tensorrt"}, "'preferred_runtime' must be one of opencv, onnxruntime"),
        ({"file": "../outside.onnx"}, "must be a path inside the pack folder"),
    ],
)
def test_bad_manifest_values_are_named(tmp_path: Path, embedder: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelPackError, match=message):
        load_pack(str(write_pack(tmp_path / "p", embedder=embedder)))


def test_bad_pack_id(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="id 'My Pack/1' must be"):
        load_pack(str(write_pack(tmp_path / "p", pack_id="My Pack/1")))


def test_calibration_is_loaded_and_checked(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", extra={"calibration": "calibration.json"})
    assert load_pack(str(folder)).calibration is None  # named but absent: uncalibrated
    calibration = {
        "model_id": "tiny-arcface-r0",
        "similarities": [0.1, 0.3, 0.5],
        "false_match_rates": [0.2, 0.01, 0.0001],
        "impostor_pairs": 10000,
        "measured_on": "LFW 10-fold impostor pairs",
    }
    (folder / "calibration.json").write_text(json.dumps(calibration))
    loaded = load_pack(str(folder)).calibration
    assert loaded is not None
    assert loaded.similarities == (0.1, 0.3, 0.5) and loaded.impostor_pairs == 10000
    assert loaded.conditioned == ()  # a file without quality-conditioned tables (the older format) loads as before
    (folder / "calibration.json").write_text(json.dumps({**calibration, "model_id": "someone-else"}))
    with pytest.raises(ModelPackError, match="measured for model 'someone-else'"):
        load_pack(str(folder))
    table = {key: calibration[key] for key in ("similarities", "false_match_rates", "impostor_pairs", "measured_on")}
    (folder / "calibration.json").write_text(json.dumps({**calibration, "conditioned": {"both_flagged": table}}))
    loaded = load_pack(str(folder)).calibration
    assert loaded is not None and loaded.table("both_flagged") is not None
    assert loaded.table("one_flagged") is None
    (folder / "calibration.json").write_text(json.dumps({**calibration, "conditioned": {"blurry": table}}))
    with pytest.raises(ModelPackError, match="unknown quality condition"):
        load_pack(str(folder))


def test_list_shows_a_broken_pack_with_its_problem(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    broken = data_dir / "packs" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    infos = {info.id: info for info in list_packs(data_dir)}
    assert infos["broken"].problem is not None and "not valid JSON" in infos["broken"].problem


def test_unknown_pack_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match=f"no model pack named 'nope'.*{re.escape(DEFAULT_PACK_ID)}"):
        load_pack("nope", tmp_path)


def test_confident_detection_score_is_the_packs_own_with_a_default(tmp_path: Path) -> None:
    assert load_pack(None).detector.confident_detection_score == 0.8
    assert load_pack(str(write_pack(tmp_path / "plain"))).detector.confident_detection_score == 0.8
    own = write_pack(tmp_path / "own", extra={"detector": {"builtin": "yunet", "confident_detection_score": 0.55}})
    assert load_pack(str(own)).detector.confident_detection_score == 0.55


@pytest.mark.parametrize("value", [1.5, -0.1, "high", True])
def test_a_bad_confident_detection_score_is_named(tmp_path: Path, value: object) -> None:
    folder = write_pack(tmp_path / "p", extra={"detector": {"builtin": "yunet", "confident_detection_score": value}})
    with pytest.raises(ModelPackError, match="'confident_detection_score' must be a number in \\[0, 1\\]"):
        load_pack(str(folder))


def test_the_detection_threshold_and_fallback_floor_are_the_packs_own(tmp_path: Path) -> None:
    default = load_pack(None).detector
    # Calibrated for YuNet (bench/detection_thresholds.py, docs/models.md).
    assert (default.score_threshold, default.fallback_score) == (0.8, 0.65)
    reused = load_pack(str(write_pack(tmp_path / "plain"))).detector
    assert (reused.score_threshold, reused.fallback_score) == (0.8, 0.65)
    own = write_pack(
        tmp_path / "own", extra={"detector": {"builtin": "yunet", "score_threshold": 0.7, "fallback_score": 0.5}}
    )
    assert (load_pack(str(own)).detector.score_threshold, load_pack(str(own)).detector.fallback_score) == (0.7, 0.5)
    # A threshold at or below the built-in floor leaves nothing for the floor to do: no fallback.
    low = write_pack(tmp_path / "low", extra={"detector": {"builtin": "yunet", "score_threshold": 0.55}})
    assert (load_pack(str(low)).detector.score_threshold, load_pack(str(low)).detector.fallback_score) == (0.55, None)


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.5, -0.2, "0.8", True, None])
def test_a_bad_detection_threshold_is_refused_with_the_reason(tmp_path: Path, value: object) -> None:
    folder = write_pack(tmp_path / "p", extra={"detector": {"builtin": "yunet", "score_threshold": value}})
    with pytest.raises(ModelPackError, match="'score_threshold' must be a number between 0 and 1 \\(exclusive\\)"):
        load_pack(str(folder))


@pytest.mark.parametrize("value", [0.8, 0.9, 0, -0.1, "low", False])
def test_a_fallback_floor_not_below_the_threshold_is_refused(tmp_path: Path, value: object) -> None:
    detector = {"builtin": "yunet", "score_threshold": 0.8, "fallback_score": value}
    folder = write_pack(tmp_path / "p", extra={"detector": detector})
    with pytest.raises(ModelPackError, match="'fallback_score' must be a number above 0 and below score_threshold"):
        load_pack(str(folder))
