"""``/v2``: the Open Inference Protocol (KServe v2) on the raw models.

    GET  /v2, /v2/health/live, /v2/health/ready                  server metadata, liveness, readiness
    GET  /v2/models/{name}[/versions/{version}]                   metadata (versions, tensors, parameters)
    GET  /v2/models/{name}[/versions/{version}]/ready             200 once warmed up, else 503
    POST /v2/models/{name}[/versions/{version}]/infer             tensors in, tensors out

Without ``versions/{version}`` a request goes to the model's default version (the highest, as in
Triton, unless the config prefers a precision); versions are the numeric folders of the repository.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from heal_swin import __version__
from heal_swin.inference.triton import PLATFORM
from heal_swin.serve import v2
from heal_swin.serve.errors import ERROR_RESPONSES, PayloadTooLargeError, error_response
from heal_swin.serve.repository import NAME_PATTERN
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
from heal_swin.serve.state import RunStats, ServiceState, StateDep

__all__ = ["openapi_components", "router"]

router = APIRouter(prefix="/v2", tags=["v2"])
ModelName = Annotated[str, Path(pattern=NAME_PATTERN, description="a model folder of the repository")]
_META_ERRORS = {400: ERROR_RESPONSES[400], 404: ERROR_RESPONSES[404]}
_READY_ERRORS = {**_META_ERRORS, 503: ERROR_RESPONSES[503]}
_INFER_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k != 415}


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(
        name="heal-swin",
        version=__version__,
        extensions=["binary_tensor_data", "model_configuration", "statistics"],
    )


@router.get("/health/live", response_model=LiveResponse, summary="Liveness")
async def live() -> LiveResponse:
    return LiveResponse(live=True)


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    responses={503: ERROR_RESPONSES[503]},
    summary="Readiness (after warm-up)",
)
async def ready(state: StateDep):
    if not state.ready:
        return error_response(503, state.warm_error or "warming up")
    return ReadyResponse(ready=True)


def _metadata(state: ServiceState, name: str, version: str | None) -> ModelMetadata:
    entry, rt, _ = state.v2_model(name, version)
    params: dict[str, Any] = {
        "version": str(entry.version), "precision": entry.precision,
        "execution_provider": rt.provider, "execution_providers": rt.providers,
    }  # fmt: skip
    if state.serves_v1(entry.name):
        params.update({**state.summary(entry.name).model_dump(), "precision": entry.precision})
    return ModelMetadata(
        name=entry.name, versions=[str(v) for v in state.repo.versions[entry.name]], platform=PLATFORM,
        inputs=[TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in rt.inputs],
        outputs=[TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in rt.outputs],
        parameters=params,
    )  # fmt: skip


def _ready(state: ServiceState, name: str, version: str | None):
    entry, rt, _ = state.v2_model(name, version)
    if not rt.ready:
        return error_response(503, f"model {name!r} (version {entry.version}) is warming up")
    return ModelReadyResponse(name=name, ready=True)


def _config(state: ServiceState, name: str) -> dict:
    """Triton's model configuration as JSON (what tritonclient's get_model_config reads), from the tensors."""
    entry, rt, _ = state.v2_model(name, None)

    def tensors(specs) -> list[dict]:
        return [
            {
                "name": t.name,
                "data_type": f"TYPE_{'STRING' if t.datatype == 'BYTES' else t.datatype}",
                "dims": [str(d) for d in t.shape[1:]],
            }
            for t in specs
        ]

    return {
        "name": entry.name, "platform": PLATFORM, "backend": "onnxruntime",
        "max_batch_size": state.config.max_infer_batch, "input": tensors(rt.inputs), "output": tensors(rt.outputs),
        "version_policy": {"all": {}},
    }  # fmt: skip


async def _infer(state: ServiceState, name: str, version: str | None, request: Request) -> Response:
    entry, rt, batcher = state.v2_model(name, version, ready=True)
    cfg = state.config
    body = v2.decode_body(await request.body(), request.headers.get("content-encoding"), cfg.max_upload_bytes)

    def parse() -> tuple[v2.Decoded, dict[str, np.ndarray], list]:
        decoded = v2.parse_request(body, request.headers.get(v2.HEADER_LENGTH))
        wanted = v2.requested_outputs(decoded, rt.outputs, entry.name)
        arrays = v2.input_arrays(decoded, rt.inputs, entry.name, cfg.max_infer_batch, cfg.max_tensor_elements)
        batch = next(iter(arrays.values())).shape[0]
        expected = sum(
            batch * int(np.prod([d for d in o.shape[1:]]))
            for o, _ in wanted
            if all(d >= 0 for d in o.shape[1:])
        )
        if expected > cfg.max_tensor_elements:
            raise PayloadTooLargeError(
                f"outputs: {expected} tensor elements for batch {batch}, above the limit of {cfg.max_tensor_elements} (max_tensor_elements)"
            )
        return decoded, arrays, wanted

    decoded, arrays, wanted = await run_in_threadpool(parse)
    if rt.single_tensor:
        results = [await batcher.submit(arrays[rt.input_name])]
    else:
        results = await batcher.submit(arrays)
    del arrays
    by_name = {spec.name: arr for spec, arr in zip(rt.outputs, results)}
    outputs = []
    total = 0
    for spec, binary in wanted:
        arr = by_name[spec.name]
        total += arr.size
        outputs.append((spec, binary, arr))
    if total > cfg.max_tensor_elements:
        raise PayloadTooLargeError(
            f"outputs: {total} tensor elements, above the limit of {cfg.max_tensor_elements} (max_tensor_elements)"
        )
    chunks, headers = await run_in_threadpool(
        v2.encode_response, entry.name, str(entry.version), decoded.request.id, outputs
    )
    media = headers.pop("content-type")
    if v2.HEADER_LENGTH in headers or all(binary for _, binary, _ in outputs):
        return Response(b"".join(chunks), media_type=media, headers=headers)
    return StreamingResponse(iterate_in_threadpool(chunks), media_type=media, headers=headers)


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": "a JSON InferRequest; with the binary tensor extension, the JSON header (length in the "
        "Inference-Header-Content-Length request header) followed by the raw bytes of each input with parameters.binary_data_size",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}}},
    }
}
_INFER_SUMMARY = "Inference{} (Open Inference Protocol: JSON tensors or the binary tensor extension)"


def openapi_components() -> dict[str, Any]:
    """The schemas the infer routes refer to (their body is parsed by :mod:`heal_swin.serve.v2`, not by FastAPI)."""
    schema = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "InferRequest": schema}


@router.get(
    "/models/{name}",
    response_model=ModelMetadata,
    responses=_META_ERRORS,
    summary="Model metadata (default version)",
)
async def model_metadata(name: ModelName, state: StateDep) -> ModelMetadata:
    return _metadata(state, name, None)


@router.get(
    "/models/{name}/config",
    responses=_META_ERRORS,
    summary="Model configuration (Triton's model_configuration extension)",
)
async def model_config(name: ModelName, state: StateDep) -> dict:
    return _config(state, name)


@router.get(
    "/models/{name}/stats",
    responses=_META_ERRORS,
    summary="Inference statistics (Triton's statistics extension)",
)
async def model_stats(name: ModelName, state: StateDep) -> dict:
    entry = state.repo.model(name)
    return {"model_stats": [_stats(state, entry.name, v) for v in state.repo.versions[entry.name]]}


@router.get(
    "/models/{name}/versions/{version}/stats",
    responses=_META_ERRORS,
    summary="Inference statistics of a version",
)
async def version_stats(name: ModelName, version: str, state: StateDep) -> dict:
    entry = state.repo.model(name, version)
    return {"model_stats": [_stats(state, entry.name, entry.version)]}


def _stats(state: ServiceState, name: str, version: int) -> dict:
    st = state.stats.get((name, version)) or RunStats()
    ns = int(st.seconds * 1e9)
    return {
        "name": name, "version": str(version), "last_inference": st.last_ms,
        "inference_count": st.inferences, "execution_count": st.executions,
        "inference_stats": {"success": {"count": st.inferences, "ns": ns}, "compute_infer": {"count": st.executions, "ns": ns}},
    }  # fmt: skip


@router.get(
    "/models/{name}/ready",
    response_model=ModelReadyResponse,
    responses=_READY_ERRORS,
    summary="Model readiness (default version)",
)
async def model_ready(name: ModelName, state: StateDep):
    return _ready(state, name, None)


@router.post(
    "/models/{name}/infer", response_model=InferResponse, responses=_INFER_ERRORS, openapi_extra=_INFER_BODY,
    summary=_INFER_SUMMARY.format(" on the default version"),
)  # fmt: skip
async def model_infer(name: ModelName, request: Request, state: StateDep) -> Response:
    return await _infer(state, name, None, request)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=_META_ERRORS,
    summary="Model metadata of a version",
)
async def version_metadata(name: ModelName, version: str, state: StateDep) -> ModelMetadata:
    return _metadata(state, name, version)


@router.get(
    "/models/{name}/versions/{version}/ready",
    response_model=ModelReadyResponse,
    responses=_READY_ERRORS,
    summary="Model readiness of a version",
)
async def version_ready(name: ModelName, version: str, state: StateDep):
    return _ready(state, name, version)


@router.post(
    "/models/{name}/versions/{version}/infer", response_model=InferResponse, responses=_INFER_ERRORS, openapi_extra=_INFER_BODY,
    summary=_INFER_SUMMARY.format(" on a version"),
)  # fmt: skip
async def version_infer(name: ModelName, version: str, request: Request, state: StateDep) -> Response:
    return await _infer(state, name, version, request)
