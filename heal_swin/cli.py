"""The ``heal-swin`` command line: ``project | data | train | evaluate | predict | export | serve``.

Each command group lives with its layer; this module only parses arguments and turns the suite's
input errors into one-line messages with exit code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from heal_swin.errors import InputError

__all__ = ["UsageError", "main", "parse_base_pixels"]


class UsageError(InputError):
    """A bad command-line value (reported as a one-line error, exit code 2)."""


def parse_base_pixels(text: str) -> tuple[int, ...]:
    """``"0-7"``, ``"0,1,4-7"`` or ``"all"`` -> tuple of base pixels."""
    text = text.strip().lower()
    if text == "all":
        return tuple(range(12))
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise UsageError(f"--base-pixels: expected e.g. '0-7', '0,1,2' or 'all', got {text!r}") from None
    return tuple(out)


# ------------------------------------------------------------------ project
def _add_project(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "project",
        help="project a fisheye image onto the HEALPix sphere (and back)",
        description="Project a fisheye image with its WoodScape calibration onto a NESTED HEALPix grid.",
    )
    p.add_argument("image", type=Path, help="fisheye image (PNG/JPEG; colour or single-channel labels)")
    p.add_argument("--calib", type=Path, required=True, help="WoodScape/SynWoodScape calibration JSON")
    p.add_argument("--nside", type=int, default=256, help="HEALPix nside, a power of two (default 256)")
    p.add_argument("--base-pixels", default="0-7", help="base pixels, e.g. '0-7' (default) or 'all'")
    p.add_argument(
        "--mode", choices=("bilinear", "nearest"), default="bilinear", help="nearest for label images"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--view-width", type=int, default=1024, help="width of the sphere pictures in pixels")
    p.add_argument("--cache-dir", type=Path, default=None, help="on-disk cache for the sampling maps")
    p.set_defaults(func=_run_project)


def _run_project(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
    from heal_swin.geometry.views import sphere_view
    from heal_swin.io import read_image, save_image, save_json, save_npy

    camera = FisheyeCamera.from_json(args.calib)
    grid = HealpixGrid(args.nside, parse_base_pixels(args.base_pixels))
    image = read_image(args.image)
    projector = SphereProjector(camera, grid, cache_dir=args.cache_dir)

    t0 = time.perf_counter()
    projector.forward_maps, projector.backward_maps()
    t_maps = time.perf_counter() - t0
    colour = image.ndim == 3
    if colour and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    t0 = time.perf_counter()
    sphere = projector.to_sphere(image, mode=args.mode)
    t_project = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = projector.to_image(sphere, mode=args.mode)
    t_back = time.perf_counter() - t0

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # .npy arrays are RGB (the usual numpy convention); pictures are written by OpenCV (BGR).
    save_npy(out / "sphere.npy", sphere[:, ::-1] if colour else sphere)
    save_npy(out / "valid.npy", projector.valid_mask)
    shown = sphere if colour else _label_colours(sphere)
    save_image(out / "mollweide.png", sphere_view(shown, grid, "mollweide", width=args.view_width))
    save_image(out / "orthographic.png", sphere_view(shown, grid, "orthographic", width=args.view_width))
    save_image(out / "backprojected.png", back)
    coverage = projector.coverage
    footprint = float(projector.footprint().mean())
    save_json(
        out / "sphere.json",
        {
            "image": str(args.image),
            "calibration": str(args.calib),
            "camera": camera.name,
            "nside": grid.nside,
            "base_pixels": list(grid.base_pixels),
            "order": "NESTED",
            "npix": grid.npix,
            "mode": args.mode,
            "channels": "RGB" if colour else "single",
            "dtype": str(sphere.dtype),
            "grid_coverage": coverage,
            "image_in_grid": footprint,
        },
    )
    print(f"{args.image} -> {out}/  ({camera.name or 'camera'}, {image.shape[1]}x{image.shape[0]})")
    print(
        f"  grid       nside {grid.nside}, base pixels {list(grid.base_pixels)}, {grid.npix:,} pixels, NESTED"
    )
    print(
        f"  coverage   {100 * coverage:.1f}% of grid pixels see the image; {100 * footprint:.1f}% of image pixels fall in the grid"
    )
    print(f"  max angle  {np.degrees(camera.max_incidence_angle):.1f} deg from the optical axis")
    print(
        f"  time       maps {1e3 * t_maps:.0f} ms, to sphere {1e3 * t_project:.1f} ms, back to image {1e3 * t_back:.1f} ms"
    )
    return 0


def _label_colours(labels: np.ndarray) -> np.ndarray:  # noqa: F821
    """Distinct BGR colours for integer labels (a fixed palette, 0 black)."""
    import numpy as np

    rng = np.random.default_rng(0)
    palette = rng.integers(40, 256, size=(256, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[np.asarray(labels).astype(np.int64) % 256]


# --------------------------------------------------------------- dispatcher
# Command groups owned by other layers; each module exposes add_<group>_commands / run via set_defaults.
_PLUGINS: tuple[tuple[str, str], ...] = (
    ("heal_swin.data.cli", "add_data_commands"),
    ("heal_swin.train.cli", "add_train_commands"),
    ("heal_swin.export.cli", "add_export_commands"),
    ("heal_swin.serve.cli", "add_serve_commands"),
    ("heal_swin.calib.cli", "add_calib_commands"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heal-swin", description="Spherical vision for fisheye cameras.")
    from heal_swin import __version__

    parser.add_argument("--version", action="version", version=f"heal-swin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_project(sub)
    for module, fn in _PLUGINS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue  # that layer is not built (or its extra not installed)
            raise
        adder: Callable[[argparse._SubParsersAction], argparse.ArgumentParser | None] = getattr(mod, fn)
        group = adder(sub)
        # A group may dispatch through one run_<group>_command(args) instead of per-command funcs.
        runner = getattr(mod, fn.replace("add_", "run_").replace("_commands", "_command"), None)
        if group is not None and runner is not None:
            group.set_defaults(func=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # a plugin that dispatches itself
        runner = getattr(args, "runner", None)
        if runner is None:
            parser.print_help()
            return 2
        func = runner
    try:
        return int(func(args) or 0)
    except (InputError, FileNotFoundError) as e:
        print(f"heal-swin {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"heal-swin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
