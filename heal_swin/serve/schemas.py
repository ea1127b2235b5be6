"""Pydantic models of the HTTP API: the Open Inference Protocol (KServe v2) JSON tensors and our errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorResponse",
    "InferRequest",
    "InferResponse",
    "LiveResponse",
    "ModelList",
    "ModelMetadata",
    "ModelReadyResponse",
    "ModelSummary",
    "ReadyResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerMetadata",
    "TensorMetadata",
]


class ErrorResponse(BaseModel):
    error: str = Field(description="what was wrong with the request (names the field/value)")
    detail: list[Any] | None = Field(default=None, description="validation details, when there are several")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks the dynamic batch dimension")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="heal-swin: task, grid, classes, precision"
    )


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=256)
    shape: list[Annotated[int, Field(ge=0, le=1 << 31)]] = Field(min_length=1, max_length=8)
    datatype: Datatype = Field(
        description="must be the model's datatype for this input (GET /v2/models/{name}); nothing is converted"
    )
    data: list[Any] | None = Field(
        default=None,
        description="row-major values (flat or nested lists); absent when parameters.binary_data_size is given",
    )
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size: the input's bytes after the JSON header"
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=256)
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(default=None, max_length=256)
    inputs: list[RequestInput] = Field(min_length=1, max_length=16)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=16)
    parameters: dict[str, Any] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = Field(default=None, description="row-major values, unless sent as binary data")
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size when sent as binary data"
    )


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]
    parameters: dict[str, Any] | None = None


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ModelSummary(BaseModel):
    name: str
    model_name: str
    task: str
    input_kind: str
    nside: int | None = None
    base_pixels: list[int] | None = None
    img_size: list[int] | None = None
    class_names: list[str]
    class_colours: list[list[int]]
    precision: str
    ready: bool


class ModelList(BaseModel):
    models: list[ModelSummary]
    cameras: list[str]
    defaults: dict[str, str | None]
