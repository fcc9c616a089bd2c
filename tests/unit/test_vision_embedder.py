"""The manifest-driven embedder on tiny ONNX graphs run by the real ONNX Runtime."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from facetrace.core.errors import ModelPackError
from facetrace.vision.embedders.manifest_embedder import ManifestEmbedder
from facetrace.vision.sessions import OnnxRuntimeSession


def _channel_means_model(batch_one_only: bool = False, dim: int = 3) -> bytes:
    """[N, 3, 8, 8] -> per-channel means, projected by an identity-like matrix to `dim` numbers.

    batch_one_only reshapes to [1, -1] the way some exports hard-code the batch, which breaks batches > 1.
    """
    projection = np.eye(3, dim, dtype=np.float32)
    shape = np.array([1, -1] if batch_one_only else [0, -1], dtype=np.int64)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "proj"], ["y"]),
        ],
        "means",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(projection, "proj"), numpy_helper.from_array(shape, "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _embedder(
    model: bytes,
    *,
    colour_order: str = "BGR",
    mean: float = 0.0,
    std: float = 1.0,
    embedding_dim: int = 3,
    flip_tta: bool = False,
    max_batch: int = 32,
) -> ManifestEmbedder:
    session = OnnxRuntimeSession(model, threads=1, label="means", dynamic_spatial=False)
    return ManifestEmbedder(
        session,
        input_width=8,
        input_height=8,
        colour_order=colour_order,
        mean=(mean, mean, mean),
        std=(std, std, std),
        embedding_dim=embedding_dim,
        flip_tta=flip_tta,
        max_batch=max_batch,
    )


def _crop(b: int, g: int, r: int) -> np.ndarray:
    crop = np.zeros((8, 8, 3), np.uint8)
    crop[:, :] = (b, g, r)
    return crop


def test_colour_order_mean_and_std_come_from_the_manifest() -> None:
    crop = _crop(10, 20, 200)
    bgr = _embedder(_channel_means_model()).preprocess([crop])
    assert bgr[0, :, 0, 0].tolist() == [10, 20, 200]
    rgb = _embedder(_channel_means_model(), colour_order="RGB", mean=127.5, std=127.5).preprocess([crop])
    np.testing.assert_allclose(rgb[0, :, 0, 0], [(200 - 127.5) / 127.5, (20 - 127.5) / 127.5, (10 - 127.5) / 127.5])


def test_embeddings_are_unit_length_rows() -> None:
    vectors = _embedder(_channel_means_model(), colour_order="RGB").embed([_crop(0, 0, 30), _crop(0, 40, 0)])
    np.testing.assert_allclose(vectors, [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_flip_tta_averages_with_the_mirror() -> None:
    crop = _crop(10, 20, 30)
    crop[:, :4] = (90, 20, 30)  # left half bluer; a mean is mirror-invariant, so TTA must not change the result
    plain = _embedder(_channel_means_model()).embed([crop])
    tta = _embedder(_channel_means_model(), flip_tta=True).embed([crop])
    np.testing.assert_allclose(plain, tta, atol=1e-6)


def test_a_graph_that_only_takes_batch_one_falls_back_to_one_at_a_time() -> None:
    embedder = _embedder(_channel_means_model(batch_one_only=True), max_batch=4)
    crops = [_crop(i + 1, 2 * i + 1, 5) for i in range(6)]
    vectors = embedder.embed(crops)
    expected = np.array([[i + 1, 2 * i + 1, 5] for i in range(6)], np.float32)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_wrong_output_size_is_a_model_pack_error() -> None:
    with pytest.raises(ModelPackError, match="embedding_dim 5"):
        _embedder(_channel_means_model(dim=4), embedding_dim=5).embed([_crop(1, 2, 3)])


def test_an_all_zero_embedding_is_refused() -> None:
    with pytest.raises(ModelPackError, match="all-zero"):
        _embedder(_channel_means_model()).embed([_crop(0, 0, 0)])


def test_empty_input_gives_an_empty_matrix() -> None:
    assert _embedder(_channel_means_model()).embed(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 3)
