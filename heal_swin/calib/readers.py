"""Readers of the files calibration tools write, each to a :class:`Conversion` (a FisheyeCamera + provenance).

=================  =====================================================================================
``opencv-fisheye`` OpenCV FileStorage YAML or JSON (what ``cv2.FileStorage`` writes): the 3x3 camera
                   matrix (``camera_matrix`` / ``K`` / ``cameraMatrix``), the 4 ``cv2.fisheye``
                   coefficients (``distortion_coefficients`` / ``D`` / ``dist_coeffs``) and the image
                   size (``image_width`` + ``image_height``, or ``image_size`` = [w, h]). Identity extrinsic.
                   ROS camera_info YAML ({rows, cols, data} matrices, distortion_model equidistant) too.
``kalibr``         Kalibr's camchain YAML (``camchain.yaml`` / ``camchain-imucam.yaml``), camera ``--camera``
                   (default cam0): ``camera_model`` + ``distortion_model`` pinhole+equidistant (KB),
                   pinhole+none (UCM, alpha 0), omni+radtan / omni+none / pinhole+radtan (Mei, xi 0 for
                   pinhole), ds, eucm; ``intrinsics``, ``distortion_coeffs``, ``resolution``. The extrinsic
                   maps the camera to the IMU (inverse of ``T_cam_imu``) or, without it, to cam0 (the chain
                   of ``T_cn_cnm1``).
``ucm``, ``ds``    basalt's calibration JSON (``value0``: ``intrinsics[i]`` = {camera_type, intrinsics
                   {fx, fy, cx, cy, alpha[, xi]}}, ``resolution[i]`` = [w, h], ``T_imu_cam[i]`` =
                   {px, py, pz, qx, qy, qz, qw}); ``--camera`` is the index i (default 0).
=================  =====================================================================================

All pixel coordinates are OpenCV's (the centre of the top-left pixel is (0, 0)), which these tools
share. Every problem is a :class:`CalibrationError` naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, number
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.rotations import matrix_to_quaternion

__all__ = [
    "FORMATS",
    "Conversion",
    "read_basalt",
    "read_calibration_file",
    "read_kalibr",
    "read_opencv_fisheye",
]

FORMATS = ("opencv-fisheye", "kalibr", "ucm", "ds")
DEFAULT_MAX_FIT_ERROR_PX = 0.5
_MAX_YAML_ALIASES = 100


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


def read_calibration_file(
    fmt: str, path: str | Path, camera: str | None = None, max_fit_error: float = DEFAULT_MAX_FIT_ERROR_PX
) -> Conversion:
    """Read ``path`` written by the tool ``fmt`` (one of ``FORMATS``)."""
    if fmt == "opencv-fisheye":
        if camera is not None:
            raise CalibrationError(
                str(path), "--camera", "no camera name (an OpenCV file holds one camera)", camera
            )
        return read_opencv_fisheye(path)
    if fmt == "kalibr":
        return read_kalibr(path, camera, max_fit_error)
    if fmt in ("ucm", "ds"):
        return read_basalt(path, fmt, camera)
    raise CalibrationError(str(path), "--from", f"one of {', '.join(FORMATS)}", fmt)


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


# ---------------------------------------------------------------- OpenCV
_K_KEYS = ("camera_matrix", "K", "cameraMatrix", "intrinsic_matrix")
_D_KEYS = ("distortion_coefficients", "D", "dist_coeffs", "distCoeffs", "distortion")


def _fs_node(fs, keys: tuple[str, ...]):
    for key in keys:
        node = fs.getNode(key)
        if not node.empty() and not node.isNone():
            return key, node
    return None, None


def _fs_numbers(node, src: str, fld: str) -> np.ndarray:
    if node.isMap():
        data = node.getNode("data")
        if node.getNode("dt").empty() and data.isSeq():  # ROS camera_info: {rows, cols, data}
            return _fs_numbers(data, src, f"{fld}.data")
        try:  # an opencv-matrix
            mat = node.mat()
        except cv2.error:
            mat = None
        if mat is None:
            raise CalibrationError(src, fld, "an opencv-matrix", "an unreadable map")
        return np.asarray(mat, dtype=np.float64).ravel()
    if node.isSeq():
        vals = []
        for i in range(node.size()):
            item = node.at(i)
            if not (item.isReal() or item.isInt()):
                raise CalibrationError(src, f"{fld}[{i}]", "a number", "a non-number")
            vals.append(item.real())
        return np.asarray(vals, dtype=np.float64)
    if node.isReal() or node.isInt():
        return np.array([node.real()])
    raise CalibrationError(src, fld, "a matrix or a list of numbers", "a string or an empty node")


def read_opencv_fisheye(path: str | Path) -> Conversion:
    """OpenCV fisheye (Kannala-Brandt) calibration from a FileStorage YAML/JSON file (or a ROS camera_info YAML)."""
    src = str(path)
    _read_bytes(path)  # existence and size limits before OpenCV parses it
    try:
        fs = cv2.FileStorage(src, cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as e:  # the binding may wrap cv2.error in a SystemError
        cause = e.__cause__ if isinstance(e, SystemError) and e.__cause__ is not None else e
        # OpenCV's parser says "...error: (-212:Parsing error) skipSpaces in function 'cam.yaml(10): Incorrect indentation'"
        text = re.sub(r"^.*?error: \([^)]*\) ", "", " ".join(str(cause).split()))
        m = re.fullmatch(r"(.*?) in function '(.*)'", text)
        msg = (m[2] if m else text).replace(src, Path(src).name)[:120]
        raise CalibrationError(src, "<file>", "an OpenCV FileStorage YAML or JSON file", msg) from None
    try:
        if not fs.isOpened():
            raise CalibrationError(src, "<file>", "an OpenCV FileStorage YAML or JSON file", "unreadable")
        kkey, knode = _fs_node(fs, _K_KEYS)
        if knode is None:
            raise CalibrationError(
                src, "camera_matrix", f"a 3x3 camera matrix (one of {', '.join(_K_KEYS)})", "missing"
            )
        k = _fs_numbers(knode, src, kkey)
        if k.size != 9 or not np.all(np.isfinite(k)):
            raise CalibrationError(src, kkey, "a 3x3 camera matrix of finite numbers", f"{k.size} values")
        k = k.reshape(3, 3)
        if not (k[0, 1] == 0 and k[1, 0] == 0 and k[2, 0] == 0 and k[2, 1] == 0 and k[2, 2] == 1):
            raise CalibrationError(
                src, kkey, "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)", k.round(6).tolist()
            )
        dkey, dnode = _fs_node(fs, _D_KEYS)
        if dnode is None:
            raise CalibrationError(
                src,
                "distortion_coefficients",
                f"4 cv2.fisheye coefficients (one of {', '.join(_D_KEYS)})",
                "missing",
            )
        d = _fs_numbers(dnode, src, dkey)
        if d.size != 4:
            why = f"{d.size} values" + (
                " (the pinhole model's k1 k2 p1 p2 [k3 ...]?)" if d.size in (5, 8, 12, 14) else ""
            )
            raise CalibrationError(src, dkey, "4 cv2.fisheye coefficients k1..k4", why)
        size = _opencv_size(fs, src)
        dm = fs.getNode("distortion_model")  # ROS camera_info names its model
        if (
            not dm.empty()
            and dm.isString()
            and dm.string() not in ("equidistant", "fisheye", "kannala_brandt")
        ):
            raise CalibrationError(src, "distortion_model", "equidistant (cv2.fisheye's model)", dm.string())
    finally:
        fs.release()
    with _source_fields(
        {"intrinsic.k1..k4": dkey, "intrinsic.k*": dkey, "intrinsic.*": kkey, "fx": kkey, "fy": kkey}
    ):
        cam = FisheyeCamera.from_focal(
            "kannala_brandt",
            k[0, 0],
            k[1, 1],
            k[0, 2],
            k[1, 2],
            *size,
            tuple(float(v) for v in d),
            name=Path(src).stem,
            source=src,
        )
    return Conversion(cam, "opencv-fisheye", "cv2.fisheye (Kannala-Brandt)")


def _opencv_size(fs, src: str) -> tuple[float, float]:
    wnode, hnode = fs.getNode("image_width"), fs.getNode("image_height")
    if not wnode.empty() and not hnode.empty():
        return (
            float(_fs_numbers(wnode, src, "image_width")[0]),
            float(_fs_numbers(hnode, src, "image_height")[0]),
        )
    key, node = _fs_node(fs, ("image_size", "imageSize", "resolution"))
    if node is None:
        raise CalibrationError(
            src, "image_size", "the image size (image_width + image_height, or image_size [w, h])", "missing"
        )
    vals = _fs_numbers(node, src, key)
    if vals.size != 2:
        raise CalibrationError(src, key, "[width, height]", f"{vals.size} values")
    return float(vals[0]), float(vals[1])


# ---------------------------------------------------------------- Kalibr
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


def _numbers(obj: dict, key: str, n: int | tuple[int, ...], src: str, parent: str) -> list[float]:
    fld = f"{parent}.{key}"
    if key not in obj:
        raise CalibrationError(src, fld, "a value", "missing")
    val = obj[key]
    ns = (n,) if isinstance(n, int) else n
    if not isinstance(val, list) or len(val) not in ns:
        raise CalibrationError(src, fld, f"a list of {' or '.join(map(str, ns))} numbers", val)
    return [number(v, src, f"{fld}[{i}]") for i, v in enumerate(val)]


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


# ---------------------------------------------------------------- basalt
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
