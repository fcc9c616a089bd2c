"""Convert MediaPipe's face landmark model (.tflite) to ONNX, once, at install time: the one module that reads TFLite.

The face mesh network is a plain convolutional net of seven operator kinds (CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD,
MAX_POOL_2D, PAD, and DEQUANTIZE of its float16 weights), so a small converter is enough and facetrace needs no TFLite
runtime: the ONNX graph runs on the ONNX Runtime the detectors already use (docs/decisions/0005). The converted graph
takes an NCHW float32 batch of one RGB 192x192 image scaled to [0, 1] and returns the 468 points (1, 1404: x, y, z in
input pixels) and the face flag's logit (1, 1), as MediaPipe's graph reads them. Any other operator, data type or
option is refused with its name rather than converted approximately. The output is deterministic: the same .tflite
bytes always give the same ONNX bytes, so the installed file is pinned by its sha256 (vision/landmarks/face_mesh.py).

tflite (the generated flatbuffer reader of the TFLite schema, Apache-2.0) is imported here only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

ONNX_OPSET = 13
INPUT_NAME = "image"
OUTPUT_NAMES = ("landmarks", "face_flag")

_TENSOR_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
}
_PADDING_SAME = tflite.Padding.SAME
_ACTIVATIONS = {tflite.ActivationFunctionType.NONE: None, tflite.ActivationFunctionType.RELU: "Relu"}


class ConversionError(ValueError):
    """The .tflite file holds something this converter does not translate exactly."""


@dataclass
class _Graph:
    """The ONNX graph being built: nodes, initializers, and each TFLite tensor's ONNX name (activations NCHW)."""

    nodes: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto]
    names: dict[int, str]
    shapes: dict[int, tuple[int, ...]]  # NHWC shapes of TFLite activations, as the file declares them
    counter: int = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, stem: str, array: npt.NDArray[np.generic]) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name


def convert_face_landmark(tflite_bytes: bytes) -> bytes:
    """The ONNX model (serialised) equivalent to MediaPipe's face_landmark.tflite; raises ConversionError."""
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    if model.SubgraphsLength() != 1:
        raise ConversionError(f"expected one subgraph, the model has {model.SubgraphsLength()}")
    subgraph = model.Subgraphs(0)
    inputs, outputs = subgraph.InputsAsNumpy().tolist(), subgraph.OutputsAsNumpy().tolist()
    if len(inputs) != 1 or len(outputs) != len(OUTPUT_NAMES):
        raise ConversionError(f"expected 1 input and 2 outputs, the model has {len(inputs)} and {len(outputs)}")
    input_shape = tuple(int(d) for d in subgraph.Tensors(inputs[0]).ShapeAsNumpy())
    if len(input_shape) != 4 or input_shape[0] != 1 or input_shape[3] != 3:
        raise ConversionError(f"expected an input of shape [1, height, width, 3], got {list(input_shape)}")
    graph = _Graph(nodes=[], initializers=[], names={inputs[0]: INPUT_NAME}, shapes={inputs[0]: input_shape})
    constants = _constants(model, subgraph)
    for index in range(subgraph.OperatorsLength()):
        _convert_operator(model, subgraph, subgraph.Operators(index), graph, constants)
    final: list[onnx.ValueInfoProto] = []
    for tensor, name in zip(outputs, OUTPUT_NAMES, strict=True):
        size = math.prod(graph.shapes[tensor][1:])
        shape = graph.constant("shape", np.array([1, size], dtype=np.int64))
        graph.nodes.append(helper.make_node("Reshape", [graph.names[tensor], shape], [name]))
        final.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, size]))
    _, height, width, channels = input_shape
    onnx_graph = helper.make_graph(
        graph.nodes,
        "mediapipe_face_landmark",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, channels, height, width])],
        final,
        graph.initializers,
    )
    converted = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="facetrace.vision.landmarks.tflite_onnx",
    )
    converted.ir_version = 8
    onnx.checker.check_model(converted)
    serialised: bytes = converted.SerializeToString(deterministic=True)
    return serialised


def _constants(model: tflite.Model, subgraph: tflite.SubGraph) -> dict[int, npt.NDArray[np.generic]]:
    """Every tensor backed by a buffer, as a numpy array of its declared type and shape."""
    constants: dict[int, npt.NDArray[np.generic]] = {}
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            continue
        dtype = _TENSOR_DTYPES.get(tensor.Type())
        if dtype is None or (tensor.Quantization() is not None and tensor.Quantization().ScaleLength()):
            raise ConversionError(f"tensor {tensor.Name()!r}: type {tensor.Type()} or quantisation not supported")
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        constants[index] = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
    return constants


def _operator_name(model: tflite.Model, operator: tflite.Operator) -> str:
    code = model.OperatorCodes(operator.OpcodeIndex())
    number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    names = {value: str(key) for key, value in vars(tflite.BuiltinOperator).items() if not key.startswith("_")}
    return names.get(number, str(number))


