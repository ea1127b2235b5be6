"""The model repository (Triton-like layout), scanned once at start-up.

::

    REPO/
      <model_name>/model.onnx          (+ model.onnx.data if the weights are external)
      <model_name>/model.int8.onnx     (optional, ``heal-swin export --int8``)
      <model_name>/model.json          the manifest (heal_swin.export.manifest)
      cameras/<camera_name>.json       registered calibrations (WoodScape schema)

Names (folders, cameras, and every name a request carries) must match ``^[A-Za-z0-9_.-]+$`` and
not be ``.``/``..``: nothing a client sends is ever used as a path without that check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from heal_swin.errors import InputError
from heal_swin.export.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest, sha256_file
from heal_swin.geometry import FisheyeCamera

__all__ = [
    "NAME_RE",
    "InvalidNameError",
    "ModelEntry",
    "ModelRepository",
    "NotFoundError",
    "RepositoryError",
    "check_name",
    "model_load_error",
]

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
CAMERAS_DIR = "cameras"


class InvalidNameError(InputError):
    """A model/camera name that is not a plain name (path-like, empty, odd characters)."""


class NotFoundError(InputError):
    """An unknown model or camera."""


class RepositoryError(InputError):
    """A model repository that cannot be served (missing folder, bad manifest, checksum mismatch)."""


def model_load_error(path: Path, e: Exception) -> str:
    """One line for a model file onnxruntime cannot load (a corrupt file whose checksum was recorded as is)."""
    first = (str(e).strip().splitlines() or [""])[0]
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{path}: onnxruntime cannot load this model ({type(e).__name__}: {first})"


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise InvalidNameError(f"{what} {name!r}: expected 1-128 of letters, digits, '_', '.', '-' (no paths)")
    return name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    folder: Path
    manifest: Manifest
    onnx_path: Path  # the file that will be served (fp32 or int8)
    precision: str


class ModelRepository:
    """Models and cameras of a repository folder (validated at load: manifests, checksums, calibrations)."""

    def __init__(self, root: str | Path, precision: str = "fp32", verify_checksums: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root}: not a directory")
        self.models: dict[str, ModelEntry] = {}
        self.cameras: dict[str, FisheyeCamera] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name == CAMERAS_DIR:
                continue
            if not (folder / MANIFEST_NAME).is_file():
                continue  # not a model folder
            check_name(folder.name, f"model folder in {self.root}:")
            self.models[folder.name] = self._load_model(folder, precision, verify_checksums)
        cams = self.root / CAMERAS_DIR
        if cams.is_dir():
            for path in sorted(cams.glob("*.json")):
                check_name(path.stem, f"camera file {path}:")
                self.cameras[path.stem] = FisheyeCamera.from_json(path)
        if not self.models:
            raise RepositoryError(f"model repository {self.root}: no model folders (<name>/model.json + model.onnx)")

    @staticmethod
    def _load_model(folder: Path, precision: str, verify: bool) -> ModelEntry:
        try:
            manifest = load_manifest(folder / MANIFEST_NAME)
        except ManifestError as e:
            raise RepositoryError(str(e)) from None
        path, sha, used = folder / manifest.onnx_file, manifest.onnx_sha256, "fp32"
        if precision == "int8" and manifest.int8:
            path, sha, used = folder / manifest.int8["onnx_file"], manifest.int8.get("onnx_sha256"), "int8"
        if not path.is_file():
            raise RepositoryError(f"{folder}: {path.name} named by {MANIFEST_NAME} is missing")
        if verify and sha and sha256_file(path) != sha:
            raise RepositoryError(f"{path}: sha256 does not match {MANIFEST_NAME} (file changed or corrupt)")
        return ModelEntry(folder.name, folder, manifest, path, used)

    def model(self, name: str) -> ModelEntry:
        check_name(name, "model")
        if name not in self.models:
            raise NotFoundError(f"model {name!r} not found; known: {', '.join(self.models) or 'none'}")
        return self.models[name]

    def camera(self, name: str) -> FisheyeCamera:
        check_name(name, "camera")
        if name not in self.cameras:
            raise NotFoundError(f"camera {name!r} not found; registered: {', '.join(self.cameras) or 'none'}")
        return self.cameras[name]

    def default_model(self, task: str, defaults: dict[str, str]) -> ModelEntry:
        if task in defaults:
            return self.model(defaults[task])
        # Sphere models first (the service's purpose), then by name.
        for entry in sorted(self.models.values(), key=lambda e: (e.manifest.input_kind != "sphere", e.name)):
            if entry.manifest.task == task:
                return entry
        raise NotFoundError(f"no {task} model in the repository; models: {', '.join(self.models)}")
