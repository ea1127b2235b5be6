"""One onnxruntime session per model version: execution providers, tensor specs from the ONNX graph, warm-up.

The tensor specs (names, KServe datatypes, shapes with -1 for dynamic dimensions) are read from the
session, so any ONNX model of the repository is served over KServe v2 as it is, whatever its
inputs: the exported sphere/flat models (float32 ``(B, 3, ...)``) and the end-to-end camera models
(uint8 ``(B, H, W, 3)`` frames in, uint8 masks out) alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heal_swin.serve.repository import ModelEntry, RepositoryError, model_load_error

__all__ = [
    "PROVIDERS",
    "ModelRuntime",
    "TensorSpec",
    "available_providers",
    "ort_version",
    "resolve_providers",
]

log = logging.getLogger("heal_swin.serve")

# Config names -> onnxruntime's execution providers.
PROVIDERS = {
    "TensorRT": "TensorrtExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "CPU": "CPUExecutionProvider",
}
_DATATYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}  # fmt: skip
NUMPY_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, KServe datatype, shape (-1 = any size; dimension 0 is the batch)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(NUMPY_DTYPES[self.datatype])


def available_providers() -> list[str]:
    """onnxruntime's execution providers in this installation."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def resolve_providers(wanted: Sequence[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """(providers to ask onnxruntime for, in order, CPU last; config names that are not available here)."""
    chosen, skipped = [], []
    for name in wanted:
        if PROVIDERS[name] in available:
            chosen.append(PROVIDERS[name])
        else:
            skipped.append(name)
    if PROVIDERS["CPU"] not in chosen:
        chosen.append(PROVIDERS["CPU"])  # always the last resort: a model must run somewhere
    return chosen, skipped


def _spec(arg, where: str) -> TensorSpec:
    if arg.type not in _DATATYPES:
        raise RepositoryError(
            f"{where}: tensor {arg.name!r} has type {arg.type}; the service serves numeric tensors only"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, _DATATYPES[arg.type], shape)


class ModelRuntime:
    """One ``InferenceSession``. ``run``/``run_feeds`` are thread-safe and release the GIL inside onnxruntime."""

    def __init__(
        self,
        entry: ModelEntry,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        providers: Sequence[str] = ("CPU",),
    ) -> None:
        import onnxruntime as ort

        self.entry = entry
        self.manifest = entry.manifest
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(intra_op_threads)
        so.inter_op_num_threads = int(inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        wanted, self.skipped_providers = resolve_providers(providers, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(entry.onnx_path), so, providers=wanted)
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors share no base class; a bad file is input
            raise RepositoryError(model_load_error(entry.onnx_path, e)) from None
        # What actually runs: onnxruntime drops a provider that fails to initialise (e.g. no CUDA driver).
        self.providers: list[str] = list(self.session.get_providers())
        where = str(entry.onnx_path)
        self.inputs = [_spec(a, where) for a in self.session.get_inputs()]
        self.outputs = [_spec(a, where) for a in self.session.get_outputs()]
        self.input_name = self.inputs[0].name
        self.output_name = self.outputs[0].name
        self.ready = False
        self.warmup_seconds: float | None = None
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        """The execution provider that runs the model (the first one onnxruntime kept)."""
        return self.providers[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs[0].shape[1:])

    @property
    def single_tensor(self) -> bool:
        """One input and one output: requests of this model can share micro-batches."""
        return len(self.inputs) == 1 and len(self.outputs) == 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first input -> the first output: (B, *sample_shape) -> (B, ...), in the input's datatype."""
        x = np.ascontiguousarray(batch, self.inputs[0].dtype)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every input by name -> every output, in the order of :attr:`outputs`."""
        return self.session.run([o.name for o in self.outputs], feeds)

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> float:
        """Run once per batch size on inputs of the right datatypes; models with free dimensions besides the batch are not run."""
        t0 = time.perf_counter()
        if all(d >= 0 for spec in self.inputs for d in spec.shape[1:]):
            rng = np.random.default_rng(0)
            for b in sorted(set(batch_sizes)):
                feeds = {}
                for spec in self.inputs:
                    shape = (b, *spec.shape[1:])
                    if spec.datatype.startswith("FP"):
                        feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
                    else:
                        feeds[spec.name] = np.zeros(shape, spec.dtype)
                self.run_feeds(feeds)
        self.warmup_seconds = time.perf_counter() - t0
        self.ready = True
        return self.warmup_seconds
