"""Triton Python-backend model: runs the end-to-end ONNX model beside it (``<version>/model.onnx``) with onnxruntime.

``heal-swin export --camera ... --triton-backend python`` copies this file to ``REPO/<name>/1/model.py``.
It imports only numpy and onnxruntime (the Python environment Triton's python backend stub runs
in must have both); everything about the camera and the model is inside the ONNX graph.

Tensors move through DLPack, not ``as_numpy()`` / ``Tensor(name, ndarray)``: the python backend
stub shipped with pytriton 0.7 (Triton 2.51) reads numpy 2 arrays through an older pybind11 numpy
bridge that gets their item size wrong (inputs arrive as zeros, outputs empty); DLPack works with
numpy 1 and 2.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort


class _DLPack:
    """A Triton tensor seen through the DLPack protocol (host memory)."""

    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tensor.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


class TritonPythonModel:
    """One onnxruntime session; a batch of requests (dynamic batching) runs as one session call."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils  # provided by the stub at run time

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(
            params.get("intra_op_threads", "0") or 0
        )  # 0: onnxruntime's default
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._input = config["input"][0]["name"]
        self._outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self._pb
        frames = [np.from_dlpack(_DLPack(pb.get_input_tensor_by_name(r, self._input))) for r in requests]
        sizes = [f.shape[0] for f in frames]
        batch = frames[0] if len(frames) == 1 else np.concatenate(frames)
        try:
            results = self._session.run(self._outputs, {self._input: np.ascontiguousarray(batch)})
        except Exception as e:  # noqa: BLE001 (any failure is that batch's error response, never a crashed stub)
            return [pb.InferenceResponse(error=pb.TritonError(f"{self._input}: {e}")) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            tensors = [
                pb.Tensor.from_dlpack(name, np.ascontiguousarray(r[start : start + n]))
                for name, r in zip(self._outputs, results)
            ]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