def _convert_operator(
    model: tflite.Model,
    subgraph: tflite.SubGraph,
    operator: tflite.Operator,
    graph: _Graph,
    constants: dict[int, npt.NDArray[np.generic]],
) -> None:
    kind = _operator_name(model, operator)
    ins = operator.InputsAsNumpy().tolist()
    (out,) = operator.OutputsAsNumpy().tolist()
    out_shape = tuple(int(d) for d in subgraph.Tensors(out).ShapeAsNumpy())
    if kind == "DEQUANTIZE":
        if ins[0] not in constants:
            raise ConversionError("DEQUANTIZE of a computed tensor is not supported")
        constants[out] = constants[ins[0]].astype(np.float32)
        return
    graph.shapes[out] = out_shape
    name = graph.fresh(kind.lower())
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _convolution(kind, operator, ins, out, name, graph, constants)
    elif kind == "MAX_POOL_2D":
        options = _options(operator, tflite.Pool2DOptions)
        kernel = (options.FilterHeight(), options.FilterWidth())
        strides = (options.StrideH(), options.StrideW())
        pads = _pads(graph.shapes[ins[0]], kernel, strides, options.Padding())
        graph.nodes.append(
            helper.make_node("MaxPool", [graph.names[ins[0]]], [name], kernel_shape=kernel, strides=strides, pads=pads)
        )
        _activate(options.FusedActivationFunction(), out, name, graph)
    elif kind == "ADD":
        options = _options(operator, tflite.AddOptions)
        graph.nodes.append(helper.make_node("Add", [_operand(i, graph, constants) for i in ins], [name]))
        _activate(options.FusedActivationFunction(), out, name, graph)
    elif kind == "PRELU":
        slope = np.asarray(constants[ins[1]], dtype=np.float32).reshape(-1, 1, 1)  # per channel, NCHW broadcast
        graph.nodes.append(helper.make_node("PRelu", [graph.names[ins[0]], graph.constant("slope", slope)], [name]))
        graph.names[out] = name
    elif kind == "PAD":
        paddings = np.asarray(constants[ins[1]], dtype=np.int64)  # (4, 2) NHWC begin/end
        nchw = paddings[[0, 3, 1, 2]]
        widths = graph.constant("pads", np.concatenate([nchw[:, 0], nchw[:, 1]]))
        graph.nodes.append(helper.make_node("Pad", [graph.names[ins[0]], widths], [name], mode="constant"))
        graph.names[out] = name
    else:
        raise ConversionError(f"operator {kind} is not supported by this converter")


def _convolution(
    kind: str,
    operator: tflite.Operator,
    ins: list[int],
    out: int,
    name: str,
    graph: _Graph,
    constants: dict[int, npt.NDArray[np.generic]],
) -> None:
    depthwise = kind == "DEPTHWISE_CONV_2D"
    options = _options(operator, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    if (options.DilationHFactor(), options.DilationWFactor()) != (1, 1):
        raise ConversionError(f"{kind} with dilation is not supported")
    weights = np.asarray(constants[ins[1]], dtype=np.float32)
    input_shape = graph.shapes[ins[0]]
    channels = input_shape[3]
    if depthwise:  # (1, kh, kw, channels * multiplier) -> (channels * multiplier, 1, kh, kw), one group per channel
        weights = weights.transpose(3, 0, 1, 2)
        groups = channels
    else:  # (out, kh, kw, in) -> (out, in, kh, kw)
        weights = weights.transpose(0, 3, 1, 2)
        groups = 1
    kernel = (int(weights.shape[2]), int(weights.shape[3]))
    strides = (options.StrideH(), options.StrideW())
    operands = [graph.names[ins[0]], graph.constant("weights", weights)]
    if len(ins) > 2 and ins[2] >= 0:
        operands.append(graph.constant("bias", np.asarray(constants[ins[2]], dtype=np.float32)))
    graph.nodes.append(
        helper.make_node(
            "Conv",
            operands,
            [name],
            kernel_shape=kernel,
            strides=strides,
            pads=_pads(input_shape, kernel, strides, options.Padding()),
            group=groups,
        )
    )
    _activate(options.FusedActivationFunction(), out, name, graph)


def _options(operator: tflite.Operator, options_class: type) -> Any:  # the flatbuffer accessors are untyped
    table = operator.BuiltinOptions()
    if table is None:
        raise ConversionError(f"operator without its {options_class.__name__}")
    options = options_class()
    options.Init(table.Bytes, table.Pos)
    return options


def _pads(shape: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, int], padding: int) -> list[int]:
    """ONNX pads (top, left, bottom, right) for TFLite's padding of an NHWC input (SAME: the odd pixel at the end)."""
    if padding != _PADDING_SAME:
        return [0, 0, 0, 0]
    begin, end = [], []
    for size, k, stride in zip(shape[1:3], kernel, strides, strict=True):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _operand(tensor: int, graph: _Graph, constants: dict[int, npt.NDArray[np.generic]]) -> str:
    if tensor in graph.names:
        return graph.names[tensor]
    if tensor in constants:
        raise ConversionError("ADD with a constant operand is not supported")
    raise ConversionError(f"tensor {tensor} is used before it is computed")


def _activate(function: int, out: int, name: str, graph: _Graph) -> None:
    if function not in _ACTIVATIONS:
        raise ConversionError(f"fused activation {function} is not supported")
    activation = _ACTIVATIONS[function]
    if activation is None:
        graph.names[out] = name
        return
    activated = graph.fresh(activation.lower())
    graph.nodes.append(helper.make_node(activation, [name], [activated]))
    graph.names[out] = activated
