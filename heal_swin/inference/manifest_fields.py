"""Field types of the manifest (:mod:`heal_swin.inference.manifest`): pydantic types whose failures
read "expected <what>", with the JSON Schema keywords pydantic cannot derive by itself."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr
from typing_extensions import NotRequired, Required, TypedDict

__all__ = [
    "BasePixels",
    "DepthScaling",
    "FileName",
    "Finite",
    "ImageSize",
    "Int8Version",
    "NonEmpty",
    "Normalisation",
    "Nside",
    "PositiveFinite",
    "PositiveInt",
    "Sha256",
    "Triple",
    "VersionKey",
]


def _rule(ok: Callable[[Any], bool], expected: str) -> AfterValidator:
    """A check after pydantic's type check; a failure reads "expected <expected>"."""

    def check(v: Any) -> Any:
        if not ok(v):
            raise ValueError(expected)
        return v

    return AfterValidator(check)


def _number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("a number")  # noqa: TRY004 (pydantic reports ValueError, not TypeError, as a validation error)
    return v


def _plain_file(v: str) -> bool:
    return bool(v) and "/" not in v and "\\" not in v and not v.startswith(".")


def _version_key(v: str) -> bool:
    return v.isdigit() and v == str(int(v)) and int(v) > 0


def _schema(**extra: Any) -> Any:
    """JSON Schema keywords for a rule that pydantic cannot describe by itself."""
    return Field(json_schema_extra=extra)


Finite = Annotated[float, BeforeValidator(_number), _rule(math.isfinite, "a finite number")]
PositiveFinite = Annotated[Finite, _rule(lambda v: v > 0, "positive numbers"), _schema(exclusiveMinimum=0)]
PositiveInt = Annotated[StrictInt, _rule(lambda v: v > 0, "a positive integer"), _schema(exclusiveMinimum=0)]
NonEmpty = Annotated[StrictStr, _rule(bool, "a non-empty string"), _schema(minLength=1)]
FileName = Annotated[
    StrictStr,
    _rule(_plain_file, "a plain file name inside the version folder"),
    _schema(pattern=r"^[^./\\][^/\\]*$"),
]
Sha256 = Annotated[
    StrictStr,
    _rule(lambda v: re.fullmatch(r"[0-9a-fA-F]{64}", v) is not None, "64 hex digits"),
    _schema(pattern=r"^[0-9a-fA-F]{64}$"),
]
Byte = Annotated[
    StrictInt, _rule(lambda v: 0 <= v <= 255, "BGR triples of 0..255"), _schema(minimum=0, maximum=255)
]
Nside = Annotated[
    StrictInt, _rule(lambda v: v >= 1 and not v & (v - 1), "a power of two"), _schema(minimum=1)
]
BasePixels = Annotated[
    list[Annotated[StrictInt, _schema(minimum=0, maximum=11)]],
    _rule(
        lambda v: bool(v) and len(set(v)) == len(v) and all(0 <= b < 12 for b in v),
        "a list of distinct integers 0..11",
    ),
    _schema(minItems=1, uniqueItems=True),
]
Triple = Annotated[
    list[Byte], _rule(lambda v: len(v) == 3, "BGR triples of 0..255"), _schema(minItems=3, maxItems=3)
]
ImageSize = Annotated[
    list[PositiveInt],
    _rule(lambda v: len(v) == 2, "[height, width] positive integers"),
    _schema(minItems=2, maxItems=2),
]
VersionKey = Annotated[
    StrictStr,
    _rule(_version_key, "an object {version number: 'fp32' | 'int8'}"),
    _schema(pattern="^[1-9][0-9]*$"),
]


class Normalisation(TypedDict):
    """``model input = (pixel * scale - mean) / std`` per channel, channels in ``colour_order``."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    colour_order: NotRequired[Literal["RGB", "BGR"]]
    scale: NotRequired[Finite]
    mean: list[Finite]
    std: list[PositiveFinite]


class DepthScaling(TypedDict):
    """Depth output channel 0 is ``z``; metres ``= exp(z * log_std + log_mean)``."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    log_mean: Finite
    log_std: PositiveFinite


class Int8Version(TypedDict, total=False):
    """The int8 version's file, checksum and accuracy change (more keys are allowed)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    onnx_file: Required[FileName]
    version: PositiveInt
    onnx_sha256: Sha256
    validation: dict[str, Any]
