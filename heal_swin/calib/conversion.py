"""What every calibration reader returns (:class:`Conversion`) and the checks they share:
file size, 4x4 rigid transforms, number lists, source field names in errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, number
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.rotations import matrix_to_quaternion

__all__ = ["DEFAULT_MAX_FIT_ERROR_PX", "Conversion"]

DEFAULT_MAX_FIT_ERROR_PX = 0.5


@dataclass
class Conversion:
    """A converted camera and where it came from; ``fit`` is set when the model was approximated."""

    camera: FisheyeCamera
    tool: str
    source_model: str
    fit: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The calibration JSON (``FisheyeCamera.from_json`` reads it) with a ``provenance`` block."""
        prov: dict[str, Any] = {
            "tool": self.tool,
            "source_model": self.source_model,
            "exact": self.fit is None,
        }
        if self.fit is not None:
            prov["fit"] = self.fit
        if self.notes:
            prov["notes"] = self.notes
        return {**self.camera.to_dict(), "provenance": prov}


def _read_bytes(path: str | Path) -> bytes:
    src, limit = str(path), _lim.MAX_CALIBRATION_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise CalibrationError(src, "<file>", "an existing calibration file", "no such file") from None
    except OSError as e:
        raise CalibrationError(src, "<file>", "a readable file", e.strerror or type(e).__name__) from None
    if len(data) > limit:
        raise CalibrationError(src, "<file>", f"at most {limit} bytes", "a larger file")
    return data


@contextmanager
def _source_fields(mapping: dict[str, str]) -> Iterator[None]:
    """Name the source file's field next to ours in errors the camera raises (e.g. ``D (intrinsic.k1..k4)``)."""
    try:
        yield
    except CalibrationError as e:
        theirs = mapping.get(e.field) or next(
            (v for k, v in mapping.items() if k.endswith(".*") and e.field.startswith(k[:-1])), None
        )
        if theirs is None:
            raise
        raise CalibrationError(e.source, f"{theirs} ({e.field})", e.expected, e.got) from None


def _rigid(t: Any, src: str, fld: str) -> np.ndarray:
    """A 4x4 rigid transform (rotation orthonormal with det +1, last row 0 0 0 1)."""
    rows = t if isinstance(t, list) else None
    if rows is None or len(rows) != 4 or not all(isinstance(r, list) and len(r) == 4 for r in rows):
        raise CalibrationError(src, fld, "a 4x4 matrix (list of 4 rows of 4 numbers)", t)
    m = np.array([[number(v, src, f"{fld}[{i}][{j}]") for j, v in enumerate(r)] for i, r in enumerate(rows)])
    r = m[:3, :3]
    if not (
        np.abs(r.T @ r - np.eye(3)).max() < 1e-4 and np.linalg.det(r) > 0 and np.allclose(m[3], [0, 0, 0, 1])
    ):
        raise CalibrationError(
            src, fld, "a rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)", t
        )
    return m


def _camera_to_ref(t_cam_ref: np.ndarray) -> dict[str, tuple[float, ...]]:
    """Extrinsic (camera -> reference) of ``T_cam_ref`` (reference -> camera: p_cam = T p_ref)."""
    r, t = t_cam_ref[:3, :3], t_cam_ref[:3, 3]
    return {"quaternion": tuple(matrix_to_quaternion(r.T)), "translation": tuple(-r.T @ t)}


def _numbers(obj: dict, key: str, n: int | tuple[int, ...], src: str, parent: str) -> list[float]:
    fld = f"{parent}.{key}"
    if key not in obj:
        raise CalibrationError(src, fld, "a value", "missing")
    val = obj[key]
    ns = (n,) if isinstance(n, int) else n
    if not isinstance(val, list) or len(val) not in ns:
        raise CalibrationError(src, fld, f"a list of {' or '.join(map(str, ns))} numbers", val)
    return [number(v, src, f"{fld}[{i}]") for i, v in enumerate(val)]
