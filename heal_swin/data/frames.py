"""Rendered synthetic frames for checks outside training: export's parity/int8 validation, the demo frame."""

from __future__ import annotations

import numpy as np

__all__ = ["DEMO_SIZE", "render_frames"]

DEMO_SIZE = (384, 290)  # (W, H) of the bundled demo frame


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
