"""The ``heal-swin calib`` command group: ``calib convert``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["add_calib_commands"]


def add_calib_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``calib convert`` on the main CLI's subparsers."""
    from heal_swin.calib.readers import DEFAULT_MAX_FIT_ERROR_PX, FORMATS

    calib = subparsers.add_parser(
        "calib",
        help="convert calibrations from OpenCV, Kalibr, basalt",
        description="Calibration files of other tools -> the suite's calibration JSON.",
    )
    sub = calib.add_subparsers(dest="calib_command", metavar="{convert}")
    sub.required = True
    c = sub.add_parser(
        "convert",
        help="convert an OpenCV fisheye / Kalibr camchain / basalt UCM or DS calibration",
        description="Read a calibration written by OpenCV (cv2.FileStorage YAML/JSON, cv2.fisheye), Kalibr (camchain YAML) "
        "or basalt (calibration JSON, ucm / ds cameras) and write the calibration JSON that project, predict and the "
        "service read. Exact for every model except Kalibr radtan's tangential terms, which are fitted (the "
        "reprojection error over the image is printed; a fit worse than --max-fit-error is refused).",
    )
    c.add_argument("--from", dest="fmt", required=True, choices=FORMATS, help="the tool / format of IN")
    c.add_argument("input", type=Path, metavar="IN", help="the calibration file")
    c.add_argument("--out", type=Path, required=True, help="output calibration JSON")
    c.add_argument(
        "--camera", default=None, help="Kalibr: cam0 (default), cam1, ...; basalt: camera index (default 0)"
    )
    c.add_argument("--name", default=None, help="camera name written to the JSON (default: the source's)")
    c.add_argument(
        "--max-fit-error",
        type=float,
        default=DEFAULT_MAX_FIT_ERROR_PX,
        help=f"largest reprojection error (px) a fitted model may have (default {DEFAULT_MAX_FIT_ERROR_PX})",
    )
    c.set_defaults(func=_run_convert)
    return calib


def _run_convert(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from heal_swin.calib.readers import read_calibration_file
    from heal_swin.errors import InputError
    from heal_swin.geometry.camera import FisheyeCamera
    from heal_swin.io import save_json

    if not (args.max_fit_error > 0 and math.isfinite(args.max_fit_error)):
        raise InputError(f"--max-fit-error: expected a positive number of pixels, got {args.max_fit_error}")
    conv = read_calibration_file(args.fmt, args.input, args.camera, args.max_fit_error)
    if args.name is not None:
        conv.camera = dataclasses.replace(conv.camera, name=args.name)
    data = conv.to_dict()
    # What we write must read back as the same camera (the schema's own validation).
    back = FisheyeCamera.from_dict(data, source=str(args.out))
    if back.intrinsics_key != conv.camera.intrinsics_key or not np.allclose(
        back.rotation, conv.camera.rotation, atol=1e-12
    ):
        raise AssertionError("converted calibration does not round-trip")
    save_json(args.out, data)
    cam = conv.camera
    cx, cy = cam.principal_point
    params = ", ".join(f"{k} {v:.6g}" for k, v in cam.lens.as_dict().items())
    print(f"{args.input} ({conv.source_model}) -> {args.out}")
    print(f"  model      {cam.model}: {params}")
    print(
        f"  image      {cam.width}x{cam.height}, principal point ({cx:.2f}, {cy:.2f}) px, aspect {cam.aspect_ratio:.6f}"
    )
    print(
        f"  coverage   up to {math.degrees(cam.max_incidence_angle):.1f} deg from the optical axis at the corners"
    )
    if conv.fit is None:
        print("  accuracy   exact (the same camera model, no fit)")
    else:
        f = conv.fit
        print(
            f"  accuracy   fitted: reprojection error over {f['pixels']} pixels max {f['max_px']:.4f} px, "
            f"mean {f['mean_px']:.4f} px (threshold {f['threshold_px']:g} px)"
        )
    return 0
