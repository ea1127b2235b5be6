"""The manifest ``model.json`` of every exported model folder (no torch import).

A model folder is one model of a Triton model repository (:mod:`heal_swin.inference.triton`):
``config.pbtxt`` and ``model.json`` in ``REPO/<name>/``, the ONNX file of each version in
``REPO/<name>/<version>/model.onnx``; ``model_versions`` says which version is which precision
(``1`` fp32, ``2`` int8 where ``heal-swin export --int8`` wrote one).

The service reads it to know how to feed the model (grid, normalisation) and how to read its output
(task, classes, depth scaling); ``load_manifest`` validates every field and names the bad one.
:class:`Manifest` is a pydantic dataclass: pydantic checks each field's type and range (and
:func:`manifest_json_schema` publishes them as JSON Schema), :meth:`Manifest.validate` the rules
that tie fields together (shapes, class count, depth scaling, versions). The normalisation is the
model's own (its registry default config, written by training); a manifest must state it.

Example (segmentation, sphere model)::

    {
      "format": "heal-swin-onnx/2",
      "name": "heal_swin_tiny-seg",            # repository name (the folder's name)
      "model_name": "heal_swin_tiny",          # registry name; "model_config" = its keyword config
      "task": "segmentation",                  # or "depth"
      "input_kind": "sphere",                  # or "flat"
      "nside": 64, "base_pixels": [0, ..., 7], # sphere models (NESTED order); null for flat
      "img_size": null,                        # [H, W] for flat models
      "resample": "bilinear",                  # sphere models: image -> grid, "bilinear" or "area"
      "in_chans": 3, "out_chans": 10,
      "input_name": "input", "output_name": "output",
      "input_shape": [-1, 3, 32768], "output_shape": [-1, 10, 32768],   # -1 = dynamic batch
      "class_names": [...], "class_colours": [[b, g, r], ...],
      "normalisation": {"colour_order": "RGB", "scale": 0.00392156862745098, "mean": [...], "std": [...]},
      "depth": null,                           # {"log_mean": m, "log_std": s}: metres = exp(z * s + m)
      "opset": 18,
      "onnx_file": "model.onnx",               # the file name inside every version folder
      "onnx_sha256": "...", "onnx_data_file": null, "onnx_data_sha256": null,   # version 1 (fp32)
      "model_versions": {"1": "fp32", "2": "int8"},
      "parity": {"rtol": 1e-3, "atol": 1e-4, "random": {"max_abs": .., "max_rel": .., "count": 3},
                 "real": {"max_abs": .., "max_rel": .., "count": 2, "source": "..."}},
      "int8": null,                            # or {"version": 2, "onnx_file", "onnx_sha256", "validation": {...}}
      "dataset": "woodscape", "metadata": {...}, "exported_at": "...", "versions": {...},
      "end_to_end": null                       # or the end-to-end model of one camera (below)
    }

An end-to-end model (``heal-swin export --camera``, folder ``REPO/<name>_<camera>/``) wraps the sphere
model described by the fields above (``input_shape``... are the wrapped model's) between the baked-in
samplings; ``end_to_end`` gives its own interface::

    "end_to_end": {"camera": "FV", "image_size": [1280, 966], "calibration": {...WoodScape schema...},
                   "sphere_model": "heal_swin_tiny-seg", "sampling": {"mode": "bilinear", "taps": 4},
                   "input": {"name": "image", "datatype": "UINT8", "shape": [-1, 966, 1280, 3], "colour_order": "BGR"},
                   "output": {"name": "mask", "datatype": "UINT8", "shape": [-1, 966, 1280], "no_prediction": 255}}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass

from heal_swin.errors import InputError
from heal_swin.inference.manifest_fields import (
    BasePixels,
    DepthScaling,
    FileName,
    ImageSize,
    Int8Version,
    NonEmpty,
    Normalisation,
    Nside,
    PositiveInt,
    Sha256,
    Triple,
    VersionKey,
)

__all__ = [
    "FORMAT",
    "FP32_VERSION",
    "INT8_NAME",
    "INT8_VERSION",
    "MANIFEST_NAME",
    "OLD_FORMATS",
    "ONNX_NAME",
    "PRECISIONS",
    "Manifest",
    "ManifestError",
    "load_manifest",
    "manifest_from_dict",
    "manifest_json_schema",
    "save_manifest",
    "sha256_file",
]

FORMAT = "heal-swin-onnx/2"  # /1: model.onnx beside model.json (before the Triton layout)
OLD_FORMATS = ("heal-swin-onnx/1",)
MANIFEST_NAME = "model.json"
ONNX_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"  # the old layout's int8 file (export removes it when re-exporting)
FP32_VERSION, INT8_VERSION = 1, 2
PRECISIONS = ("fp32", "int8")


class ManifestError(InputError):
    """A ``model.json`` that is missing, not JSON, or has a bad field."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


