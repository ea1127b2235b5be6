"""Shared fixtures of the training / inference tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from heal_swin.geometry import FisheyeCamera


@pytest.fixture()
def frame(fv_calib):
    """A blurred-noise RGB image at 160x121 and the FV camera scaled to it."""
    cam = FisheyeCamera.from_dict(fv_calib).scaled(160, 121)
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8), (9, 9), 3)
    return img, cam


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Six rendered synthetic scenes at 160x121 (the training tests' dataset)."""
    from heal_swin.data.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(
        root,
        SynthConfig(scenes=6, seed=0, width=160, height=121),
        workers=1,
        progress=False,
        log=lambda s: None,
    )
    return root
