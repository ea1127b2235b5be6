"""The bundled demo frame, shared by export (parity on a real frame) and the service (demo page).

The bundled demo frame is one synthetic street scene through the synthetic rig's front camera,
committed as ``heal_swin/serve/static/demo_fisheye.jpg`` + ``demo_calibration.json`` (the service
serves that folder); ``python -m heal_swin.serve.demo`` regenerates it (rendered with
``heal_swin.data.frames``, which this layer below ``data`` does not import).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CALIBRATION", "DEMO_IMAGE", "DEMO_SIZE", "STATIC_DIR", "demo_paths"]

# A path, not an import: the files are package data of the service.
STATIC_DIR = Path(__file__).resolve().parents[1] / "serve" / "static"
DEMO_IMAGE = "demo_fisheye.jpg"
DEMO_CALIBRATION = "demo_calibration.json"
DEMO_SIZE = (384, 290)


def demo_paths() -> tuple[Path, Path]:
    """(image, calibration) of the bundled demo frame."""
    return STATIC_DIR / DEMO_IMAGE, STATIC_DIR / DEMO_CALIBRATION
