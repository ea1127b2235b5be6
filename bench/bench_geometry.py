"""Geometry benchmark: fisheye <-> HEALPix projection with precomputed maps vs the naive way.

    python bench/bench_geometry.py [--calib CALIB.json] [--nside 256] [--repeat 20] [--area-nsides 32,64]

Prints a table and writes bench/results/geometry.json. Without --calib it uses the synthetic rig's
front camera (the WoodScape FV intrinsics, 1280x966). "naive" recomputes the sampling per call with
healpy and numpy (what a per-image script does); "python loop" samples pixel by pixel in Python on a
subset, extrapolated.
The anti-aliasing table compares ``to_sphere(..., "area")`` with ``"bilinear"`` (and with the
``cv2.remap`` bilinear the taps replaced) at grids coarser than the image, calls interleaved.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import healpy as hp
import numpy as np

from heal_swin.data.synthetic.rig import rig_cameras
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.geometry import projector as projector_module
from heal_swin.io import save_json


def timeit(fn: Callable[[], object], repeat: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times)}


def naive_to_sphere(
    camera: FisheyeCamera, nside: int, base: tuple[int, ...], image: np.ndarray
) -> np.ndarray:
    """Per call: healpy directions, projection, numpy bilinear sampling."""
    g = (np.asarray(base)[:, None] * nside**2 + np.arange(nside**2)).reshape(-1)
    vec = np.stack(hp.pix2vec(nside, g, nest=True), -1)
    uv = camera.project(vec)
    ok = camera.sees(vec)
    u = np.clip(uv[:, 0], 0, camera.width - 1.001)
    v = np.clip(uv[:, 1], 0, camera.height - 1.001)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    du, dv = (u - u0)[:, None], (v - v0)[:, None]
    img = image.astype(np.float32)
    out = (
        img[v0, u0] * (1 - du) * (1 - dv)
        + img[v0, u0 + 1] * du * (1 - dv)
        + img[v0 + 1, u0] * (1 - du) * dv
        + img[v0 + 1, u0 + 1] * du * dv
    )
    out[~ok] = 0
    return out.astype(image.dtype)


def naive_to_image(camera: FisheyeCamera, grid: HealpixGrid, values: np.ndarray) -> np.ndarray:
    """Per call: unproject every pixel, healpy vec2pix, gather (nearest)."""
    rays = camera.pixel_rays().reshape(-1, 3)
    idx = grid.local_index(hp.vec2pix(grid.nside, *rays.T, nest=True))
    out = values[np.maximum(idx, 0)]
    out[idx < 0] = 0
    return out.reshape(camera.height, camera.width, -1)


def python_loop_to_sphere(camera: FisheyeCamera, grid: HealpixGrid, image: np.ndarray, n: int) -> float:
    """Seconds for a pixel-by-pixel Python loop over n grid pixels (per-pixel healpy call)."""
    t0 = time.perf_counter()
    for i in range(n):
        vec = np.array(hp.pix2vec(grid.nside, int(grid.global_index[i]), nest=True))
        u, v = camera.project(vec)
        if 0 <= u < camera.width - 1 and 0 <= v < camera.height - 1:
            _ = image[int(v), int(u)]
    return time.perf_counter() - t0


def _cv2_bilinear(camera: FisheyeCamera, grid: HealpixGrid) -> Callable[[np.ndarray], np.ndarray]:
    """The projector's bilinear before the sampling taps: one ``cv2.remap`` at the pixel centres."""
    import cv2

    rays = grid.vectors()
    uv, ok = camera.project(rays), camera.sees(rays)
    cols = min(grid.npix, 4096)
    u = np.where(ok, np.clip(uv[:, 0], 0, camera.width - 1), -16).astype(np.float32).reshape(-1, cols)
    v = np.where(ok, np.clip(uv[:, 1], 0, camera.height - 1), -16).astype(np.float32).reshape(-1, cols)
    return lambda img: cv2.remap(img, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def area_rows(camera: FisheyeCamera, nsides: list[int], image: np.ndarray, repeat: int) -> dict[str, dict]:
    """Per nside: area vs bilinear maps and projection, measured interleaved (ratios within one run)."""
    from heal_swin.geometry.taps import area_level

    out = {}
    for nside in nsides:
        grid = HealpixGrid(nside)
        proj = SphereProjector(camera, grid)
        cold = {"area": [], "bilinear": []}
        for _ in range(max(1, repeat // 10)):
            for mode in ("bilinear", "area"):
                projector_module.clear_memory_cache()
                t0 = time.perf_counter()
                proj.taps(mode)
                cold[mode].append(time.perf_counter() - t0)
        proj.taps("bilinear"), proj.taps("area")
        remap = _cv2_bilinear(camera, grid)
        calls = {
            "area": lambda p=proj: p.to_sphere(image, "area"),
            "bilinear": lambda p=proj: p.to_sphere(image),
            "cv2": lambda r=remap: r(image),
        }
        warm = {k: [] for k in calls}
        for _ in range(repeat):
            for k, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                warm[k].append(time.perf_counter() - t0)
        med = {k: 1e3 * statistics.median(v) for k, v in warm.items()}
        out[str(nside)] = {
            "level": area_level(camera, grid),
            "area_taps": proj.taps("area").taps,
            "maps_ms": {k: 1e3 * statistics.median(v) for k, v in cold.items()},
            "project_ms": med,
            "area / bilinear": med["area"] / med["bilinear"],
            "bilinear / cv2.remap": med["bilinear"] / med["cv2"],
        }
    return out


def area_accuracy(camera: FisheyeCamera, nsides: list[int], rays: int = 4_000_000) -> dict[str, dict]:
    """Error of area and bilinear against the footprint mean by brute force (uniform random rays
    binned with healpy ``vec2pix``, the image interpolated by scipy), on white noise (grey 0..1)
    and on a rendered synthetic frame (grey 0..1): mean and max |error| over grid pixels whose
    footprint lies inside the image."""
    from scipy.ndimage import map_coordinates

    from heal_swin.data.synthetic import make_scene, render_scene

    rng = np.random.default_rng(0)
    frame = render_scene(make_scene(np.random.default_rng(3)), camera, np.random.default_rng(4))["image"]
    images = {
        "white noise": rng.random((camera.height, camera.width)).astype(np.float32),
        "synthetic frame": frame.mean(axis=2).astype(np.float32) / 255,
    }
    v = rng.normal(size=(rays, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v = v[camera.sees(v)]
    uv = camera.project(v)
    out = {}
    for nside in nsides:
        grid = HealpixGrid(nside)
        proj = SphereProjector(camera, grid)
        pix = grid.local_index(hp.vec2pix(nside, v[:, 0], v[:, 1], v[:, 2], nest=True))
        ok = pix >= 0
        count = np.bincount(pix[ok], minlength=grid.npix)
        corners = np.moveaxis(hp.boundaries(nside, grid.global_index, step=1, nest=True), -2, -1)
        inside = proj.valid_mask & camera.sees(corners).all(axis=1) & (count >= 200)
        for name, img in images.items():
            val = map_coordinates(img, [uv[ok, 1], uv[ok, 0]], order=1, mode="nearest")
            ref = np.bincount(pix[ok], weights=val, minlength=grid.npix) / np.maximum(count, 1)
            row = {"pixels": int(inside.sum()), "min_rays_per_pixel": int(count[inside].min())}
            for mode in ("bilinear", "area"):
                err = np.abs(proj.to_sphere(img, mode) - ref)[inside]
                row[mode] = {"mean_abs": float(err.mean()), "max_abs": float(err.max())}
            out[f"{name}, nside {nside}"] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", type=Path, default=None)
    ap.add_argument("--nside", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--area-nsides", default="16,32,64,256", help="grids for the area vs bilinear table")
    ap.add_argument(
        "--area-sizes", default="1280x966,320x242", help="image sizes (the camera scaled) for that table"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "geometry.json")
    args = ap.parse_args()

    camera = FisheyeCamera.from_json(args.calib) if args.calib else rig_cameras()["FV"]
    grid = HealpixGrid(args.nside)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (camera.height, camera.width, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (camera.height, camera.width), dtype=np.uint8)
    proj = SphereProjector(camera, grid)

    rows: list[tuple[str, dict[str, float]]] = []

    def precompute() -> None:
        projector_module.clear_memory_cache()
        proj.forward_maps, proj.backward_maps()

    def fwd_only() -> None:
        projector_module.clear_memory_cache()
        _ = proj.forward_maps

    def bwd_only() -> None:
        projector_module.clear_memory_cache()
        proj.backward_maps()

    rows.append(
        (
            "map precompute, both directions (per camera)",
            timeit(precompute, max(3, args.repeat // 5), warmup=1),
        )
    )
    rows.append(("  forward maps (sphere <- image)", timeit(fwd_only, max(3, args.repeat // 5), warmup=1)))
    rows.append(("  backward maps (image <- sphere)", timeit(bwd_only, max(3, args.repeat // 5), warmup=1)))
    proj.forward_maps, proj.backward_maps()
    sphere = proj.to_sphere(image)
    logits = rng.standard_normal((grid.npix, 10)).astype(np.float32)
    rows.append(("to_sphere RGB uint8, bilinear", timeit(lambda: proj.to_sphere(image), args.repeat)))
    rows.append(("to_sphere labels, nearest", timeit(lambda: proj.to_sphere(labels, "nearest"), args.repeat)))
    rows.append(
        ("to_image RGB uint8, bilinear", timeit(lambda: proj.to_image(sphere, "bilinear"), args.repeat))
    )
    rows.append(
        ("to_image RGB uint8, nearest", timeit(lambda: proj.to_image(sphere, "nearest"), args.repeat))
    )
    rows.append(
        (
            "to_image 10-class float32 logits, bilinear",
            timeit(lambda: proj.to_image(logits, "bilinear"), max(3, args.repeat // 2)),
        )
    )
    naive_fwd = timeit(
        lambda: naive_to_sphere(camera, grid.nside, grid.base_pixels, image),
        max(3, args.repeat // 5),
        warmup=1,
    )
    naive_bwd = timeit(lambda: naive_to_image(camera, grid, sphere), 3, warmup=1)
    rows.append(("naive to_sphere (per-call healpy + numpy bilinear)", naive_fwd))
    rows.append(("naive to_image (per-call unproject + healpy, nearest)", naive_bwd))
    n_loop = min(5000, grid.npix)
    loop_s = python_loop_to_sphere(camera, grid, image, n_loop) * grid.npix / n_loop
    rows.append(
        (
            f"python loop to_sphere (extrapolated from {n_loop} px)",
            {"median_ms": 1e3 * loop_s, "min_ms": 1e3 * loop_s},
        )
    )

    ratios = {
        "naive_to_sphere / to_sphere": naive_fwd["median_ms"] / rows[3][1]["median_ms"],
        "naive_to_image / to_image nearest": naive_bwd["median_ms"] / rows[6][1]["median_ms"],
        "python_loop / to_sphere": 1e3 * loop_s / rows[3][1]["median_ms"],
    }
    print(
        f"\nGeometry benchmark: {camera.width}x{camera.height} -> nside {grid.nside}, base pixels {list(grid.base_pixels)} ({grid.npix:,} px)"
    )
    print(f"{'operation':58s} {'median ms':>10s} {'min ms':>9s}")
    for name, r in rows:
        print(f"{name:58s} {r['median_ms']:10.1f} {r['min_ms']:9.1f}")
    print()
    for k, v in ratios.items():
        print(f"speed-up {k:40s} {v:8.1f}x")
    area = {}
    for size in args.area_sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        cam = camera if (w, h) == camera.image_size else camera.scaled(w, h)
        img = image if (w, h) == camera.image_size else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        area[size] = area_rows(cam, [int(n) for n in args.area_nsides.split(",") if n], img, args.repeat)
    print(f"\nAnti-aliased projection: uint8 RGB, calls interleaved, load {os.getloadavg()[0]:.1f}")
    print(
        f"{'image':>9s} {'nside':>5s} {'L':>2s} {'K':>4s} {'maps bil ms':>11s} {'maps area ms':>12s} {'cv2 ms':>7s} {'bil ms':>7s} {'area ms':>8s} {'area/bil':>8s} {'bil/cv2':>7s}"
    )
    for size, rows_ in area.items():
        for n, r in rows_.items():
            m, p = r["maps_ms"], r["project_ms"]
            print(
                f"{size:>9s} {n:>5s} {r['level']:2d} {r['area_taps']:4d} {m['bilinear']:11.1f} {m['area']:12.1f} {p['cv2']:7.2f} {p['bilinear']:7.2f} {p['area']:8.2f} {r['area / bilinear']:8.1f} {r['bilinear / cv2.remap']:7.1f}"
            )
    acc_cam = camera.scaled(160, 121)
    accuracy = area_accuracy(acc_cam, [8, 16])
    print(
        f"\nFootprint-mean accuracy ({acc_cam.width}x{acc_cam.height} image, brute-force reference, values 0..1)"
    )
    print(
        f"{'image, grid':28s} {'pixels':>6s} {'rays/px':>7s} {'bilinear mean':>13s} {'max':>6s} {'area mean':>9s} {'max':>6s}"
    )
    for k, r in accuracy.items():
        b, a = r["bilinear"], r["area"]
        print(
            f"{k:28s} {r['pixels']:6d} {r['min_rays_per_pixel']:7d} {b['mean_abs']:13.4f} {b['max_abs']:6.3f} {a['mean_abs']:9.4f} {a['max_abs']:6.3f}"
        )
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "image": [camera.width, camera.height],
        "nside": grid.nside,
        "base_pixels": list(grid.base_pixels),
        "rows": {name.strip(): r for name, r in rows},
        "ratios": ratios,
        "area_vs_bilinear": area,
        "area_accuracy": accuracy,
        "load_average": os.getloadavg(),
    }
    save_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
