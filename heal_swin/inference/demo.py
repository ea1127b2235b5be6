"""Demo and validation frames shared by export (parity on real frames) and the service (demo page).

The bundled demo frame is one synthetic street scene through the synthetic rig's front camera,
committed as ``heal_swin/serve/static/demo_fisheye.jpg`` + ``demo_calibration.json`` (the service
serves that folder); ``python -m heal_swin.serve.demo`` regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DEMO_CALIBRATION", "DEMO_IMAGE", "DEMO_SIZE", "STATIC_DIR", "demo_paths", "render_frames"]

# A path, not an import: the files are package data of the service.
STATIC_DIR = Path(__file__).resolve().parents[1] / "serve" / "static"
DEMO_IMAGE = "demo_fisheye.jpg"
DEMO_CALIBRATION = "demo_calibration.json"
DEMO_SIZE = (384, 290)


def demo_paths() -> tuple[Path, Path]:
    """(image, calibration) of the bundled demo frame."""
    return STATIC_DIR / DEMO_IMAGE, STATIC_DIR / DEMO_CALIBRATION


def render_frames(count: int, size: tuple[int, int] = DEMO_SIZE, seed: int = 0, camera: str = "FV"):
    """``count`` synthetic frames: list of (camera, image BGR uint8, label uint8, depth float32 metres)."""
    from heal_swin.data.synthetic import make_scene, render_scene, rig_cameras

    cam = rig_cameras(size[0], size[1], cameras=(camera,))[camera]
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        scene = make_scene(rng, cameras=(camera,))
        r = render_scene(scene, cam, rng)
        out.append((cam, r["image"], r["label"], r["depth"]))
    return out
