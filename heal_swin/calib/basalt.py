"""basalt's calibration JSON (unified and double-sphere cameras) -> :class:`Conversion`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heal_swin.calib.conversion import (
    Conversion,
    _numbers,
    _read_bytes,
    _source_fields,
)
from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, number
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["read_basalt"]

_BASALT = {"ucm": ("ucm", ("alpha",)), "ds": ("double_sphere", ("xi", "alpha"))}


def read_basalt(path: str | Path, fmt: str, camera: str | None = None) -> Conversion:
    """Camera ``camera`` (an index, default 0) of a basalt calibration JSON whose camera_type is ``fmt``."""
    src = str(path)
    data = _lim.parse_calibration_json(_read_bytes(path), src)
    root = data.get("value0") if isinstance(data, dict) else None
    if not isinstance(root, dict):
        raise CalibrationError(
            src, "value0", "an object (basalt's calibration JSON)", "missing" if root is None else root
        )
    i = 0 if camera is None else camera
    if not str(i).isdigit():
        raise CalibrationError(src, "--camera", "a camera index (0, 1, ...)", camera)
    i = int(i)
    cams = root.get("intrinsics")
    if not isinstance(cams, list) or i >= len(cams) or not isinstance(cams[i], dict):
        raise CalibrationError(src, f"value0.intrinsics[{i}]", "a camera object", "missing")
    model, extra = _BASALT[fmt]
    ctype = cams[i].get("camera_type")
    if ctype != fmt:
        raise CalibrationError(src, f"value0.intrinsics[{i}].camera_type", f"{fmt!r} (--from {fmt})", ctype)
    p = cams[i].get("intrinsics")
    fld = f"value0.intrinsics[{i}].intrinsics"
    if not isinstance(p, dict):
        raise CalibrationError(src, fld, "an object", p)
    vals = {}
    for key in ("fx", "fy", "cx", "cy", *extra):
        if key not in p:
            raise CalibrationError(src, f"{fld}.{key}", "a number", "missing")
        vals[key] = number(p[key], src, f"{fld}.{key}")
    res = root.get("resolution")
    if not isinstance(res, list) or i >= len(res):
        raise CalibrationError(src, f"value0.resolution[{i}]", "[width, height]", "missing")
    w, h = _numbers({"r": res[i]}, "r", 2, src, f"value0.resolution[{i}]")
    kw: dict[str, Any] = {"name": f"cam{i}", "source": src}
    poses = root.get("T_imu_cam")
    if isinstance(poses, list) and i < len(poses):
        pose, pfld = poses[i], f"value0.T_imu_cam[{i}]"
        if not isinstance(pose, dict):
            raise CalibrationError(src, pfld, "an object {px, py, pz, qx, qy, qz, qw}", pose)
        get = {k: number(pose.get(k), src, f"{pfld}.{k}") for k in ("px", "py", "pz", "qx", "qy", "qz", "qw")}
        kw["translation"] = (get["px"], get["py"], get["pz"])  # basalt's T_imu_cam maps camera -> IMU
        kw["quaternion"] = (get["qx"], get["qy"], get["qz"], get["qw"])
    with _source_fields(
        {
            "intrinsic.width": f"value0.resolution[{i}]",
            "intrinsic.height": f"value0.resolution[{i}]",
            "intrinsic.*": fld,
            "fx": f"{fld}.fx",
            "fy": f"{fld}.fy",
            "extrinsic.*": f"value0.T_imu_cam[{i}]",
        }
    ):
        cam = FisheyeCamera.from_focal(
            model, vals["fx"], vals["fy"], vals["cx"], vals["cy"], w, h, tuple(vals[k] for k in extra), **kw
        )
    return Conversion(cam, "basalt", f"basalt {fmt}")
