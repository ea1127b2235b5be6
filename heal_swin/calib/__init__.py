"""Calibration ingestion: files written by OpenCV, Kalibr and basalt -> the suite's calibration JSON.

``heal-swin calib convert --from opencv-fisheye|kalibr|ucm|ds IN --out OUT.json`` (``heal_swin.calib.cli``);
the readers are in ``heal_swin.calib.readers``, the one fitted case (Kalibr radtan's tangential part)
in ``heal_swin.calib.mei_fit``. Only ``heal_swin.geometry`` is imported (no torch).
"""

from heal_swin.calib.readers import FORMATS, Conversion, read_calibration_file

__all__ = ["FORMATS", "Conversion", "read_calibration_file"]
