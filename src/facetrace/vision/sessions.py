"""Inference sessions: the one module that touches ONNX Runtime or OpenCV's dnn module.

A ModelSession takes one NCHW float32 batch and returns the model's outputs in the order the graph declares them.
Two runtimes implement it; which is faster depends on the model (measured in docs/models.md), so a pack's manifest
names a preferred runtime per model and runtime="auto" follows it.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from facetrace.core.errors import ConfigError, ModelPackError
from facetrace.vision.graph_fixes import parse_model, prepare_for_onnxruntime, summarize

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "opencv", "onnxruntime")
CONCRETE_RUNTIMES = ("opencv", "onnxruntime")
DEFAULT_ORT_PROVIDERS = ("CPUExecutionProvider",)
# ORT prints a warning per initializer listed as a graph input; our repair removes the cause, so show errors only.
_ORT_LOG_ERRORS_ONLY = 3

Array = npt.NDArray[np.float32]


@runtime_checkable
class ModelSession(Protocol):
    """One loaded model. run() takes an NCHW float32 batch and returns the outputs in the graph's order."""

    @property
    def runtime(self) -> str: ...

    @property
    def input_name(self) -> str: ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    def run(self, x: Array) -> list[Array]: ...


class OnnxRuntimeSession:
    """ONNX Runtime on the repaired in-memory graph (see graph_fixes). run() is thread-safe (ORT's guarantee)."""

    runtime = "onnxruntime"

    def __init__(
        self,
        model_bytes: bytes,
        *,
        threads: int,
        label: str,
        dynamic_spatial: bool,
        providers: tuple[str, ...] = DEFAULT_ORT_PROVIDERS,
    ) -> None:
        fixed, changes = prepare_for_onnxruntime(model_bytes, label=label, dynamic_spatial=dynamic_spatial)
        options = ort.SessionOptions()
        # intra-op threads are the knob that matters on CPU; one inter-op thread keeps the total predictable when
        # several worker processes share a machine.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = _ORT_LOG_ERRORS_ONLY
        try:
            self._session = ort.InferenceSession(fixed, sess_options=options, providers=list(providers))
        except Exception as exc:  # ORT raises its own exception types (InvalidGraph, Fail, ...) without a common base
            raise ModelPackError(f"ONNX Runtime cannot load {label}: {exc}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelPackError(f"{label} must take exactly one input tensor, it takes {len(inputs)}: {names}")
        self._input_name = str(inputs[0].name)
        self._output_names = tuple(str(o.name) for o in self._session.get_outputs())
        log.info(
            "%s: ONNX Runtime %s, providers %s, intra_op_num_threads=%d, inter_op_num_threads=1; in-memory repair: %s",
            label,
            ort.__version__,
            ",".join(self._session.get_providers()),
            threads,
            "; ".join(changes),
        )

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names

    def run(self, x: Array) -> list[Array]:
        outputs = self._session.run(None, {self._input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return [np.asarray(o, dtype=np.float32) for o in outputs]


class OpenCVSession:
    """OpenCV's dnn module on the file exactly as shipped (it reads int8 block-quantised graphs itself).

    A cv2.dnn.Net is not thread-safe, so each run() borrows a net of its own: up to `copies` nets, made as concurrent
    callers need them (the first at once), so that `copies` threads run the model at the same time. One net behind a
    lock held the service's embeddings to one core (docs/benchmarks.md, "Using the cores").
    """

    runtime = "opencv"

    def __init__(self, model_bytes: bytes, *, threads: int, label: str, copies: int = 1) -> None:
        if copies < 1:
            raise ConfigError(f"copies must be at least 1, not {copies}")
        summary = summarize(parse_model(model_bytes, label))
        if len(summary.inputs) != 1:
            names = ", ".join(i.name for i in summary.inputs)
            raise ModelPackError(f"{label} must take exactly one input tensor, it takes {len(summary.inputs)}: {names}")
        self._input_name = summary.inputs[0].name
        self._output_names = tuple(o.name for o in summary.outputs)
        self._model = np.frombuffer(model_bytes, dtype=np.uint8)
        self._label = label
        # OpenCV's thread pool is process-wide: this also sets it for every other OpenCV call in the process.
        cv2.setNumThreads(threads)
        self._idle: queue.LifoQueue[cv2.dnn.Net] = queue.LifoQueue()
        self._idle.put(self._read_net())
        self._made = 1
        self.copies = copies
        self._making = threading.Lock()
        log.info(
            "%s: OpenCV %s dnn, cv2.setNumThreads(%d) (process-wide), up to %d concurrent net(s)",
            label,
            cv2.__version__,
            threads,
            copies,
        )

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names

    @property
    def nets(self) -> int:
        """How many nets were made so far (at most copies)."""
        return self._made

    def run(self, x: Array) -> list[Array]:
        blob = np.ascontiguousarray(x, dtype=np.float32)
        net = self._borrow()
        try:
            # The input is set by name: SFace's graph declares extra dangling inputs, and OpenCV 5 refuses an unnamed
            # setInput when a graph has more than one.
            net.setInput(blob, self._input_name)
            outputs = net.forward(list(self._output_names))
        finally:
            self._idle.put(net)
        return [np.array(o, dtype=np.float32, copy=True) for o in outputs]

    def _borrow(self) -> cv2.dnn.Net:
        """An idle net; a new one while fewer than copies exist; else wait for one to come back."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._making:
            make = self._made < self.copies
            if make:
                self._made += 1
        if not make:
            return self._idle.get()
        try:
            return self._read_net()
        except BaseException:
            with self._making:
                self._made -= 1
            raise

    def _read_net(self) -> cv2.dnn.Net:
        try:
            # A numpy buffer, not Python bytes: OpenCV 5.0's bytes overload of readNetFromONNX crashes the process.
            return cv2.dnn.readNetFromONNX(self._model)
        except cv2.error as exc:
            raise ModelPackError(f"OpenCV dnn cannot load {self._label}: {exc}") from None


def open_session(
    model_bytes: bytes,
    runtime: str = "auto",
    threads: int = 1,
    *,
    preferred_runtime: str = "onnxruntime",
    label: str = "model",
    dynamic_spatial: bool = False,
    concurrency: int = 1,
) -> ModelSession:
    """Load a model into a session.

    runtime "auto" uses preferred_runtime (the pack's measured choice for this model) and falls back to the other
    runtime, with a warning, when that one cannot load the graph. threads is the runtime's intra-op thread count.
    dynamic_spatial declares the input's height and width dynamic (detectors take any padded image size).
    concurrency is how many threads may run the model at the same time (OpenCV gets a net for each; one ONNX Runtime
    session serves any number).
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if preferred_runtime not in CONCRETE_RUNTIMES:
        raise ConfigError(f"preferred runtime must be opencv or onnxruntime, not {preferred_runtime!r}")
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, not {threads}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")

    def load(name: str) -> ModelSession:
        if name == "opencv":
            return OpenCVSession(model_bytes, threads=threads, label=label, copies=concurrency)
        return OnnxRuntimeSession(model_bytes, threads=threads, label=label, dynamic_spatial=dynamic_spatial)

    if runtime != "auto":
        return load(runtime)
    try:
        return load(preferred_runtime)
    except ModelPackError as exc:
        other = "onnxruntime" if preferred_runtime == "opencv" else "opencv"
        log.warning("%s: %s; trying %s instead", label, exc, other)
        return load(other)
