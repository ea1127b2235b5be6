"""The bundled demo frame, shared by export (parity on a real frame) and the service (demo page).

The bundled demo frame is one synthetic street scene through the synthetic rig's front camera,
committed as ``heal_swin/serve/static/demo_fisheye.jpg`` + ``demo_calibration.json`` (the service
serves that folder); ``python -m heal_swin.serve.demo`` regenerates it (rendered with
``heal_swin.data.frames``, which this layer below ``data`` does not import).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEMO_CALIBRATION",
    "DEMO_IMAGE",
    "DEMO_MODELS",
    "DEMO_REPOSITORY",
    "DEMO_SIZE",
    "DEMO_WARNING",
    "STATIC_DIR",
    "demo_model_file",
    "demo_paths",
]

# A path, not an import: the files are package data of the service.
STATIC_DIR = Path(__file__).resolve().parents[1] / "serve" / "static"
DEMO_IMAGE = "demo_fisheye.jpg"
DEMO_CALIBRATION = "demo_calibration.json"
DEMO_SIZE = (384, 290)


def demo_paths() -> tuple[Path, Path]:
    """(image, calibration) of the bundled demo frame."""
    return STATIC_DIR / DEMO_IMAGE, STATIC_DIR / DEMO_CALIBRATION


# The bundled demo models (package data, nothing downloaded): ``heal-swin serve`` without a repository
# serves DEMO_REPOSITORY (Triton layout), ``heal-swin predict --model NAME`` runs the safetensors.
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEMO_REPOSITORY = ASSETS_DIR / "demo_models"
DEMO_MODELS = {"demo": "demo_seg", "demo_seg": "demo_seg", "demo_depth": "demo_depth"}  # name -> model
DEMO_WARNING = (
    "the bundled demo models are trained on synthetic scenes, for demos and tests, not for real roads"
)


def demo_model_file(name: str) -> Path:
    """The safetensors file of bundled model ``name`` (``demo`` = ``demo_seg``, or ``demo_depth``)."""
    from heal_swin.errors import InputError

    if name not in DEMO_MODELS:
        raise InputError(
            f"--model: expected one of {', '.join(DEMO_MODELS)} (the bundled models), got {name!r}"
        )
    path = ASSETS_DIR / "demo_weights" / f"{DEMO_MODELS[name]}.safetensors"
    if not path.is_file():
        raise InputError(f"{path}: the bundled model file is missing (reinstall heal-swin)")
    return path