@dataclass(config=ConfigDict(extra="forbid"))
class Manifest:
    """Everything the service needs to run one exported model (see the module docstring)."""

    name: NonEmpty
    model_name: NonEmpty
    task: Literal["segmentation", "depth"]
    input_kind: Literal["sphere", "flat"]
    in_chans: PositiveInt
    out_chans: PositiveInt
    input_shape: list[StrictInt]
    output_shape: list[StrictInt]
    onnx_sha256: Sha256
    opset: PositiveInt
    normalisation: Normalisation
    nside: Nside | None = None
    base_pixels: BasePixels | None = None
    img_size: ImageSize | None = None
    resample: Literal["bilinear", "area"] = "bilinear"  # sphere models: image -> grid sampling
    class_names: list[StrictStr] = field(default_factory=list)
    class_colours: list[Triple] = field(default_factory=list)
    depth: DepthScaling | None = None
    input_name: NonEmpty = "input"
    output_name: NonEmpty = "output"
    onnx_file: FileName = ONNX_NAME
    onnx_data_file: FileName | None = None
    onnx_data_sha256: Sha256 | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    int8: Int8Version | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    dataset: StrictStr | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    exported_at: StrictStr | None = None
    versions: dict[str, StrictStr] = field(default_factory=dict)  # software versions of the export
    model_versions: dict[VersionKey, Literal["fp32", "int8"]] = field(
        default_factory=lambda: {str(FP32_VERSION): "fp32"}
    )
    format: Literal["heal-swin-onnx/2"] = FORMAT
    end_to_end: dict[str, Any] | None = (
        None  # the interface of an end-to-end model (see the module docstring)
    )

    # ------------------------------------------------------------ derived
    @property
    def npix(self) -> int | None:
        return (
            None if self.nside is None or self.base_pixels is None else len(self.base_pixels) * self.nside**2
        )

    @property
    def mean(self) -> list[float]:
        return [float(v) for v in self.normalisation["mean"]]

    @property
    def std(self) -> list[float]:
        return [float(v) for v in self.normalisation["std"]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ---------------------------------------------------------- validation
    def validate(self, source: str = "<manifest>") -> Manifest:
        """The rules between fields (each field's own type and range pydantic checked when the
        manifest was built); raises :class:`ManifestError` naming the field, expected vs got."""

        def bad(fieldname: str, expected: str, got: Any) -> ManifestError:
            return ManifestError(f"{source}: field {fieldname!r}: expected {expected}, got {got!r}")

        if self.in_chans != 3:
            raise bad("in_chans", "3 (RGB images)", self.in_chans)
        if self.input_kind == "sphere":
            if self.nside is None:
                raise bad("nside", "a power of two", self.nside)
            if self.base_pixels is None:
                raise bad("base_pixels", "a list of distinct integers 0..11", self.base_pixels)
            spatial: list[int] = [self.npix or 0]
        else:
            if self.img_size is None:
                raise bad("img_size", "[height, width] positive integers", self.img_size)
            spatial = list(self.img_size)
        want_in = [-1, self.in_chans, *spatial]
        want_out = [-1, self.out_chans, *spatial]
        if list(self.input_shape) != want_in:
            raise bad("input_shape", str(want_in), self.input_shape)
        if list(self.output_shape) != want_out:
            raise bad("output_shape", str(want_out), self.output_shape)
        for key in ("mean", "std"):
            if len(self.normalisation[key]) != self.in_chans:
                raise bad(f"normalisation.{key}", f"{self.in_chans} finite numbers", self.normalisation[key])
        if self.task == "segmentation":
            if self.out_chans > 255:
                raise bad(
                    "out_chans", "at most 255 classes (255 marks 'no prediction' in masks)", self.out_chans
                )
            if len(self.class_names) != self.out_chans:
                raise bad("class_names", f"a list of {self.out_chans} names", self.class_names)
            if len(self.class_colours) != self.out_chans:
                raise bad("class_colours", f"{self.out_chans} BGR triples of 0..255", self.class_colours)
        else:
            if self.out_chans not in (1, 2):
                raise bad(
                    "out_chans", "1 (log-depth) or 2 (log-depth, log-variance) for depth", self.out_chans
                )
            if self.depth is None:
                raise bad("depth", "{'log_mean': number, 'log_std': positive number}", self.depth)
        mv = self.model_versions
        if mv.get(str(FP32_VERSION)) != "fp32":
            raise bad("model_versions", f"version {FP32_VERSION} 'fp32' (the exported model)", mv)
        if self.int8 is not None:
            v = self.int8.get("version", INT8_VERSION)
            if mv.get(str(v)) != "int8":
                raise bad("model_versions", f"version {v} 'int8' (the int8 model's version)", mv)
        elif "int8" in mv.values():
            raise bad("int8", "an object describing the int8 version named in model_versions", None)
        if self.end_to_end is not None:
            _check_end_to_end(self.end_to_end, self.task, bad)
        return self

    def precision_of(self, version: int) -> str | None:
        """'fp32' / 'int8' for a version this manifest describes, else None."""
        return self.model_versions.get(str(version))

    def sha256_of(self, version: int) -> str | None:
        """The recorded sha256 of a version's ONNX file."""
        if self.precision_of(version) == "int8" and self.int8:
            return self.int8.get("onnx_sha256")
        return self.onnx_sha256 if version == FP32_VERSION else None


_ADAPTER = TypeAdapter(Manifest)
_NESTED = {"normalisation", "depth", "int8"}


def _check_end_to_end(e2e: Any, task: str, bad: Any) -> None:
    """The ``end_to_end`` object: camera, image size and the uint8 image -> mask/depth interface."""
    if not isinstance(e2e, dict):
        raise bad("end_to_end", "null or an object", e2e)
    for key in ("camera", "sphere_model"):
        if not isinstance(e2e.get(key), str) or not e2e[key]:
            raise bad(f"end_to_end.{key}", "a non-empty string", e2e.get(key))
    size = e2e.get("image_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise bad("end_to_end.image_size", "[width, height] positive integers", size)
    if not isinstance(e2e.get("calibration"), dict):
        raise bad("end_to_end.calibration", "the camera's calibration (an object)", e2e.get("calibration"))
    w, h = size
    want = {
        "input": ("UINT8", [-1, h, w, 3]),
        "output": ("UINT8" if task == "segmentation" else "FP32", [-1, h, w]),
    }
    for key, (dtype, shape) in want.items():
        t = e2e.get(key)
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise bad(f"end_to_end.{key}", "an object with a tensor 'name'", t)
        if t.get("datatype") != dtype or t.get("shape") != shape:
            raise bad(
                f"end_to_end.{key}",
                f"datatype {dtype!r}, shape {shape}",
                {k: t.get(k) for k in ("datatype", "shape")},
            )


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``model.json``: every field's type and range.

    The rules between fields (shapes vs grid, class count vs outputs, ...) are
    :meth:`Manifest.validate`'s; a manifest that passes it also validates against this schema.
    """
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "heal-swin model.json (" + FORMAT + ")"
    return schema


def _expected(msg: str) -> str:
    for prefix in ("Value error, ", "Input should be "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _first_error(e: ValidationError, data: dict[str, Any], source: str) -> ManifestError:
    errors = e.errors()
    missing = sorted(
        str(err["loc"][0]) for err in errors if err["type"] == "missing" and len(err["loc"]) == 1
    )
    if missing:
        return ManifestError(f"{source}: missing field(s) {missing}")
    unknown = sorted(
        str(err["loc"][0])
        for err in errors
        if err["type"] in ("unexpected_keyword_argument", "extra_forbidden") and len(err["loc"]) == 1
    )
    if unknown:
        return ManifestError(f"{source}: unknown field(s) {unknown}")
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    name, got = loc[0], data.get(loc[0])
    if name in _NESTED and len(loc) > 1 and isinstance(got, dict) and loc[1] in got:
        name, got = f"{name}.{loc[1]}", got[loc[1]]
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return ManifestError(f"{source}: field {name!r}: unknown key")
    return ManifestError(f"{source}: field {name!r}: expected {_expected(err['msg'])}, got {got!r}")


def manifest_from_dict(data: Any, source: str = "<manifest>") -> Manifest:
    """Build and validate a manifest from its JSON object; errors name the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if "format" in data and data["format"] != FORMAT:  # first: an old layout gets its own message
        raise ManifestError(f"{source}: field 'format': expected {FORMAT!r}, got {data['format']!r}")
    try:
        manifest = _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise _first_error(e, data, source) from None
    return manifest.validate(source)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``model.json`` (a file, or a model folder containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return manifest_from_dict(data, str(path))


def save_manifest(path: str | Path, manifest: Manifest) -> Path:
    """Validate and write atomically (``path`` is the file or the model folder)."""
    from heal_swin.io import save_json

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    manifest.validate(str(path))
    save_json(path, manifest.to_dict())
    path.chmod(0o644)  # readable by the service's (non-root) user
    return path
