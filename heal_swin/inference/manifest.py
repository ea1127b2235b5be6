"""The manifest ``model.json`` of every exported model folder (no torch import).

A model folder is one model of a Triton model repository (:mod:`heal_swin.inference.triton`):
``config.pbtxt`` and ``model.json`` in ``REPO/<name>/``, the ONNX file of each version in
``REPO/<name>/<version>/model.onnx``; ``model_versions`` says which version is which precision
(``1`` fp32, ``2`` int8 where ``heal-swin export --int8`` wrote one).

The service reads it to know how to feed the model (grid, normalisation) and how to read its output
(task, classes, depth scaling); ``load_manifest`` validates every field and names the bad one.

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
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from heal_swin.errors import InputError

__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
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
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
_TASKS = ("segmentation", "depth")
_KINDS = ("sphere", "flat")


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


@dataclass
class Manifest:
    """Everything the service needs to run one exported model (see the module docstring)."""

    name: str
    model_name: str
    task: str
    input_kind: str
    in_chans: int
    out_chans: int
    input_shape: list[int]
    output_shape: list[int]
    onnx_sha256: str
    opset: int
    nside: int | None = None
    base_pixels: list[int] | None = None
    img_size: list[int] | None = None
    resample: str = "bilinear"  # sphere models: image -> grid sampling, "bilinear" or "area"
    class_names: list[str] = field(default_factory=list)
    class_colours: list[list[int]] = field(default_factory=list)
    normalisation: dict[str, Any] = field(
        default_factory=lambda: {"colour_order": "RGB", "scale": 1 / 255, "mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD)}
    )
    depth: dict[str, float] | None = None
    input_name: str = "input"
    output_name: str = "output"
    onnx_file: str = ONNX_NAME
    onnx_data_file: str | None = None
    onnx_data_sha256: str | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    int8: dict[str, Any] | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    exported_at: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # software versions of the export
    model_versions: dict[str, str] = field(default_factory=lambda: {str(FP32_VERSION): "fp32"})
    format: str = FORMAT
    end_to_end: dict[str, Any] | None = None  # the interface of an end-to-end model (see the module docstring)

    # ------------------------------------------------------------ derived
    @property
    def npix(self) -> int | None:
        return None if self.nside is None or self.base_pixels is None else len(self.base_pixels) * self.nside**2

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
        """Check every field; raises :class:`ManifestError` naming the field, expected vs got."""

        def bad(fieldname: str, expected: str, got: Any) -> ManifestError:
            return ManifestError(f"{source}: field {fieldname!r}: expected {expected}, got {got!r}")

        if self.format != FORMAT:
            raise bad("format", repr(FORMAT), self.format)
        for name in ("name", "model_name", "onnx_file", "input_name", "output_name"):
            val = getattr(self, name)
            if not isinstance(val, str) or not val:
                raise bad(name, "a non-empty string", val)
        if "/" in self.onnx_file or "\\" in self.onnx_file or self.onnx_file.startswith("."):
            raise bad("onnx_file", "a plain file name inside the version folder", self.onnx_file)
        if self.task not in _TASKS:
            raise bad("task", " or ".join(map(repr, _TASKS)), self.task)
        if self.input_kind not in _KINDS:
            raise bad("input_kind", " or ".join(map(repr, _KINDS)), self.input_kind)
        for name in ("in_chans", "out_chans", "opset"):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise bad(name, "a positive integer", val)
        if self.in_chans != 3:
            raise bad("in_chans", "3 (RGB images)", self.in_chans)
        if not isinstance(self.onnx_sha256, str) or len(self.onnx_sha256) != 64:
            raise bad("onnx_sha256", "64 hex digits", self.onnx_sha256)
        if self.input_kind == "sphere":
            if not isinstance(self.nside, int) or isinstance(self.nside, bool) or self.nside < 1 or self.nside & (self.nside - 1):
                raise bad("nside", "a power of two", self.nside)
            bp = self.base_pixels
            if (
                not isinstance(bp, list)
                or not bp
                or not all(isinstance(b, int) and 0 <= b < 12 for b in bp)
                or len(set(bp)) != len(bp)
            ):
                raise bad("base_pixels", "a list of distinct integers 0..11", bp)
            if self.resample not in ("bilinear", "area"):
                raise bad("resample", "'bilinear' or 'area'", self.resample)
            spatial: list[int] = [self.npix or 0]
        else:
            sz = self.img_size
            if not isinstance(sz, list) or len(sz) != 2 or not all(isinstance(v, int) and v > 0 for v in sz):
                raise bad("img_size", "[height, width] positive integers", sz)
            spatial = list(sz)
        want_in = [-1, self.in_chans, *spatial]
        want_out = [-1, self.out_chans, *spatial]
        if list(self.input_shape) != want_in:
            raise bad("input_shape", str(want_in), self.input_shape)
        if list(self.output_shape) != want_out:
            raise bad("output_shape", str(want_out), self.output_shape)
        norm = self.normalisation
        if not isinstance(norm, dict):
            raise bad("normalisation", "an object", norm)
        for key in ("mean", "std"):
            vals = norm.get(key)
            if not isinstance(vals, list) or len(vals) != self.in_chans or not all(_finite(v) for v in vals):
                raise bad(f"normalisation.{key}", f"{self.in_chans} finite numbers", vals)
        if any(v <= 0 for v in norm["std"]):
            raise bad("normalisation.std", "positive numbers", norm["std"])
        if not _finite(norm.get("scale", 1 / 255)) or norm.get("colour_order", "RGB") not in ("RGB", "BGR"):
            raise bad("normalisation", "scale a number and colour_order 'RGB' or 'BGR'", norm)
        if self.task == "segmentation":
            if self.out_chans > 255:
                raise bad("out_chans", "at most 255 classes (255 marks 'no prediction' in masks)", self.out_chans)
            if not isinstance(self.class_names, list) or len(self.class_names) != self.out_chans:
                raise bad("class_names", f"a list of {self.out_chans} names", self.class_names)
            cc = self.class_colours
            if (
                not isinstance(cc, list)
                or len(cc) != self.out_chans
                or not all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in cc)
            ):
                raise bad("class_colours", f"{self.out_chans} BGR triples of 0..255", cc)
        else:
            if self.out_chans not in (1, 2):
                raise bad("out_chans", "1 (log-depth) or 2 (log-depth, log-variance) for depth", self.out_chans)
            d = self.depth
            if not isinstance(d, dict) or not _finite(d.get("log_mean")) or not _finite(d.get("log_std")) or d["log_std"] <= 0:
                raise bad("depth", "{'log_mean': number, 'log_std': positive number}", d)
        mv = self.model_versions
        if (
            not isinstance(mv, dict)
            or not mv
            or not all(isinstance(k, str) and k.isdigit() and int(k) > 0 and k == str(int(k)) for k in mv)
            or not all(v in PRECISIONS for v in mv.values())
        ):
            raise bad("model_versions", "an object {version number: 'fp32' | 'int8'}", mv)
        if mv.get(str(FP32_VERSION)) != "fp32":
            raise bad("model_versions", f"version {FP32_VERSION} 'fp32' (the exported model)", mv)
        if self.int8 is not None:
            if not isinstance(self.int8, dict) or not isinstance(self.int8.get("onnx_file"), str):
                raise bad("int8", "null or an object with 'onnx_file'", self.int8)
            f = self.int8["onnx_file"]
            if "/" in f or "\\" in f or f.startswith("."):
                raise bad("int8.onnx_file", "a plain file name inside the version folder", f)
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


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_end_to_end(e2e: Any, task: str, bad: Any) -> None:
    """The ``end_to_end`` object: camera, image size and the uint8 image -> mask/depth interface."""
    if not isinstance(e2e, dict):
        raise bad("end_to_end", "null or an object", e2e)
    for key in ("camera", "sphere_model"):
        if not isinstance(e2e.get(key), str) or not e2e[key]:
            raise bad(f"end_to_end.{key}", "a non-empty string", e2e.get(key))
    size = e2e.get("image_size")
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise bad("end_to_end.image_size", "[width, height] positive integers", size)
    if not isinstance(e2e.get("calibration"), dict):
        raise bad("end_to_end.calibration", "the camera's calibration (an object)", e2e.get("calibration"))
    w, h = size
    want = {"input": ("UINT8", [-1, h, w, 3]), "output": ("UINT8" if task == "segmentation" else "FP32", [-1, h, w])}
    for key, (dtype, shape) in want.items():
        t = e2e.get(key)
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise bad(f"end_to_end.{key}", "an object with a tensor 'name'", t)
        if t.get("datatype") != dtype or t.get("shape") != shape:
            raise bad(f"end_to_end.{key}", f"datatype {dtype!r}, shape {shape}", {k: t.get(k) for k in ("datatype", "shape")})


_FIELDS = {f.name for f in fields(Manifest)}
_REQUIRED = {f.name for f in fields(Manifest) if f.default is MISSING and f.default_factory is MISSING}


def manifest_from_dict(data: Any, source: str = "<manifest>") -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a JSON object, got {type(data).__name__}")
    missing = sorted(_REQUIRED - set(data))
    if missing:
        raise ManifestError(f"{source}: missing field(s) {missing}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ManifestError(f"{source}: unknown field(s) {unknown}")
    return Manifest(**data).validate(source)


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
