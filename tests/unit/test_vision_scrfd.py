"""SCRFD decoding, the fixed-size Resize repair, SCRFD packs and the install script, on tiny hand-built ONNX graphs.

The tiny detector has SCRFD's interface: input [1, 3, 640, 640], nine outputs score_/bbox_/kps_{8,16,32} laid out as
the real export lays them (Conv -> Transpose(0, 2, 3, 1) -> Reshape [1, -1, C], two anchors per cell), and an FPN-like
Resize with fixed output sizes. Its stride-16 score fires on cells whose red channel is bright, so a red square placed
on the grid is a face at a known place.
"""

import hashlib
import io
import json
import math
import re
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facetrace.core.errors import ModelPackError
from facetrace.vision import graph_fixes
from facetrace.vision.analyzer import open_analyzer
from facetrace.vision.detectors.scrfd import (
    ANCHORS_PER_CELL,
    SCRFD_OUTPUT_NAMES,
    STRIDES,
    ScrfdDetector,
    decode_scrfd,
    scrfd_output_roles,
)
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import load_pack
from facetrace.vision.sessions import open_session
from repo_files import load_module

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORT_SIZE_PX = 640
# Box distances (left, top, right, bottom) and landmark offsets, in strides, that every anchor of the tiny graph gives.
BOX_DISTANCES = (3.0, 2.5, 4.0, 3.5)
KPS_OFFSETS = (-0.5, -0.5, 0.5, -0.5, 0.0, 0.0, -0.4, 0.6, 0.4, 0.6)
RED_SCORE_GAIN = 10.0


def tiny_scrfd_model(*, output_names: tuple[str, ...] = SCRFD_OUTPUT_NAMES, kps_width: int = 10) -> bytes:
    """SCRFD's interface in a few nodes; see the module docstring."""
    nodes = [
        helper.make_node("AveragePool", ["input.1"], [f"pool_{s}"], kernel_shape=[s, s], strides=[s, s])
        for s in STRIDES
    ]
    up = EXPORT_SIZE_PX // 16
    initializers = [
        numpy_helper.from_array(np.zeros((0,), np.float32), "empty"),
        numpy_helper.from_array(np.array([1, 3, up, up], np.int64), "fixed_sizes"),
    ]
    nodes.append(
        helper.make_node(
            "Resize",
            ["pool_32", "empty", "empty", "fixed_sizes"],
            ["up_32"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    )
    nodes.append(helper.make_node("Add", ["pool_16", "up_32"], ["feature_16"]))
    features = {8: "pool_8", 16: "feature_16", 32: "pool_32"}
    head_widths = {"score": 1, "bbox": 4, "kps": kps_width}
    biases = {"bbox": BOX_DISTANCES, "kps": KPS_OFFSETS[:kps_width]}
    outputs = []
    for head in ("score", "bbox", "kps"):
        for stride in STRIDES:
            role = f"{head}_{stride}"
            name = output_names[SCRFD_OUTPUT_NAMES.index(role)]
            channels = ANCHORS_PER_CELL * head_widths[head]
            weight = np.zeros((channels, 3, 1, 1), np.float32)
            if head == "score":
                bias = np.full(channels, -20.0, np.float32)
                if stride == 16:
                    # Red channel (index 0 in RGB): about +1 on a red cell and -1 on black, at both levels added.
                    weight[:, 0] = RED_SCORE_GAIN
                    bias[:] = -RED_SCORE_GAIN
            else:
                bias = np.tile(np.asarray(biases[head], np.float32), ANCHORS_PER_CELL)
            initializers += [numpy_helper.from_array(weight, f"{role}_w"), numpy_helper.from_array(bias, f"{role}_b")]
            raw = f"{role}_conv"
            nodes.append(helper.make_node("Conv", [features[stride], f"{role}_w", f"{role}_b"], [raw]))
            if head == "score":
                nodes.append(helper.make_node("Sigmoid", [raw], [f"{role}_sig"]))
                raw = f"{role}_sig"
            nodes.append(helper.make_node("Transpose", [raw], [f"{role}_t"], perm=[0, 2, 3, 1]))
            shape_name = f"{role}_shape"
            initializers.append(numpy_helper.from_array(np.array([1, -1, head_widths[head]], np.int64), shape_name))
            nodes.append(helper.make_node("Reshape", [f"{role}_t", shape_name], [name]))
            anchors = (EXPORT_SIZE_PX // stride) ** 2 * ANCHORS_PER_CELL
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, anchors, head_widths[head]]))
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        inputs=[helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, EXPORT_SIZE_PX, EXPORT_SIZE_PX])],
        outputs=outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    data: bytes = model.SerializeToString()
    return data


