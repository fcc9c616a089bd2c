"""Read ONNX graphs, and repair shipped files in memory so ONNX Runtime can run them. Nothing here writes to disk.

The default pack's files are OpenCV Zoo's int8 block-quantised builds. ONNX Runtime refuses them as shipped:
- SFace declares its weights (and two unused scalars) as graph inputs, so ORT asks the caller to feed them;
- both files carry DequantizeLinear nodes with a block_size attribute on per-tensor scales, which ORT rejects
  ("block_size must be 0 for per-tensor quantization").
Folding each constant DequantizeLinear into an fp32 initializer, dropping the inputs no node reads, and declaring the
batch (and for detectors the spatial) dimensions dynamic gives an equivalent fp32 graph ORT accepts.

Detectors exported at one input size can also carry that size inside the graph: SCRFD's FPN upsamples with Resize
nodes given fixed output `sizes` (40x40 and 80x80 for its 640x640 export), so any other input breaks the lateral Add.
For a detector those become the equivalent `scales` (1, 1, 2, 2), which hold at every input size.

The repair is applied to the bytes whose sha256 the pack verified, never to a copy on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from facetrace.core.errors import ModelPackError

log = logging.getLogger(__name__)

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...] | None  # None when the graph does not declare a rank


@dataclass(frozen=True)
class GraphSummary:
    """What a model takes and returns, read from its graph without running it."""

    inputs: tuple[TensorSpec, ...]  # data inputs only: read by a node and not backed by an initializer
    outputs: tuple[TensorSpec, ...]
    dequantize_nodes: int


def parse_model(model_bytes: bytes, label: str) -> onnx.ModelProto:
    """Parse ONNX bytes; raises ModelPackError naming label when they are not an ONNX model."""
    try:
        model = onnx.load_model_from_string(model_bytes)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelPackError(f"{label} is not an ONNX model: it does not parse as one ({exc})") from None
    # Protobuf happily parses many byte strings into a mostly empty message, so check there is a real graph.
    if not model.opset_import or not model.graph.node or not model.graph.output:
        raise ModelPackError(f"{label} is not an ONNX model: no operator set, nodes or outputs in it")
    return model


def summarize(model: onnx.ModelProto) -> GraphSummary:
    graph = model.graph
    inputs = tuple(_tensor_spec(value) for value in _data_inputs(graph))
    outputs = tuple(_tensor_spec(value) for value in graph.output)
    dq = sum(1 for node in graph.node if node.op_type == "DequantizeLinear")
    return GraphSummary(inputs=inputs, outputs=outputs, dequantize_nodes=dq)


def infer_output_shapes(model: onnx.ModelProto) -> tuple[TensorSpec, ...]:
    """Output shapes after ONNX shape inference (for graphs that do not declare them)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; the caller falls back to running the model
        return tuple(_tensor_spec(value) for value in model.graph.output)
    return tuple(_tensor_spec(value) for value in inferred.graph.output)


def fold_constant_dequantize(model: onnx.ModelProto) -> int:
    """Replace every DequantizeLinear whose inputs are all initializers by an fp32 initializer; returns the count."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    kept_nodes = []
    folded = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(name in initializers for name in node.input if name):
            folded.append(numpy_helper.from_array(_dequantize(node, initializers), node.output[0]))
        else:
            kept_nodes.append(node)
    if not folded:
        return 0
    del graph.node[:]
    graph.node.extend(kept_nodes)
    graph.initializer.extend(folded)
    _drop_unused_initializers(model)
    return len(folded)


def drop_unused_inputs(model: onnx.ModelProto) -> int:
    """Remove graph inputs no node reads, and inputs that merely re-declare an initializer; returns the count."""
    graph = model.graph
    keep = _data_inputs(graph)
    dropped = len(graph.input) - len(keep)
    if dropped:
        del graph.input[:]
        graph.input.extend(keep)
    return dropped


def make_dims_dynamic(model: onnx.ModelProto, *, spatial: bool) -> None:
    """Declare the batch dimension of inputs and every output dimension symbolic (and H, W too when spatial).

    Stale intermediate shapes (value_info) are dropped so the runtime re-infers them for the real input size.
    """
    graph = model.graph
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        for index, dim in enumerate(dims):
            if index == 0 or (spatial and len(dims) == 4 and index >= 2):
                dim.ClearField("dim_value")
                dim.dim_param = f"{value.name}_d{index}"
    for value in graph.output:
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            dim.ClearField("dim_value")
            dim.dim_param = f"{value.name}_d{index}"
    del graph.value_info[:]


def resize_sizes_to_scales(model: onnx.ModelProto) -> int:
    """Give every Resize with a constant `sizes` input the equivalent constant `scales` instead; returns the count.

    The factors are the fixed sizes divided by the Resize's input shape at the graph's declared input size (from ONNX
    shape inference), so this must run before the input dimensions are made dynamic. A Resize whose input shape
    cannot be inferred is left alone.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    candidates = [
        node
        for node in graph.node
        if node.op_type == "Resize" and len(node.input) >= 4 and node.input[3] in initializers
    ]
    if not candidates:
        return 0
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort; without shapes nothing is changed
        return 0
    shapes = {value.name: _tensor_spec(value).shape for value in inferred.graph.value_info}
    shapes.update({value.name: _tensor_spec(value).shape for value in inferred.graph.input})
    changed = 0
    for node in candidates:
        sizes = numpy_helper.to_array(initializers[node.input[3]]).astype(np.float64)
        shape = shapes.get(node.input[0])
        if shape is None or len(shape) != sizes.size or not all(isinstance(d, int) and d > 0 for d in shape):
            continue
        scales = (sizes / np.asarray(shape, dtype=np.float64)).astype(np.float32)
        scales_name = f"{node.name or node.output[0]}_scales"
        graph.initializer.append(numpy_helper.from_array(scales, scales_name))
        roi = node.input[1]
        # Opset 11 requires the roi and scales inputs; sizes must then be absent (at most one of the two is given).
        del node.input[1:]
        node.input.extend([roi, scales_name])
        changed += 1
    if changed:
        _drop_unused_initializers(model)
    return changed


