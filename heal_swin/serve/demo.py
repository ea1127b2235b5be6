"""The bundled demo frame: one synthetic street scene through the synthetic rig's front camera.

``python -m heal_swin.serve.demo`` regenerates ``static/demo_fisheye.jpg`` and
``static/demo_calibration.json`` (deterministic: seed 7, 384x290). The files are committed, so the
service never renders anything; this module is only the recipe (it needs ``heal_swin.data``; the paths are
:mod:`heal_swin.inference.demo`, the renderer :mod:`heal_swin.data.frames`).
"""

from __future__ import annotations

import json
from pathlib import Path

from heal_swin.inference.demo import (
    DEMO_CALIBRATION,
    DEMO_IMAGE,
    DEMO_SIZE,
    STATIC_DIR,
    demo_paths,
)

__all__ = ["DEMO_CALIBRATION", "DEMO_IMAGE", "STATIC_DIR", "demo_paths", "make_demo_assets", "render_frames"]


def render_frames(count: int, size: tuple[int, int] = DEMO_SIZE, seed: int = 0, camera: str = "FV"):
    """:func:`heal_swin.data.frames.render_frames` (imported on use: the service never renders)."""
    from heal_swin.data.frames import render_frames as render

    return render(count, size, seed, camera)


def make_demo_assets(out_dir: str | Path = STATIC_DIR) -> tuple[Path, Path]:
    import cv2

    from heal_swin.io import atomic_write_bytes

    out_dir = Path(out_dir)
    ((cam, image, _, _),) = render_frames(1, DEMO_SIZE, seed=7)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    img_path, cal_path = out_dir / DEMO_IMAGE, out_dir / DEMO_CALIBRATION
    atomic_write_bytes(img_path, buf.tobytes())
    calib = cam.to_dict()
    calib["name"] = "demo_FV"
    atomic_write_bytes(cal_path, (json.dumps(calib, indent=2) + "\n").encode())
    return img_path, cal_path


if __name__ == "__main__":
    for p in make_demo_assets():
        print(p, p.stat().st_size, "bytes")
