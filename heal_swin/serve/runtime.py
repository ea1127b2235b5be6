"""onnxruntime session per model: thread settings from the config, input checks, warm-up."""

from __future__ import annotations

import threading
import time

import numpy as np

from heal_swin.serve.repository import ModelEntry, RepositoryError, model_load_error

__all__ = ["ModelRuntime"]


class ModelRuntime:
    """One ``InferenceSession`` (CPU). ``run`` is thread-safe and releases the GIL inside onnxruntime."""

    def __init__(self, entry: ModelEntry, intra_op_threads: int = 1, inter_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.entry = entry
        self.manifest = entry.manifest
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(intra_op_threads)
        so.inter_op_num_threads = int(inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(entry.onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors share no base class; a bad file is input
            raise RepositoryError(model_load_error(entry.onnx_path, e)) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.ready = False
        self.warmup_seconds: float | None = None
        self._lock = threading.Lock()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.input_shape[1:])

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, *sample_shape) float32 -> (B, *output sample shape) float32."""
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> float:
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        for b in sorted(set(batch_sizes)):
            self.run(rng.standard_normal((b, *self.sample_shape), dtype=np.float32))
        self.warmup_seconds = time.perf_counter() - t0
        self.ready = True
        return self.warmup_seconds
