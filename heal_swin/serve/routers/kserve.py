"""``/v2``: the Open Inference Protocol (KServe v2) on the raw models.

    GET  /v2, /v2/health/live, /v2/health/ready                  server metadata, liveness, readiness
    GET  /v2/models/{name}[/versions/{version}]                   metadata (versions, tensors, parameters)
    GET  /v2/models/{name}[/versions/{version}]/ready             200 once warmed up, else 503
    POST /v2/models/{name}[/versions/{version}]/infer             tensors in, tensors out

Without ``versions/{version}`` a request goes to the model's default version (the highest, as in
Triton, unless the config prefers a precision); versions are the numeric folders of the repository.
"""

from __future__ import annotations

import math

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from heal_swin import __version__
from heal_swin.errors import InputError
from heal_swin.inference.triton import PLATFORM
from heal_swin.serve.errors import ERROR_RESPONSES, error_response
from heal_swin.serve.repository import NotFoundError
from heal_swin.serve.schemas import (
    InferRequest,
    InferResponse,
    LiveResponse,
    ModelMetadata,
    ModelReadyResponse,
    ReadyResponse,
    ServerMetadata,
    TensorMetadata,
)
from heal_swin.serve.state import ServiceState, StateDep

__all__ = ["MAX_INFER_BATCH", "router"]

MAX_INFER_BATCH = 64

router = APIRouter(prefix="/v2", tags=["v2"])
_META_ERRORS = {400: ERROR_RESPONSES[400], 404: ERROR_RESPONSES[404]}
_READY_ERRORS = {**_META_ERRORS, 503: ERROR_RESPONSES[503]}
_INFER_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k != 415}


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="heal-swin", version=__version__, extensions=[])


@router.get("/health/live", response_model=LiveResponse, summary="Liveness")
async def live() -> LiveResponse:
    return LiveResponse(live=True)


@router.get("/health/ready", response_model=ReadyResponse, responses={503: ERROR_RESPONSES[503]}, summary="Readiness (after warm-up)")
async def ready(state: StateDep):
    if not state.ready:
        return error_response(503, state.warm_error or "warming up")
    return ReadyResponse(ready=True)


def _metadata(state: ServiceState, name: str, version: str | None) -> ModelMetadata:
    entry, rt, _ = state.v2_model(name, version)
    m = entry.manifest
    params = {**state.summary(name).model_dump(), "precision": entry.precision, "version": str(entry.version)}
    return ModelMetadata(
        name=name, versions=[str(v) for v in state.repo.versions[entry.name]], platform=PLATFORM,
        inputs=[TensorMetadata(name=rt.input_name, datatype="FP32", shape=list(m.input_shape))],
        outputs=[TensorMetadata(name=rt.output_name, datatype="FP32", shape=list(m.output_shape))],
        parameters=params,
    )  # fmt: skip


def _ready(state: ServiceState, name: str, version: str | None):
    entry, rt, _ = state.v2_model(name, version)
    if not rt.ready:
        return error_response(503, f"model {name!r} (version {entry.version}) is warming up")
    return ModelReadyResponse(name=name, ready=True)


async def _infer(state: ServiceState, name: str, version: str | None, request: InferRequest):
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


_INFER_SUMMARY = "Inference on the raw model{} (Open Inference Protocol)"


@router.get("/models/{name}", response_model=ModelMetadata, responses=_META_ERRORS, summary="Model metadata (default version)")
async def model_metadata(name: str, state: StateDep) -> ModelMetadata:
    return _metadata(state, name, None)


@router.get("/models/{name}/ready", response_model=ModelReadyResponse, responses=_READY_ERRORS, summary="Model readiness (default version)")
async def model_ready(name: str, state: StateDep):
    return _ready(state, name, None)


@router.post("/models/{name}/infer", response_model=InferResponse, responses=_INFER_ERRORS, summary=_INFER_SUMMARY.format(" (default version)"))
async def model_infer(name: str, request: InferRequest, state: StateDep) -> InferResponse:
    return await _infer(state, name, None, request)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=_META_ERRORS, summary="Model metadata of a version")
async def version_metadata(name: str, version: str, state: StateDep) -> ModelMetadata:
    return _metadata(state, name, version)


@router.get("/models/{name}/versions/{version}/ready", response_model=ModelReadyResponse, responses=_READY_ERRORS, summary="Model readiness of a version")
async def version_ready(name: str, version: str, state: StateDep):
    return _ready(state, name, version)


@router.post("/models/{name}/versions/{version}/infer", response_model=InferResponse, responses=_INFER_ERRORS, summary=_INFER_SUMMARY.format(" of a version"))
async def version_infer(name: str, version: str, request: InferRequest, state: StateDep) -> InferResponse:
    return await _infer(state, name, version, request)
