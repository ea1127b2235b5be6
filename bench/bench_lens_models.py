"""Lens-model benchmark: unproject / project of a whole 1280x966 image per lens model, and the radtan fit.

    python bench/bench_lens_models.py [--repeat 7]

For each model (WoodScape radial_poly, Kannala-Brandt, UCM, EUCM, double sphere, Mei) it times
``camera.pixel_rays()`` (unproject every pixel centre: Newton for the polynomial models, closed form
for UCM / EUCM / DS) and ``camera.project`` of those rays, the models interleaved in every repeat (so
that machine load hits them alike), and reports the round-trip error max |project(unproject(p)) - p|
over the whole image. Then it converts a Kalibr omni + radtan camera with tangential terms (the one
fitted case) and reports the fit's reprojection error and time. Prints a table and writes
bench/results/lens_models.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from heal_swin.calib.mei_fit import fit_mei_radtan
from heal_swin.geometry import FisheyeCamera
from heal_swin.io import save_json

W, H = 1280, 966
PIXEL = {"aspect_ratio": 1.0, "cx_offset": 3.942, "cy_offset": -3.093, "width": W, "height": H}
MODELS = {
    "radial_poly": {"k1": 339.749, "k2": -31.988, "k3": 48.275, "k4": -7.201},  # WoodScape FV
    "kannala_brandt": {"f": 330.0, "k1": 0.05, "k2": -0.01, "k3": 0.003, "k4": -0.0004},
    "ucm": {"f": 280.0, "alpha": 0.55},
    "eucm": {"f": 280.0, "alpha": 0.55, "beta": 1.05},
    "double_sphere": {"f": 280.0, "xi": -0.1, "alpha": 0.55},
    "mei": {"f": 500.0, "xi": 0.9, "k1": -0.05, "k2": 0.01},
}
KALIBR_OMNI = {
    "intr": (1.71, 1160.0, 1159.0, 376.0, 240.0),
    "dist": (-0.21, 0.12, 0.0004, -0.0003),
    "size": (752, 480),
}


def camera(model: str) -> FisheyeCamera:
    intr = {**PIXEL, "model": model, **MODELS[model]}
    return FisheyeCamera.from_dict(
        {"intrinsic": intr, "extrinsic": {"quaternion": [0, 0, 0, 1], "translation": [0, 0, 0]}}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lens_models.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    cams = {m: camera(m) for m in MODELS}
    times: dict[str, dict[str, list[float]]] = {m: {"unproject": [], "project": []} for m in MODELS}
    err: dict[str, float] = {}
    for rep in range(args.repeat + 1):  # the first round is a warm-up
        for m, cam in cams.items():
            t0 = time.perf_counter()
            rays = cam.pixel_rays()
            t1 = time.perf_counter()
            uv = cam.project(rays)
            t2 = time.perf_counter()
            if rep:
                times[m]["unproject"].append(t1 - t0)
                times[m]["project"].append(t2 - t1)
            v, u = np.mgrid[0:H, 0:W]
            err[m] = float(np.abs(uv - np.stack([u, v], -1)).max())
    rows = []
    base = statistics.median(times["radial_poly"]["unproject"])
    for m, cam in cams.items():
        un, pr = statistics.median(times[m]["unproject"]), statistics.median(times[m]["project"])
        rows.append(
            {
                "model": m,
                "unproject_ms": 1e3 * un,
                "project_ms": 1e3 * pr,
                "unproject_vs_radial_poly": un / base,
                "round_trip_max_px": err[m],
                "max_incidence_deg": float(np.degrees(cam.max_incidence_angle)),
            }
        )
    t0 = time.perf_counter()
    _, fit = fit_mei_radtan(
        KALIBR_OMNI["intr"], KALIBR_OMNI["dist"], KALIBR_OMNI["size"], {"source": "bench"}, "dist", 0.5
    )
    fit["seconds"] = time.perf_counter() - t0
    print(
        f"lens models, whole {W}x{H} image (median of {args.repeat}, interleaved); load average {load_before[0]:.2f}"
    )
    print(
        f"{'model':16s} {'unproject ms':>13s} {'x poly':>7s} {'project ms':>11s} {'round trip px':>14s} {'corner deg':>11s}"
    )
    for r in rows:
        print(
            f"{r['model']:16s} {r['unproject_ms']:13.1f} {r['unproject_vs_radial_poly']:7.2f} {r['project_ms']:11.1f} "
            f"{r['round_trip_max_px']:14.2e} {r['max_incidence_deg']:11.1f}"
        )
    print(
        f"kalibr omni+radtan {KALIBR_OMNI['size'][0]}x{KALIBR_OMNI['size'][1]}, tangential {KALIBR_OMNI['dist'][2:]}: "
        f"fit max {fit['max_px']:.4f} px, mean {fit['mean_px']:.4f} px over {fit['pixels']} pixels, {fit['seconds']:.2f} s"
    )
    save_json(
        args.out,
        {
            "rows": rows,
            "radtan_fit": fit,
            "repeat": args.repeat,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cpu": platform.processor() or platform.machine(),
            "command": "python bench/bench_lens_models.py",
        },
    )


if __name__ == "__main__":
    main()
