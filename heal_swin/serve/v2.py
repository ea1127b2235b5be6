"""KServe v2 (Open Inference Protocol) model routes, on the default version or a numbered one.

    GET  /v2/models/{name}[/versions/{version}]          metadata (versions, tensors, heal-swin parameters)
    GET  /v2/models/{name}[/versions/{version}]/ready    200 once warmed up, else 503
    POST /v2/models/{name}[/versions/{version}]/infer    JSON tensors on the raw model

Without ``versions/{version}`` a request goes to the model's default version (the highest, as in
Triton, unless the config prefers a precision); versions are the numeric folders of the repository.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from heal_swin.errors import InputError
from heal_swin.inference.triton import PLATFORM
from heal_swin.serve.repository import NotFoundError
from heal_swin.serve.schemas import (
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReadyResponse,
    TensorMetadata,
)

__all__ = ["MAX_INFER_BATCH", "add_model_routes"]

MAX_INFER_BATCH = 64


def add_model_routes(app: FastAPI, state: Any, summary: Callable[[str], Any], error: Callable[..., JSONResponse], errors: dict) -> None:
    """Register the model routes on ``app``; ``state`` is the app's ServiceState (``v2_model``, ``repo``)."""
    meta_errors = {400: errors[400], 404: errors[404]}

    def metadata(name: str, version: str | None) -> ModelMetadata:
        entry, rt, _ = state.v2_model(name, version)
        m = entry.manifest
        params = {**summary(name).model_dump(), "precision": entry.precision, "version": str(entry.version)}
        return ModelMetadata(
            name=name, versions=[str(v) for v in state.repo.versions[entry.name]], platform=PLATFORM,
            inputs=[TensorMetadata(name=rt.input_name, datatype="FP32", shape=list(m.input_shape))],
            outputs=[TensorMetadata(name=rt.output_name, datatype="FP32", shape=list(m.output_shape))],
            parameters=params,
        )  # fmt: skip

    def ready(name: str, version: str | None):
        entry, rt, _ = state.v2_model(name, version)
        if not rt.ready:
            return error(503, f"model {name!r} (version {entry.version}) is warming up")
        return ModelReadyResponse(name=name, ready=True)

    async def infer(name: str, version: str | None, request: InferRequest):
        entry, rt, batcher = state.v2_model(name, version, ready=True)
        if len(request.inputs) != 1:
            raise InputError(f"inputs: model {name!r} takes 1 input ({rt.input_name!r}), got {len(request.inputs)}")
        inp = request.inputs[0]
        if inp.name != rt.input_name:
            raise InputError(f"inputs[0].name: expected {rt.input_name!r}, got {inp.name!r}")
        want = list(rt.sample_shape)
        if len(inp.shape) != 1 + len(want) or inp.shape[1:] != want or not 1 <= inp.shape[0] <= MAX_INFER_BATCH:
            dims = ", ".join(map(str, want))
            raise InputError(f"inputs[0].shape: expected [B, {dims}] with 1 <= B <= {MAX_INFER_BATCH}, got {inp.shape}")
        for o in request.outputs or []:
            if o.name != rt.output_name:
                raise NotFoundError(f"outputs: model {name!r} has output {rt.output_name!r}, not {o.name!r}")

        def to_array() -> np.ndarray:
            try:
                arr = np.asarray(inp.data, dtype=np.float64)
            except (ValueError, TypeError, OverflowError):
                raise InputError("inputs[0].data: expected numbers (a flat or nested row-major list)") from None
            if arr.size != math.prod(inp.shape):
                raise InputError(f"inputs[0].data: expected {math.prod(inp.shape)} values for shape {inp.shape}, got {arr.size}")
            if not np.all(np.isfinite(arr)) or np.abs(arr).max(initial=0) > 1e6:
                raise InputError("inputs[0].data: values must be finite numbers of magnitude <= 1e6")
            return arr.astype(np.float32).reshape(inp.shape)

        x = await run_in_threadpool(to_array)
        out = await batcher.submit(x)
        if not np.all(np.isfinite(out)):
            raise InputError("the model's output is not finite for this input")
        body = {
            "model_name": name, "model_version": str(entry.version), "id": request.id,
            "outputs": [{"name": rt.output_name, "shape": list(out.shape), "datatype": "FP32", "data": out.ravel().tolist()}],
        }  # fmt: skip
        return JSONResponse(body)

    infer_errors = {k: v for k, v in errors.items() if k != 415}
    ready_errors = {**meta_errors, 503: errors[503]}
    for prefix, versioned in (("/v2/models/{name}", False), ("/v2/models/{name}/versions/{version}", True)):
        what = " of a version" if versioned else " (default version)"
        if versioned:

            async def get_meta(name: str, version: str) -> ModelMetadata:
                return metadata(name, version)

            async def get_ready(name: str, version: str):
                return ready(name, version)

            async def post_infer(name: str, version: str, request: InferRequest) -> InferResponse:
                return await infer(name, version, request)
        else:

            async def get_meta(name: str) -> ModelMetadata:
                return metadata(name, None)

            async def get_ready(name: str):
                return ready(name, None)

            async def post_infer(name: str, request: InferRequest) -> InferResponse:
                return await infer(name, None, request)

        app.get(prefix, tags=["v2"], response_model=ModelMetadata, responses=meta_errors, summary="Model metadata" + what)(get_meta)
        app.get(prefix + "/ready", tags=["v2"], response_model=ModelReadyResponse, responses=ready_errors, summary="Model readiness" + what)(
            get_ready
        )
        app.post(
            prefix + "/infer", tags=["v2"], response_model=InferResponse, responses=infer_errors,
            summary="Inference on the raw model" + what + " (Open Inference Protocol, JSON tensors)",
        )(post_infer)  # fmt: skip
