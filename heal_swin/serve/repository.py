"""The model repository (Triton's layout, :mod:`heal_swin.inference.triton`), scanned once at start-up.

::

    REPO/
      <model_name>/config.pbtxt        Triton's model configuration (not read here)
      <model_name>/model.json          the manifest (heal_swin.inference.manifest)
      <model_name>/1/model.onnx        version 1, fp32 (+ model.onnx.data if the weights are external)
      <model_name>/2/model.onnx        version 2, int8 (optional, ``heal-swin export --int8``)
      <other>/config.pbtxt + <other>/<version>/model.onnx
                                       any ONNX model without our manifest (e.g. the end-to-end camera
                                       models of ``heal-swin export --camera``): KServe v2 only
      cameras/<camera_name>.json       registered calibrations (WoodScape schema)

Every version is loaded; requests without a version get the default one: the highest, or with
``precision`` the highest of that precision (fp32 where a model has no int8 version). A folder in
the layout before versions (``model.onnx`` beside ``model.json``) is an error that names the
``heal-swin export`` command rewriting it.

Names (folders, cameras, and every name a request carries) must match ``^[A-Za-z0-9_.-]+$`` and
not be ``.``/``..``: nothing a client sends is ever used as a path without that check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from heal_swin.errors import InputError
from heal_swin.geometry import FisheyeCamera
from heal_swin.inference.manifest import (
    MANIFEST_NAME,
    OLD_FORMATS,
    ONNX_NAME,
    Manifest,
    ManifestError,
    load_manifest,
    sha256_file,
)
from heal_swin.inference.triton import CONFIG_NAME, old_layout, reexport_hint, version_folders

__all__ = [
    "NAME_PATTERN",
    "NAME_RE",
    "InvalidNameError",
    "ModelEntry",
    "ModelRepository",
    "NotFoundError",
    "RepositoryError",
    "check_name",
    "model_load_error",
]

# 1-128 of letters, digits, '_', '.', '-', and not '.' or '..' (spelt without look-ahead: it is also the
# OpenAPI pattern of every name a request carries, checked by pydantic's regex engine)
NAME_PATTERN = (
    r"^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,126}|\.\.[A-Za-z0-9_.-]{1,126})$"
)
NAME_RE = re.compile(NAME_PATTERN)
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
        raise InvalidNameError(
            f"{what} {name!r}: expected 1-128 of letters, digits, '_', '.', '-' (no paths)"
        )
    return name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    folder: Path
    manifest: Manifest | None  # None: an ONNX model without our manifest (KServe v2 only)
    onnx_path: Path  # the file that will be served (fp32 or int8)
    precision: str
    version: int = 1


class ModelRepository:
    """Models and cameras of a repository folder (validated at load: manifests, checksums, calibrations)."""

    def __init__(self, root: str | Path, precision: str | None = None, verify_checksums: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root}: not a directory")
        self.models: dict[str, ModelEntry] = {}  # the default version of each model
        self.versions: dict[str, dict[int, ModelEntry]] = {}
        self.cameras: dict[str, FisheyeCamera] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name == CAMERAS_DIR:
                continue
            if (folder / MANIFEST_NAME).is_file():
                check_name(folder.name, f"model folder in {self.root}:")
                versions = self._load_model(folder, verify_checksums)
            elif (folder / CONFIG_NAME).is_file() and any(
                (folder / str(v) / ONNX_NAME).is_file() for v in version_folders(folder)
            ):
                check_name(folder.name, f"model folder in {self.root}:")
                versions = self._load_raw(
                    folder
                )  # any ONNX model in Triton's layout: served over KServe v2 only
            else:
                continue  # not a model folder we can serve (notes, a Triton model of another backend, ...)
            self.versions[folder.name] = versions
            self.models[folder.name] = _default_version(versions, precision)
        cams = self.root / CAMERAS_DIR
        if cams.is_dir():
            for path in sorted(cams.glob("*.json")):
                check_name(path.stem, f"camera file {path}:")
                self.cameras[path.stem] = FisheyeCamera.from_json(path)
        if not self.models:
            raise RepositoryError(
                f"model repository {self.root}: no model folders (<name>/model.json + config.pbtxt + <version>/model.onnx)"
            )

    @staticmethod
    def _load_model(folder: Path, verify: bool) -> dict[int, ModelEntry]:
        if old_layout(folder):
            raise RepositoryError(
                f"{folder}: old model folder layout (model.onnx beside model.json, no version folders); "
                f"re-export it: {reexport_hint(folder)}"
            )
        try:
            manifest = load_manifest(folder / MANIFEST_NAME)
        except ManifestError as e:
            if any(f in str(e) for f in OLD_FORMATS):
                raise RepositoryError(f"{e}; re-export it: {reexport_hint(folder)}") from None
            raise RepositoryError(str(e)) from None
        found = version_folders(folder)
        named = {int(v) for v in manifest.model_versions}
        if set(found) - named:
            raise RepositoryError(
                f"{folder}: version folder(s) {sorted(set(found) - named)} not in {MANIFEST_NAME} 'model_versions' "
                f"{manifest.model_versions}"
            )
        entries: dict[int, ModelEntry] = {}
        for version in sorted(named):
            path = folder / str(version) / manifest.onnx_file
            if not path.is_file():
                raise RepositoryError(
                    f"{folder}: {version}/{manifest.onnx_file} named by {MANIFEST_NAME} is missing"
                )
            sha = manifest.sha256_of(version)
            if verify and sha and sha256_file(path) != sha:
                raise RepositoryError(
                    f"{path}: sha256 does not match {MANIFEST_NAME} (file changed or corrupt)"
                )
            entries[version] = ModelEntry(
                folder.name, folder, manifest, path, manifest.precision_of(version) or "fp32", version
            )
        return entries

    @staticmethod
    def _load_raw(folder: Path) -> dict[int, ModelEntry]:
        entries = {}
        for version in version_folders(folder):
            path = folder / str(version) / ONNX_NAME
            if path.is_file():
                entries[int(version)] = ModelEntry(folder.name, folder, None, path, "unknown", int(version))
        return entries

    def model(self, name: str, version: int | str | None = None) -> ModelEntry:
        """The default version of a model, or the given one (a KServe v2 ``versions/{v}`` path)."""
        check_name(name, "model")
        if name not in self.models:
            raise NotFoundError(f"model {name!r} not found; known: {', '.join(self.models) or 'none'}")
        if version is None or version == "":
            return self.models[name]
        versions = self.versions[name]
        v = str(version)
        if not (v.isdigit() and v == str(int(v)) and int(v) in versions):
            raise NotFoundError(
                f"model {name!r} has no version {v!r}; versions: {', '.join(map(str, versions))}"
            )
        return versions[int(v)]

    def camera(self, name: str) -> FisheyeCamera:
        check_name(name, "camera")
        if name not in self.cameras:
            raise NotFoundError(f"camera {name!r} not found; registered: {', '.join(self.cameras) or 'none'}")
        return self.cameras[name]

    def default_model(self, task: str, defaults: dict[str, str]) -> ModelEntry:
        if task in defaults:
            return self.model(defaults[task])
        # Sphere models first (the service's purpose), then by name.
        # End-to-end camera models (uint8 frames in, KServe v2 only) are never a /v1 default.
        ours = [
            e
            for e in self.models.values()
            if e.manifest is not None and getattr(e.manifest, "end_to_end", None) is None
        ]
        for entry in sorted(ours, key=lambda e: (e.manifest.input_kind != "sphere", e.name)):
            if entry.manifest.task == task:
                return entry
        raise NotFoundError(f"no {task} model in the repository; models: {', '.join(self.models)}")


def _default_version(versions: dict[int, ModelEntry], precision: str | None) -> ModelEntry:
    """The highest version, or the highest of ``precision`` (fp32 where there is no such version)."""
    if precision:
        for want in (precision, "fp32"):
            hits = [e for v, e in sorted(versions.items()) if e.precision == want]
            if hits:
                return hits[-1]
    return versions[max(versions)]
