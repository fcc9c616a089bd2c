"""OnnxFaceAnalyzer end to end: real photos, hostile files, batches, thumbnails, an ArcFace pack added by path."""

import csv
import hashlib
import io
import itertools
import json
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from facetrace.core.errors import ImageDecodeError, ImageTooLargeError
from facetrace.core.ports import FaceAnalyzer
from facetrace.core.types import AnalyzedImage
from facetrace.vision.analyzer import OnnxFaceAnalyzer, open_analyzer
from facetrace.vision.images import decode_image
from facetrace.vision.options import AnalyzerOptions
from facetrace.vision.packs import add_pack


@pytest.fixture(scope="module")
def analyzer() -> Iterator[OnnxFaceAnalyzer]:
    yield open_analyzer(AnalyzerOptions(min_detection_score=None))


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_analyzer_implements_the_port(analyzer: OnnxFaceAnalyzer) -> None:
    assert isinstance(analyzer, FaceAnalyzer)
    assert analyzer.model_id == "sface-2021dec-int8bq+yunet-2023mar"
    assert analyzer.embedding_dim == 128


def test_every_face_has_quality_embedding_and_thumbnail(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    path = datasets / "face_recognition_examples" / "examples" / "two_people.jpg"
    result = analyzer.analyze(path.read_bytes(), "two_people.jpg")
    assert (result.width, result.height) == (1126, 661)
    assert len(result.faces) == 2
    for face in result.faces:
        assert face.embedding.model_id == analyzer.model_id
        assert face.embedding.vector.shape == (128,) and face.embedding.vector.dtype == np.float32
        assert face.quality.flags == () and face.quality.score > 0.8
        thumbnail = Image.open(io.BytesIO(face.thumbnail_jpeg))
        assert thumbnail.format == "JPEG"
        assert max(thumbnail.size) <= 160
        assert max(thumbnail.size) == 160  # the ~150 px box grown by 30% and shrunk to the 160 px cap


def test_batch_embeds_together_and_reports_bad_files_in_place(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    good = datasets / "face_recognition_examples" / "examples" / "obama-480p.jpg"
    group = datasets / "face_recognition_examples" / "examples" / "two_people.jpg"
    jpeg = good.read_bytes()
    items = [
        (jpeg, "good.jpg"),
        (jpeg[: len(jpeg) // 2], "truncated.jpg"),
        (b"", "zero.jpg"),
        (b"Dear reviewer,\nthis is a text file.\n", "letter.jpg"),
        (_png_declaring(30_000, 30_000), "bomb.png"),
        (group.read_bytes(), "group.jpg"),
    ]
    results = analyzer.analyze_batch(items)
    assert isinstance(results[0], AnalyzedImage) and len(results[0].faces) == 1
    for index, name in ((1, "truncated.jpg"), (2, "zero.jpg"), (3, "letter.jpg")):
        assert isinstance(results[index], ImageDecodeError) and not isinstance(results[index], ImageTooLargeError)
        assert str(results[index]).startswith(f"{name}: cannot read as an image")
    assert isinstance(results[4], ImageTooLargeError) and "bomb.png" in str(results[4])
    assert isinstance(results[5], AnalyzedImage) and len(results[5].faces) == 2
    single = analyzer.analyze(jpeg, "good.jpg")
    assert float(single.faces[0].embedding.vector @ results[0].faces[0].embedding.vector) > 0.9999


def test_analyze_raises_typed_errors_naming_the_file(analyzer: OnnxFaceAnalyzer) -> None:
    with pytest.raises(ImageDecodeError, match=r"^notes\.jpg: "):
        analyzer.analyze(b"plain text", "notes.jpg")
    with pytest.raises(ImageTooLargeError, match=r"^huge\.png: "):
        analyzer.analyze(_png_declaring(30_000, 30_000), "huge.png")


def test_analyze_array_on_a_degraded_copy_flags_it(datasets: Path, analyzer: OnnxFaceAnalyzer) -> None:
    path = datasets / "face_recognition_examples" / "examples" / "obama-720p.jpg"
    bgr = decode_image(path.read_bytes(), str(path))
    clean = analyzer.analyze_array(bgr, "clean")
    tiny = cv2.resize(bgr, (160, 90), interpolation=cv2.INTER_AREA)
    degraded = analyzer.analyze_array(cv2.GaussianBlur(tiny, (0, 0), 1.0), "degraded")
    assert len(degraded.faces) == 1
    assert "small" in degraded.faces[0].quality.flags
    assert degraded.faces[0].quality.score < clean.faces[0].quality.score
    assert float(degraded.faces[0].embedding.vector @ clean.faces[0].embedding.vector) > 0.3


def _tiny_arcface_pack(folder: Path) -> Path:
    """An ArcFace-format pack (112x112 RGB, (x - 127.5) / 127.5, 512-d) with a tiny graph standing in for w600k_r50."""
    weight = np.random.default_rng(11).normal(0, 1, (3, 512)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "proj"], ["683"]),
        ],
        "tiny_arcface",
        inputs=[helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        outputs=[helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])],
        initializer=[numpy_helper.from_array(weight, "proj")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = model.SerializeToString()
    folder.mkdir(parents=True)
    (folder / "w600k_tiny.onnx").write_bytes(data)
    manifest = {
        "id": "tiny-arcface+yunet-2023mar",
        "name": "Tiny ArcFace-format pack",
        "version": "0",
        "licence": {"spdx": "LicenseRef-test", "summary": "Test only.", "url": "https://example.org"},
        "commercial_use": False,
        "detector": {"builtin": "yunet"},
        "embedder": {
            "file": "w600k_tiny.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "input_size": [112, 112],
            "colour_order": "RGB",
            "mean": [127.5, 127.5, 127.5],
            "std": [127.5, 127.5, 127.5],
            "embedding_dim": 512,
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_arcface_pack_added_by_path_embeds_a_real_face(datasets: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_pack(_tiny_arcface_pack(tmp_path / "incoming"), data_dir)
    analyzer = open_analyzer(
        AnalyzerOptions(pack="tiny-arcface+yunet-2023mar", data_dir=data_dir, runtime="auto", min_detection_score=None)
    )
    path = datasets / "face_recognition_examples" / "examples" / "obama-480p.jpg"
    result = analyzer.analyze(path.read_bytes(), str(path))
    assert len(result.faces) == 1
    vector = result.faces[0].embedding.vector
    assert result.faces[0].embedding.model_id == "tiny-arcface+yunet-2023mar"
    assert vector.shape == (512,) and float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    # The manifest's normalisation is what the network saw: mean colour of the crop, mapped to [-1, 1].
    crop = analyzer.align(decode_image(path.read_bytes(), str(path)), result.faces[0].detection)
    rgb_mean = (crop[:, :, ::-1].reshape(-1, 3).astype(np.float64).mean(axis=0) - 127.5) / 127.5
    weight = np.random.default_rng(11).normal(0, 1, (3, 512)).astype(np.float32)
    expected = rgb_mean @ weight
    assert float(vector @ (expected / np.linalg.norm(expected))) > 0.9999


def test_concurrent_analyses_match_one_at_a_time(lfw: Path) -> None:
    """Two analyses in the models at once (an OpenCV embedder gets a net for each): every face, box and embedding is
    what the same photos give one at a time."""
    with (lfw / "manifest.csv").open(newline="") as handle:
        photos = [lfw / row["path"] for row in itertools.islice(csv.DictReader(handle), 12)]
    items = [(p.read_bytes(), p.name) for p in photos]
    assert len(items) == 12
    concurrent = open_analyzer(AnalyzerOptions(concurrent_analyses=2))
    alone = [open_analyzer(AnalyzerOptions(concurrent_analyses=1)).analyze(data, name) for data, name in items]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda item: concurrent.analyze(*item), items * 2))
    for got, want in zip(together, alone * 2, strict=True):
        assert len(got.faces) == len(want.faces) > 0
        for a, b in zip(got.faces, want.faces, strict=True):
            assert a.detection.box == b.detection.box
            np.testing.assert_allclose(a.embedding.vector, b.embedding.vector, atol=1e-6)
