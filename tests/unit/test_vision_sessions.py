"""Graph repair and inference sessions, on tiny ONNX graphs built here with onnx.helper."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facetrace.core.errors import ConfigError, ModelPackError
from facetrace.vision import graph_fixes
from facetrace.vision.sessions import ModelSession, OnnxRuntimeSession, OpenCVSession, open_session

RNG = np.random.default_rng(7)


def _quantised_gemm_model() -> tuple[bytes, np.ndarray, np.ndarray]:
    """y = x @ W.T + b with W block-quantised (axis 1, block 4, last block short) and b per-tensor quantised with a
    stray block_size attribute, as in OpenCV Zoo's int8bq files. Also declares a dangling input and an initializer as
    an input. Returns (model bytes, W, b) with W and b the exact dequantised values."""
    w_q = RNG.integers(-127, 128, (4, 6), dtype=np.int8)
    w_scale = RNG.uniform(0.01, 0.1, (4, 2)).astype(np.float32)  # ceil(6 / 4) = 2 blocks per row
    w_zero = RNG.integers(-3, 4, (4, 2), dtype=np.int8)
    b_q = RNG.integers(-127, 128, (4,), dtype=np.int8)
    b_scale = np.array(0.05, dtype=np.float32)
    b_zero = np.array(2, dtype=np.int8)
    initializers = [
        numpy_helper.from_array(w_q, "w_q"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(w_zero, "w_zero"),
        numpy_helper.from_array(b_q, "b_q"),
        numpy_helper.from_array(b_scale, "b_scale"),
        numpy_helper.from_array(b_zero, "b_zero"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=1, block_size=4),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b"], axis=0, block_size=64),
        helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "quantised_gemm",
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6]),
            helper.make_tensor_value_info("dangling", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("w_scale", TensorProto.FLOAT, [4, 2]),
        ],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    w = (w_q.astype(np.float32) - np.repeat(w_zero, 4, axis=1)[:, :6]) * np.repeat(w_scale, 4, axis=1)[:, :6]
    b = (b_q.astype(np.float32) - 2.0) * 0.05
    return model.SerializeToString(), w, b


def _conv_model() -> bytes:
    weight = RNG.normal(0, 0.2, (2, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_shipped_style_quantised_graph_fails_in_onnxruntime_as_is() -> None:
    data, _, _ = _quantised_gemm_model()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with pytest.raises(Exception):  # noqa: B017 - ORT's exception types have no public common base
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        session.run(None, {"x": np.zeros((1, 6), np.float32), "dangling": np.zeros(1, np.float32)})


def test_fold_gives_exactly_the_dequantised_weights() -> None:
    data, w, b = _quantised_gemm_model()
    model = graph_fixes.parse_model(data, "tiny")
    assert graph_fixes.fold_constant_dequantize(model) == 2
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    np.testing.assert_allclose(weights["w"], w, rtol=1e-6)
    np.testing.assert_allclose(weights["b"], b, rtol=1e-6)
    assert not {"w_q", "w_scale", "b_q"} & set(weights)  # quantised copies are gone
    assert graph_fixes.drop_unused_inputs(model) == 2
    assert [value.name for value in model.graph.input] == ["x"]


def test_repaired_graph_runs_batched_in_onnxruntime() -> None:
    data, w, b = _quantised_gemm_model()
    session = OnnxRuntimeSession(data, threads=1, label="tiny", dynamic_spatial=False)
    x = RNG.normal(size=(3, 6)).astype(np.float32)  # batch 3 although the file declares batch 1
    (y,) = session.run(x)
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-5, atol=1e-5)
    assert session.input_name == "x"
    assert session.output_names == ("y",)
    assert isinstance(session, ModelSession)


def test_opencv_and_onnxruntime_agree() -> None:
    data = _conv_model()
    x = RNG.uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    cv_out = OpenCVSession(data, threads=1, label="conv").run(x)[0]
    ort_out = OnnxRuntimeSession(data, threads=1, label="conv", dynamic_spatial=True).run(x)[0]
    assert cv_out.shape == ort_out.shape == (2, 2, 8, 8)
    np.testing.assert_allclose(cv_out, ort_out, rtol=1e-4, atol=1e-3)


def test_auto_follows_the_preferred_runtime() -> None:
    data = _conv_model()
    assert open_session(data, "auto", preferred_runtime="opencv").runtime == "opencv"
    assert open_session(data, "auto", preferred_runtime="onnxruntime").runtime == "onnxruntime"
    assert open_session(data, "onnxruntime", preferred_runtime="opencv").runtime == "onnxruntime"


def test_bad_runtime_settings_are_config_errors() -> None:
    data = _conv_model()
    with pytest.raises(ConfigError, match="runtime must be one of"):
        open_session(data, "tensorrt")
    with pytest.raises(ConfigError, match="threads"):
        open_session(data, "onnxruntime", 0)


@pytest.mark.parametrize("junk", [b"hello, I am a text file\n", b"\x00" * 100, bytes(range(256)) * 4])
def test_not_an_onnx_file_is_a_model_pack_error(junk: bytes) -> None:
    with pytest.raises(ModelPackError, match=r"junk\.onnx is not an ONNX model"):
        open_session(junk, "onnxruntime", label="junk.onnx")


def test_make_dims_dynamic_marks_batch_and_spatial_dims() -> None:
    model = onnx.load_model_from_string(_conv_model())
    graph_fixes.make_dims_dynamic(model, spatial=True)
    summary = graph_fixes.summarize(model)
    shape = summary.inputs[0].shape
    assert shape is not None
    assert isinstance(shape[0], str) and shape[1] == 3 and isinstance(shape[2], str) and isinstance(shape[3], str)


def test_opencv_session_runs_concurrent_callers_on_nets_of_their_own() -> None:
    """Up to `copies` threads run the model at once, each on a net of its own, with the single net's results."""
    data = _conv_model()
    session = OpenCVSession(data, threads=1, label="conv", copies=3)
    inputs = [RNG.uniform(0, 255, (1, 3, 32, 32)).astype(np.float32) for _ in range(24)]
    expected = [OpenCVSession(data, threads=1, label="conv").run(x)[0] for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(lambda x: session.run(x)[0], inputs))
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert 1 <= session.nets <= 3


def test_opencv_session_lends_at_most_copies_nets() -> None:
    session = OpenCVSession(_conv_model(), threads=1, label="conv", copies=2)
    first, second = session._borrow(), session._borrow()  # two callers inside the model: a second net is made
    assert first is not second and session.nets == 2
    third: list[object] = []
    waiting = threading.Thread(target=lambda: third.append(session._borrow()))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not third  # a third caller waits rather than making a third net
    session._idle.put(first)
    waiting.join(5)
    assert third == [first] and session.nets == 2


def test_opencv_session_needs_a_copy() -> None:
    with pytest.raises(ConfigError, match="copies must be at least 1"):
        OpenCVSession(_conv_model(), threads=1, label="conv", copies=0)
    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        open_session(_conv_model(), "opencv", concurrency=0)