def red_square_image(colour: tuple[int, int, int] = (0, 0, 255)) -> np.ndarray:
    """240x400 BGR, black, with a square on the stride-32 cell at row 2, column 3 (pixels y 64..96, x 96..128)."""
    image = np.zeros((240, 400, 3), np.uint8)
    image[64:96, 96:128] = colour
    return image


def expected_face() -> tuple[list[float], np.ndarray]:
    # The four stride-16 cells under the square all score the same; NMS keeps the first, at row 4, column 6.
    cx, cy = 6 * 16.0, 4 * 16.0
    left, top, right, bottom = (d * 16 for d in BOX_DISTANCES)
    box = [cx - left, cy - top, cx + right, cy + bottom]
    landmarks = np.asarray(KPS_OFFSETS, np.float32).reshape(5, 2) * 16 + [cx, cy]
    return box, landmarks


def _detector(runtime: str, model: bytes | None = None) -> ScrfdDetector:
    data = tiny_scrfd_model() if model is None else model
    session = open_session(
        graph_fixes.scale_fixed_resizes(data, "tiny scrfd"), runtime, 1, label="tiny scrfd", dynamic_spatial=True
    )
    return ScrfdDetector(session, score_threshold=0.5, nms_iou=0.4, max_side_px=1000, min_side_px=100)


# ---- decoding -------------------------------------------------------------------------------------------------------