def scale_fixed_resizes(model_bytes: bytes, label: str) -> bytes:
    """The model with resize_sizes_to_scales applied, or the same bytes when it has no fixed-size Resize.

    For detectors on either runtime: OpenCV's dnn reads such a graph at any input size without complaint but keeps
    part of the fixed geometry, so its outputs are silently wrong at any other size (SCRFD at 320x480: box distances
    off by up to 1.5 strides); with scales it matches ONNX Runtime to 1e-5.
    """
    model = parse_model(model_bytes, label)
    changed = resize_sizes_to_scales(model)
    if not changed:
        return model_bytes
    log.info("%s: replaced the fixed output sizes of %d Resize nodes by scale factors (in memory)", label, changed)
    fixed: bytes = model.SerializeToString()
    return fixed


def prepare_for_onnxruntime(model_bytes: bytes, *, label: str, dynamic_spatial: bool) -> tuple[bytes, list[str]]:
    """The in-memory repair described in the module docstring; returns (bytes to load, what was changed)."""
    model = parse_model(model_bytes, label)
    changes: list[str] = []
    folded = fold_constant_dequantize(model)
    if folded:
        changes.append(f"folded {folded} constant DequantizeLinear nodes to fp32")
    dropped = drop_unused_inputs(model)
    if dropped:
        changes.append(f"dropped {dropped} graph inputs no node reads or that are initializers")
    if dynamic_spatial:
        resized = resize_sizes_to_scales(model)
        if resized:
            changes.append(f"replaced the fixed output sizes of {resized} Resize nodes by scale factors")
    make_dims_dynamic(model, spatial=dynamic_spatial)
    changes.append("made the batch dimension dynamic" + (" (and height, width)" if dynamic_spatial else ""))
    return model.SerializeToString(), changes


def _dequantize(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> npt.NDArray[np.float32]:
    quantized = numpy_helper.to_array(initializers[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        zero_point = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32)
    else:
        zero_point = np.zeros_like(scale)
    attributes = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    axis = int(attributes.get("axis", 1))
    block_size = int(attributes.get("block_size", 0))
    if scale.size == 1:
        # Per-tensor: the one case where a block_size attribute is meaningless (and what ORT trips over).
        values = (quantized - zero_point.reshape(())) * scale.reshape(())
    elif quantized.ndim == 0:
        raise ModelPackError(f"DequantizeLinear {node.name!r} has a scalar input but {scale.size} scales")
    else:
        axis = axis % quantized.ndim
        if block_size > 0:
            # Blocked: scale has ceil(n / block_size) entries along axis; the last block may be short.
            scale_full = np.repeat(scale, block_size, axis=axis)
            zero_full = np.repeat(zero_point.reshape(scale.shape), block_size, axis=axis)
            cut = [slice(None)] * quantized.ndim
            cut[axis] = slice(0, quantized.shape[axis])
            values = (quantized - zero_full[tuple(cut)]) * scale_full[tuple(cut)]
        else:
            # Per-axis: one scale per index along axis.
            shape = [1] * quantized.ndim
            shape[axis] = -1
            values = (quantized - zero_point.reshape(shape)) * scale.reshape(shape)
    return np.ascontiguousarray(values, dtype=np.float32)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    needed = _consumed_names(graph) | {value.name for value in graph.output}
    keep = [init for init in graph.initializer if init.name in needed]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _data_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs a caller must feed: read by some node, not an initializer, not produced by a node."""
    initializers = {init.name for init in graph.initializer}
    produced = {name for node in graph.node for name in node.output}
    consumed = _consumed_names(graph)
    return [
        value
        for value in graph.input
        if value.name in consumed and value.name not in initializers and value.name not in produced
    ]


def _consumed_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read by a node, including nodes inside control-flow subgraphs."""
    names: set[str] = set()
    for node in graph.node:
        names.update(name for name in node.input if name)
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                names |= _consumed_names(sub)
    return names


def _subgraphs(attr: onnx.AttributeProto) -> Iterable[onnx.GraphProto]:
    if attr.type == onnx.AttributeProto.GRAPH:
        yield attr.g
    elif attr.type == onnx.AttributeProto.GRAPHS:
        yield from attr.graphs


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return TensorSpec(value.name, None)
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return TensorSpec(value.name, tuple(dims))
