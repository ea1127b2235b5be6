"""Kalibr's camchain YAML -> :class:`Conversion` (KB, UCM, Mei, DS, EUCM; extrinsics to the IMU or cam0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.calib.conversion import (
    DEFAULT_MAX_FIT_ERROR_PX,
    Conversion,
    _camera_to_ref,
    _numbers,
    _read_bytes,
    _rigid,
    _source_fields,
)
from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["read_kalibr"]

_MAX_YAML_ALIASES = 100


def _yaml(data: bytes, src: str) -> Any:
    import yaml

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CalibrationError(src, "<file>", "UTF-8 YAML text", "binary data") from None
    try:
        # PyYAML shares aliased objects, but a "billion laughs" of nested aliases is still no calibration.
        aliases = sum(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader))
        if aliases > _MAX_YAML_ALIASES:
            raise CalibrationError(
                src, "<file>", f"YAML with at most {_MAX_YAML_ALIASES} aliases", f"{aliases} aliases"
            )
        if _lim.json_depth(text) > _lim.MAX_JSON_DEPTH:
            raise CalibrationError(src, "<file>", f"YAML nested at most {_lim.MAX_JSON_DEPTH} deep", "deeper")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CalibrationError(
            src, "<file>", "valid YAML", f"{getattr(e, 'problem', None) or type(e).__name__}{where}"
        ) from None


# (camera_model, distortion_model) -> (our model, number of intrinsics, number of distortion coefficients)
_KALIBR = {
    ("pinhole", "equidistant"): ("kannala_brandt", 4, 4),
    ("pinhole", "equi"): ("kannala_brandt", 4, 4),  # the --models spelling
    ("pinhole", "none"): ("ucm", 4, 0),
    ("pinhole", "radtan"): ("mei", 4, 4),
    ("omni", "radtan"): ("mei", 5, 4),
    ("omni", "none"): ("mei", 5, 0),
    ("ds", "none"): ("double_sphere", 6, 0),
    ("eucm", "none"): ("eucm", 6, 0),
}


def read_kalibr(
    path: str | Path, camera: str | None = None, max_fit_error: float = DEFAULT_MAX_FIT_ERROR_PX
) -> Conversion:
    """Camera ``camera`` (``cam0`` .. or its index) of a Kalibr camchain YAML."""
    src = str(path)
    data = _yaml(_read_bytes(path), src)
    if not isinstance(data, dict):
        raise CalibrationError(src, "<root>", "a mapping of cameras (cam0, cam1, ...)", type(data).__name__)
    name = "cam0" if camera is None else (f"cam{camera}" if str(camera).isdigit() else str(camera))
    if name not in data:
        cams = ", ".join(k for k in data if isinstance(k, str) and k.startswith("cam")) or "none"
        raise CalibrationError(src, name, f"a camera of the camchain (found: {cams})", "missing")
    cam = data[name]
    if not isinstance(cam, dict):
        raise CalibrationError(src, name, "a mapping", type(cam).__name__)
    cmodel, dmodel = cam.get("camera_model"), cam.get("distortion_model", "none")
    if cmodel is None:
        raise CalibrationError(src, f"{name}.camera_model", "a value", "missing")
    if (cmodel, dmodel) not in _KALIBR:
        pairs = ", ".join(f"{c}+{d}" for c, d in _KALIBR if d != "equi")
        raise CalibrationError(src, f"{name}.camera_model", f"one of {pairs}", f"{cmodel}+{dmodel}")
    model, n_intr, n_dist = _KALIBR[(cmodel, dmodel)]
    dmodel = "equidistant" if dmodel == "equi" else dmodel
    intr = _numbers(cam, "intrinsics", n_intr, src, name)
    if n_dist:
        dist = _numbers(cam, "distortion_coeffs", n_dist, src, name)
    elif cam.get("distortion_coeffs") not in (None, []):
        raise CalibrationError(
            src,
            f"{name}.distortion_coeffs",
            f"no coefficients for {cmodel}+{dmodel}",
            cam["distortion_coeffs"],
        )
    else:
        dist = []
    w, h = _numbers(cam, "resolution", 2, src, name)
    kw = {"name": name, "source": src, **_kalibr_extrinsic(data, name, src)}
    with _source_fields(
        {
            "intrinsic.width": f"{name}.resolution",
            "intrinsic.height": f"{name}.resolution",
            "intrinsic.k1..k4": f"{name}.distortion_coeffs",
            "intrinsic.xi,k1,k2": f"{name}.intrinsics/distortion_coeffs",
            "intrinsic.k*": f"{name}.distortion_coeffs",
            "intrinsic.*": f"{name}.intrinsics",
            "fx": f"{name}.intrinsics",
            "fy": f"{name}.intrinsics",
            "extrinsic.*": f"{name}.T_cam_imu",
        }
    ):
        return _kalibr_camera(model, cmodel, dmodel, intr, dist, (w, h), kw, name, max_fit_error)


def _kalibr_camera(model, cmodel, dmodel, intr, dist, size, kw, name, max_fit_error) -> Conversion:
    w, h = size
    label = f"kalibr {cmodel}+{dmodel}"
    if model == "kannala_brandt":
        fu, fv, pu, pv = intr
        return Conversion(
            FisheyeCamera.from_focal(model, fu, fv, pu, pv, w, h, tuple(dist), **kw), "kalibr", label
        )
    if model == "ucm":
        fu, fv, pu, pv = intr
        return Conversion(
            FisheyeCamera.from_focal(model, fu, fv, pu, pv, w, h, (0.0,), **kw), "kalibr", label
        )
    if model == "double_sphere":
        xi, alpha, fu, fv, pu, pv = intr
        return Conversion(
            FisheyeCamera.from_focal(model, fu, fv, pu, pv, w, h, (xi, alpha), **kw), "kalibr", label
        )
    if model == "eucm":
        alpha, beta, fu, fv, pu, pv = intr
        return Conversion(
            FisheyeCamera.from_focal(model, fu, fv, pu, pv, w, h, (alpha, beta), **kw), "kalibr", label
        )
    xi, fu, fv, pu, pv = intr if cmodel == "omni" else (0.0, *intr)
    k1, k2, p1, p2 = dist if dist else (0.0, 0.0, 0.0, 0.0)
    if p1 == 0 and p2 == 0:
        return Conversion(
            FisheyeCamera.from_focal("mei", fu, fv, pu, pv, w, h, (xi, k1, k2), **kw), "kalibr", label
        )
    from heal_swin.calib.mei_fit import fit_mei_radtan

    camera_fit, report = fit_mei_radtan(
        (xi, fu, fv, pu, pv), (k1, k2, p1, p2), (w, h), kw, f"{name}.distortion_coeffs", max_fit_error
    )
    note = "the tangential distortion (r1, r2) is approximated by a radially symmetric Mei model (fit)"
    return Conversion(camera_fit, "kalibr", label, fit=report, notes=[note])


def _kalibr_extrinsic(data: dict, name: str, src: str) -> dict[str, Any]:
    cam = data[name]
    if "T_cam_imu" in cam:
        return _camera_to_ref(_rigid(cam["T_cam_imu"], src, f"{name}.T_cam_imu"))
    # Without the IMU: camN -> cam0 through the chain T_cn_cnm1 (cam(n-1) -> camN).
    index = int(name[3:]) if name[3:].isdigit() else 0
    t = np.eye(4)
    for i in range(index, 0, -1):
        ci = data.get(f"cam{i}")
        if not isinstance(ci, dict) or "T_cn_cnm1" not in ci:
            raise CalibrationError(
                src, f"cam{i}.T_cn_cnm1", "the transform from the previous camera", "missing"
            )
        t = t @ _rigid(ci["T_cn_cnm1"], src, f"cam{i}.T_cn_cnm1")
    return _camera_to_ref(t)
