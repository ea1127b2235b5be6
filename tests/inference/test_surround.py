"""The torch-free surround path: four frames -> vehicle-sphere input -> model -> masks per camera + panorama."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from heal_swin.geometry.rig import vehicle_grid
from heal_swin.inference.manifest import Manifest
from heal_swin.inference.processing import NO_CLASS
from heal_swin.inference.surround import (
    SurroundError,
    panorama_index,
    predict_surround,
    surround_input,
    surround_labels,
    vehicle_sphere_for,
)
from tests.geometry.test_rig import H, W, make_rig

NSIDE = 16


def manifest(
    base_pixels=tuple(range(12)), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), colour_order="BGR"
) -> Manifest:
    n = len(base_pixels) * NSIDE**2
    return Manifest(
        name="surround-test", model_name="fake", task="segmentation", input_kind="sphere", in_chans=3, out_chans=3,
        input_shape=[-1, 3, n], output_shape=[-1, 3, n], onnx_sha256="0" * 64, opset=18, nside=NSIDE,
        base_pixels=list(base_pixels), class_names=["a", "b", "c"], class_colours=[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
        normalisation={"colour_order": colour_order, "scale": 1 / 255, "mean": list(mean), "std": list(std)},
    )  # fmt: skip


@pytest.fixture
def rig(fv_calib):
    return make_rig(fv_calib)


def test_input_is_the_normalised_blend(rig):
    sphere = vehicle_sphere_for(rig, vehicle_grid(NSIDE))
    colour = np.array([30, 120, 200], np.uint8)
    frames = {n: np.broadcast_to(colour, (H, W, 3)).copy() for n in rig.names}
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    x = surround_input(frames, sphere, mean, std)
    seen = sphere.valid_mask
    want = (colour / 255 - np.array(mean)) / np.array(std)  # the blend of one colour is that colour
    np.testing.assert_allclose(x[:, seen], np.repeat(want[:, None], seen.sum(), 1), atol=1e-5)
    assert np.all(x[:, ~seen] == 0)
    flipped = surround_input(frames, sphere, mean[::-1], std[::-1], reverse_channels=True)
    np.testing.assert_allclose(
        flipped[:, seen],
        np.repeat(((colour[::-1] / 255 - mean[::-1]) / std[::-1])[:, None], seen.sum(), 1),
        atol=1e-5,
    )
    # frames by name or in rig order give the same input
    np.testing.assert_array_equal(surround_input([frames[n] for n in rig.names], sphere, mean, std), x)


def test_prediction_masks_are_the_sphere_classes_at_each_pixels_vehicle_ray(rig):
    m = manifest()
    # each camera shows one pure colour; the "model" is the identity, so a direction's class is the
    # colour channel with the most blend weight: the colour of the camera that sees it best
    colours = {"FV": 0, "MVL": 1, "RV": 2, "MVR": 0}
    frames = {}
    for n, ch in colours.items():
        f = np.zeros((H, W, 3), np.uint8)
        f[..., ch] = 255
        frames[n] = f
    calls = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return x

    pred = predict_surround(frames, rig, m, run, picture_width=64)
    assert calls == [(1, 3, 12 * NSIDE**2)]
    sphere = vehicle_sphere_for(rig, vehicle_grid(NSIDE))
    seen = sphere.valid_mask
    w = np.sort(sphere.maps.weights, axis=0)
    clear = (
        seen & (w[-1] > w[-2] + 1e-6) & (sphere.maps.count <= 2)
    )  # FV + MVR (both red) could outweigh MVL in a triple overlap
    expected = np.array([colours[n] for n in rig.names])[pred.source[clear]]
    np.testing.assert_array_equal(pred.classes[clear], expected)
    assert np.all(pred.classes[~seen] == NO_CLASS)
    for cam in rig.cameras:
        v = cam.to_vehicle(cam.pixel_rays(), directions=True)
        pix = hp.vec2pix(NSIDE, v[..., 0], v[..., 1], v[..., 2], nest=True)  # full grid: local == global
        mask = pred.masks[cam.name]
        assert mask.shape == (H, W) and mask.dtype == np.uint8
        assert (mask == pred.classes[pix]).mean() > 0.9999
        # where this camera sees a direction best (the pixel's grid centre), its own colour comes back
        best = clear[pix] & (sphere.source[pix] == rig.index(cam.name))
        assert best.mean() > 0.05 and np.all(mask[best] == colours[cam.name])
    assert pred.picture.shape == (32, 64, 3) and pred.picture.dtype == np.uint8


def test_panorama_geometry():
    grid = vehicle_grid(NSIDE)
    idx = panorama_index(grid, 128)
    assert idx.shape == (64, 128) and idx.min() >= 0
    v = grid.vectors()
    tol = 2 * hp.nside2resol(NSIDE)
    # centre: straight ahead on the horizon; a quarter from the left: the vehicle's left; top row: up
    assert np.arccos(v[idx[32, 64]] @ [1, 0, 0]) < tol
    assert np.arccos(v[idx[32, 32]] @ [0, 1, 0]) < tol
    assert np.arccos(v[idx[32, 96]] @ [0, -1, 0]) < tol
    assert v[idx[0, 10], 2] > 0.99 and v[idx[63, 10], 2] < -0.99


def test_labels_and_errors(rig):
    sphere = vehicle_sphere_for(rig, vehicle_grid(NSIDE))
    labels = {n: np.full((H, W), i, np.uint8) for i, n in enumerate(rig.names)}
    lab = surround_labels(labels, sphere)
    np.testing.assert_array_equal(lab[sphere.valid_mask], sphere.source[sphere.valid_mask])
    assert np.all(lab[~sphere.valid_mask] == NO_CLASS)
    frames = {n: np.zeros((H, W, 3), np.uint8) for n in rig.names}
    with pytest.raises(SurroundError, match=r"missing \['RV'\]"):
        surround_input({k: v for k, v in frames.items() if k != "RV"}, sphere, None, None)
    with pytest.raises(SurroundError, match="colour image"):
        surround_input({**frames, "FV": np.zeros((H, W), np.uint8)}, sphere, None, None)
    with pytest.raises(SurroundError, match="all 12 base pixels"):
        predict_surround(frames, rig, manifest(base_pixels=tuple(range(8))), lambda x: x)
    with pytest.raises(SurroundError, match="expected output"):
        predict_surround(frames, rig, manifest(), lambda x: x[:, :, :10])
