"""OpenCV FileStorage YAML / JSON with ``cv2.fisheye`` coefficients (and ROS camera_info) -> :class:`Conversion`."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from heal_swin.calib.conversion import (
    Conversion,
    _read_bytes,
    _source_fields,
)
from heal_swin.geometry.calibration import CalibrationError
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["read_opencv_fisheye"]

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
