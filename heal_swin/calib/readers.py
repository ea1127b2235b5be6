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

from pathlib import Path

from heal_swin.calib.basalt import read_basalt
from heal_swin.calib.conversion import DEFAULT_MAX_FIT_ERROR_PX, Conversion
from heal_swin.calib.kalibr import read_kalibr
from heal_swin.calib.opencv import read_opencv_fisheye
from heal_swin.geometry.calibration import CalibrationError

__all__ = [
    "DEFAULT_MAX_FIT_ERROR_PX",
    "FORMATS",
    "Conversion",
    "read_basalt",
    "read_calibration_file",
    "read_kalibr",
    "read_opencv_fisheye",
]

FORMATS = ("opencv-fisheye", "kalibr", "ucm", "ds")


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