def _empty_outputs(height: int, width: int) -> dict[str, np.ndarray]:
    outputs: dict[str, np.ndarray] = {}
    for stride in STRIDES:
        anchors = (height // stride) * (width // stride) * ANCHORS_PER_CELL
        outputs[f"score_{stride}"] = np.zeros((1, anchors, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.zeros((1, anchors, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((1, anchors, 10), np.float32)
    return outputs


def test_decode_follows_insightface_formulas() -> None:
    outputs = _empty_outputs(64, 96)
    # Stride 16 on a 64x96 input: 4 rows x 6 columns; row 2, column 3, second anchor.
    index = (2 * 6 + 3) * ANCHORS_PER_CELL + 1
    outputs["score_16"][0, index, 0] = 0.9
    outputs["bbox_16"][0, index] = [1.0, 2.0, 3.0, 4.0]
    outputs["kps_16"][0, index] = KPS_OFFSETS
    boxes, landmarks, scores = decode_scrfd(outputs, 64, 96, score_threshold=0.5)
    assert scores.tolist() == pytest.approx([0.9])
    cx, cy = 3 * 16.0, 2 * 16.0  # anchor centres are the cell's top-left corner times the stride
    np.testing.assert_allclose(boxes[0], [cx - 16, cy - 32, cx + 48, cy + 64])
    np.testing.assert_allclose(landmarks[0], np.reshape(KPS_OFFSETS, (5, 2)) * 16 + [cx, cy], rtol=1e-6)


def test_decode_drops_low_scores_and_checks_the_anchor_count() -> None:
    outputs = _empty_outputs(32, 32)
    outputs["score_8"][0, 5, 0] = 0.4
    boxes, landmarks, scores = decode_scrfd(outputs, 32, 32, score_threshold=0.5)
    assert boxes.shape == (0, 4) and landmarks.shape == (0, 5, 2) and scores.shape == (0,)
    with pytest.raises(ValueError, match="stride 8: expected 64 anchors for a 32x64 input, the model returned 32"):
        decode_scrfd(outputs, 32, 64, score_threshold=0.5)


def test_output_roles_by_name_or_in_insightface_order() -> None:
    shuffled = tuple(reversed(SCRFD_OUTPUT_NAMES))
    assert scrfd_output_roles(shuffled) == shuffled
    anonymous = tuple(str(448 + i) for i in range(9))  # how InsightFace's det_10g.onnx names them
    assert scrfd_output_roles(anonymous) == SCRFD_OUTPUT_NAMES
    with pytest.raises(ValueError, match="this graph has 12"):
        scrfd_output_roles([f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in STRIDES])


# ---- the detector over a real session -------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnxruntime", "opencv"])
def test_detector_finds_the_planted_face_at_any_input_size(runtime: str) -> None:
    detector = _detector(runtime)
    (face,) = detector.detect(red_square_image())  # 240x400, run at 256x416: not the export's 640x640
    box, landmarks = expected_face()
    assert face.box.as_tuple() == pytest.approx(box, abs=1e-3)
    np.testing.assert_allclose(face.landmarks, landmarks, atol=1e-3)
    # Red cell at both FPN levels: 10 * (2 * 0.996) - 10.
    assert face.score == pytest.approx(1 / (1 + math.exp(-(RED_SCORE_GAIN * 2 * 127.5 / 128 - RED_SCORE_GAIN))))


def test_detector_feeds_rgb_scaled_to_unit_range() -> None:
    detector = _detector("onnxruntime")
    assert detector.detect(red_square_image(colour=(255, 0, 0))) == []  # blue in BGR is not the red channel
    assert detector.detect(np.zeros((240, 400, 3), np.uint8)) == []


def test_detector_maps_a_shrunk_image_back_to_its_pixels() -> None:
    detector = _detector("onnxruntime")
    detector.max_side_px = 200  # 240x400 becomes 120x200
    image = np.zeros((240, 400, 3), np.uint8)
    image[128:192, 192:256] = (0, 0, 255)  # the square of red_square_image, at twice the size
    (face,) = detector.detect(image)
    box, landmarks = expected_face()  # found in the shrunk image, doubled back
    assert face.box.as_tuple() == pytest.approx([2 * v for v in box], abs=1e-3)
    np.testing.assert_allclose(face.landmarks, 2 * landmarks, atol=1e-3)


def test_detector_refuses_a_graph_without_scrfd_outputs() -> None:
    class _Session:
        runtime = "fake"
        input_name = "input"
        output_names = ("cls_8", "obj_8")

        def run(self, x: np.ndarray) -> list[np.ndarray]:
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="an SCRFD detector has 9 outputs"):
        ScrfdDetector(_Session(), score_threshold=0.5, nms_iou=0.4)


# ---- the Resize repair ----------------------------------------------------------------------------------------------


def tiny_fixed_resize_model(export_px: int = 4) -> bytes:
    """[1, 1, export_px, export_px] -> Resize to fixed sizes twice as large (nearest) -> Add 1."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "Resize",
                ["x", "roi", "scales", "sizes"],
                ["up"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            ),
            helper.make_node("Add", ["up", "one"], ["y"]),
        ],
        "tiny_resize",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, export_px, export_px])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2 * export_px, 2 * export_px])],
        initializer=[
            numpy_helper.from_array(np.zeros((0,), np.float32), "roi"),
            numpy_helper.from_array(np.zeros((0,), np.float32), "scales"),
            numpy_helper.from_array(np.array([1, 1, 2 * export_px, 2 * export_px], np.int64), "sizes"),
            numpy_helper.from_array(np.ones((1,), np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    data: bytes = model.SerializeToString()
    return data


def test_fixed_resize_sizes_become_scales() -> None:
    model = graph_fixes.parse_model(tiny_fixed_resize_model(), "tiny")
    assert graph_fixes.resize_sizes_to_scales(model) == 1
    (resize,) = [node for node in model.graph.node if node.op_type == "Resize"]
    assert len(resize.input) == 3
    scales = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}[resize.input[2]]
    assert scales.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert "sizes" not in {init.name for init in model.graph.initializer}


def test_repaired_resize_runs_at_any_size_on_both_runtimes() -> None:
    x = np.arange(6 * 10, dtype=np.float32).reshape(1, 1, 6, 10)
    expected = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3) + 1
    fixed = graph_fixes.scale_fixed_resizes(tiny_fixed_resize_model(), "tiny")
    for runtime in ("onnxruntime", "opencv"):
        session = open_session(fixed, runtime, 1, label="tiny", dynamic_spatial=True)
        np.testing.assert_array_equal(session.run(x)[0], expected, err_msg=runtime)


def test_onnxruntime_repair_includes_the_resize_only_for_detectors() -> None:
    model = tiny_fixed_resize_model()
    repaired, changes = graph_fixes.prepare_for_onnxruntime(model, label="tiny", dynamic_spatial=True)
    assert "replaced the fixed output sizes of 1 Resize nodes by scale factors" in changes
    x = np.ones((1, 1, 6, 10), np.float32)
    session = ort.InferenceSession(repaired, providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": x})[0].shape == (1, 1, 12, 20)
    _, changes = graph_fixes.prepare_for_onnxruntime(model, label="tiny", dynamic_spatial=False)
    assert not any("Resize" in c for c in changes)


def test_graph_without_fixed_resize_is_returned_as_is() -> None:
    model = tiny_fixed_resize_model()
    parsed = graph_fixes.parse_model(model, "tiny")
    parsed.graph.node[0].input[3] = ""  # no sizes input: nothing to change
    data = parsed.SerializeToString()
    assert graph_fixes.scale_fixed_resizes(data, "tiny") is data


# ---- packs with an SCRFD detector -----------------------------------------------------------------------------------


def tiny_embedder_model() -> bytes:
    weight = np.random.default_rng(3).normal(0, 1, (3, 128)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "proj"], ["embedding"]),
        ],
        "tiny_embedder",
        inputs=[helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 128])],
        initializer=[numpy_helper.from_array(weight, "proj")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def write_scrfd_pack(folder: Path, *, detector: bytes | None = None, **detector_keys: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    detector_bytes = tiny_scrfd_model() if detector is None else detector
    embedder_bytes = tiny_embedder_model()
    (folder / "scrfd.onnx").write_bytes(detector_bytes)
    (folder / "embedder.onnx").write_bytes(embedder_bytes)
    manifest = {
        "format": 1,
        "id": "tiny-embedder+tiny-scrfd",
        "name": "Tiny SCRFD test pack",
        "version": "0",
        "licence": {"spdx": "LicenseRef-test", "summary": "Test weights.", "url": "https://example.org/licence"},
        "commercial_use": False,
        "detector": {
            "file": "scrfd.onnx",
            "sha256": hashlib.sha256(detector_bytes).hexdigest(),
            "kind": "scrfd",
            "colour_order": "RGB",
            "score_threshold": 0.5,
            "nms_iou": 0.4,
            **detector_keys,
        },
        "embedder": {
            "file": "embedder.onnx",
            "sha256": hashlib.sha256(embedder_bytes).hexdigest(),
            "input_size": [112, 112],
            "colour_order": "RGB",
            "mean": 127.5,
            "std": 127.5,
            "embedding_dim": 128,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_pack_with_an_scrfd_detector_loads_and_the_analyzer_uses_it(tmp_path: Path) -> None:
    folder = write_scrfd_pack(tmp_path / "pack")
    pack = load_pack(str(folder))
    assert pack.detector.kind == "scrfd"
    analyzer = open_analyzer(AnalyzerOptions(pack=str(folder), min_detection_score=None))
    (face,) = analyzer.detect(red_square_image())
    box, _ = expected_face()
    assert face.box.as_tuple() == pytest.approx(box, abs=1e-3)
    result = analyzer.analyze_array(red_square_image(), "red square")
    assert result.faces[0].embedding.model_id == "tiny-embedder+tiny-scrfd"


def test_pack_says_when_a_detector_does_not_match_its_kind(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="a yunet detector has outputs"):
        load_pack(str(write_scrfd_pack(tmp_path / "yunet", kind="yunet")))
    with pytest.raises(ModelPackError, match=r"'kps_8' \(kps_8\) should give 10 numbers per anchor"):
        load_pack(str(write_scrfd_pack(tmp_path / "kps", detector=tiny_scrfd_model(kps_width=8))))
    with pytest.raises(ModelPackError, match="'kind' must be one of yunet, scrfd"):
        load_pack(str(write_scrfd_pack(tmp_path / "retina", kind="retinaface")))


def test_a_detector_file_pack_carries_its_own_threshold_and_floor(tmp_path: Path) -> None:
    pack = load_pack(str(write_scrfd_pack(tmp_path / "own", score_threshold=0.7, fallback_score=0.5)))
    assert (pack.detector.score_threshold, pack.detector.fallback_score) == (0.7, 0.5)
    # A manifest from before the floor existed loads without a fallback.
    assert load_pack(str(write_scrfd_pack(tmp_path / "old"))).detector.fallback_score is None
    analyzer = open_analyzer(AnalyzerOptions(pack=str(tmp_path / "own")))
    assert (analyzer.min_detection_score, analyzer.fallback_score) == (0.7, 0.5)
    with pytest.raises(ModelPackError, match="'score_threshold' must be a number between 0 and 1"):
        load_pack(str(write_scrfd_pack(tmp_path / "one", score_threshold=1.0)))
    with pytest.raises(
        ModelPackError, match=r"'fallback_score' must be a number above 0 and below score_threshold \(0.7\)"
    ):
        load_pack(str(write_scrfd_pack(tmp_path / "above", score_threshold=0.7, fallback_score=0.75)))


def test_builtin_detector_can_only_be_yunet(tmp_path: Path) -> None:
    folder = write_scrfd_pack(tmp_path / "pack")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["detector"] = {"builtin": "scrfd"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelPackError, match="builtin detector 'scrfd' is unknown; expected one of yunet"):
        load_pack(str(folder))


# ---- the install script (no network: the sdists here are made up) ---------------------------------------------------


@pytest.fixture(scope="module")
def install_script() -> ModuleType:
    return load_module("scripts/install_scrfd_pack.py")


def _fake_sdist(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_install_script_takes_only_the_pinned_model_out_of_the_sdist(
    tmp_path: Path, install_script: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_scrfd_model()
    sdist = _fake_sdist(tmp_path / "scrfd.tar.gz", {install_script.SDIST_MEMBER: model, "scrfd-0.3.0/x.py": b"1"})
    with pytest.raises(install_script.InstallError, match="expected 9c162a81"):
        install_script.extract_model(sdist)
    monkeypatch.setattr(install_script, "MODEL_SHA256", hashlib.sha256(model).hexdigest())
    assert install_script.extract_model(sdist) == model
    empty = _fake_sdist(tmp_path / "empty.tar.gz", {"scrfd-0.3.0/README.md": b"hi"})
    with pytest.raises(install_script.InstallError, match=re.escape("has no scrfd-0.3.0/models/scrfd.onnx")):
        install_script.extract_model(empty)
    (tmp_path / "not.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(install_script.InstallError, match="cannot read"):
        install_script.extract_model(tmp_path / "not.tar.gz")


def test_install_script_manifest_is_a_valid_opt_in_pack(install_script: ModuleType) -> None:
    manifest = install_script.MANIFEST
    assert manifest["id"] != "sface-2021dec-int8bq+yunet-2023mar"
    assert manifest["commercial_use"] is False
    assert "non-commercial" in manifest["licence"]["summary"] and "Apache-2.0" in manifest["licence"]["summary"]
    assert manifest["detector"]["kind"] == "scrfd"
    # Same SFace file, from the same package, as the default pack.
    default = json.loads(
        (REPO_ROOT / "src/facetrace/vision/packs/sface-2021dec-int8bq+yunet-2023mar/manifest.json").read_text()
    )
    assert manifest["embedder"] == default["embedder"]
