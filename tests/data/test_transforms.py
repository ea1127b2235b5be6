from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from heal_swin.data.synthetic import rig_cameras
from heal_swin.data.transforms import (
    FlatAugment,
    HorizontalFlip,
    Rotate180,
    SphereRandomRot90,
    flip_camera,
    rotate180_camera,
    sphere_flip_index,
    sphere_rotation_index,
)
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.projector import SphereProjector


@pytest.mark.parametrize("base", [tuple(range(8)), tuple(range(12))])
def test_rotation_and_flip_are_permutations(base):
    g = HealpixGrid(8, base)
    for k in (1, 2, 3):
        idx = sphere_rotation_index(g, k)
        assert np.array_equal(np.sort(idx), np.arange(g.npix))
        v = g.vectors()
        a = k * np.pi / 2  # content moves to longitude + k*90: out[i] = values[Rz(-k90) v_i]
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        np.testing.assert_allclose(v[idx] @ rz.T, v, atol=1e-12)
    r1 = sphere_rotation_index(g, 1)
    assert np.array_equal(r1[r1[r1[r1]]], np.arange(g.npix))
    f = sphere_flip_index(g)
    assert np.array_equal(np.sort(f), np.arange(g.npix)) and np.array_equal(f[f], np.arange(g.npix))
    np.testing.assert_allclose(g.vectors()[f] * [-1, 1, 1], g.vectors(), atol=1e-12)


def test_rotation_not_closed_grid_raises():
    with pytest.raises(ValueError, match="not a permutation"):
        sphere_rotation_index(HealpixGrid(4, (0, 1)), 1)


def _labels(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 10, (h // 4 + 1, w // 4 + 1), dtype=np.uint8)
    return np.kron(small, np.ones((4, 4), np.uint8))[:h, :w]


def test_sphere_rotation_matches_rotated_image():
    # a centred square camera: rotating the image 90 deg clockwise is a roll about the optical axis
    cam = FisheyeCamera(
        k=(60.0, -5.6, 8.5, -1.3), cx_offset=0.0, cy_offset=0.0, aspect_ratio=1.0, width=128, height=128
    )
    g = HealpixGrid(16)
    lab = _labels(128, 128)
    p = SphereProjector(cam, g)
    s = p.to_sphere(lab, mode="nearest", fill=255)
    s_rot = p.to_sphere(cv2.rotate(lab, cv2.ROTATE_90_CLOCKWISE), mode="nearest", fill=255)
    idx = sphere_rotation_index(g, 1)
    valid = p.valid_mask & p.valid_mask[idx]
    agree = (s_rot == s[idx])[valid].mean()
    assert agree > 0.995, agree  # exact up to rounding ties at pixel borders
    assert np.array_equal(p.valid_mask[idx], p.valid_mask)


def test_flip_matches_mirrored_sphere():
    cam = rig_cameras(160, 120)["MVL"]
    g = HealpixGrid(16)
    lab = _labels(120, 160, 1)
    fc = flip_camera(cam)
    assert fc.cx_offset == -cam.cx_offset and fc.k == cam.k
    s = SphereProjector(cam, g).to_sphere(lab, mode="nearest", fill=255)
    pf = SphereProjector(fc, g)
    s_flip = pf.to_sphere(np.ascontiguousarray(lab[:, ::-1]), mode="nearest", fill=255)
    f = sphere_flip_index(g)
    valid = pf.valid_mask
    assert np.array_equal(valid, SphereProjector(cam, g).valid_mask[f])
    agree = (s_flip == s[f])[valid].mean()
    assert agree > 0.995, agree
    # the flipped rig: MVL becomes a right-looking camera, still a proper rotation
    assert (fc.rotation @ [0, 0, 1])[1] < 0 and np.isclose(np.linalg.det(fc.rotation), 1)
    assert fc.translation[1] == -cam.translation[1]
    # a vehicle point seen by pixel u in the original is seen at W-1-u in the flipped image (mirrored world)
    pt = np.array([3.0, 4.0, 0.0])
    uv = cam.project(cam.from_vehicle(pt))
    uvf = fc.project(fc.from_vehicle(pt * [1, -1, 1]))
    np.testing.assert_allclose(uvf, [cam.width - 1 - uv[0], uv[1]], atol=1e-9)


def test_rotate180_matches_the_half_turned_sphere():
    cam = rig_cameras(160, 120)["MVL"]  # off-centre principal point, tilted extrinsic
    g = HealpixGrid(16)
    lab = _labels(120, 160, 2)
    rc = rotate180_camera(cam)
    assert (rc.cx_offset, rc.cy_offset) == (-cam.cx_offset, -cam.cy_offset) and rc.k == cam.k
    s = SphereProjector(cam, g).to_sphere(lab, mode="nearest", fill=255)
    pr = SphereProjector(rc, g)
    s_rot = pr.to_sphere(np.ascontiguousarray(lab[::-1, ::-1]), mode="nearest", fill=255)
    half = sphere_rotation_index(g, 2)  # the camera-frame sphere of the turned image: a half turn of it
    assert np.array_equal(pr.valid_mask, SphereProjector(cam, g).valid_mask[half])
    assert (s_rot == s[half])[pr.valid_mask].mean() > 0.995
    # same world, same optical axis: a vehicle point at pixel (u, v) is at (W-1-u, H-1-v) after the turn
    np.testing.assert_allclose(rc.rotation @ [0, 0, 1], cam.rotation @ [0, 0, 1], atol=1e-12)
    assert np.isclose(np.linalg.det(rc.rotation), 1) and np.allclose(rc.translation, cam.translation)
    pt = np.array([3.0, 4.0, 0.5])
    uv = cam.project(cam.from_vehicle(pt))
    np.testing.assert_allclose(
        rc.project(rc.from_vehicle(pt)), [cam.width - 1 - uv[0], cam.height - 1 - uv[1]], atol=1e-9
    )
    sample = {"image": np.zeros((120, 160, 3), np.uint8), "label": lab, "depth": None, "camera": cam}
    out = Rotate180(p=1.0)(sample)
    assert np.array_equal(out["label"], lab[::-1, ::-1]) and out["depth"] is None
    assert Rotate180(p=0.0)(sample) is sample


def test_flat_augment_flip_keeps_sample_consistent():
    cam = rig_cameras(160, 120)["FV"]
    rng = np.random.default_rng(0)
    sample = {"image": rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), "label": _labels(120, 160),
              "depth": rng.uniform(1, 5, (120, 160)).astype(np.float32), "camera": cam}  # fmt: skip
    out = HorizontalFlip(p=1.0)(sample)
    assert np.array_equal(out["label"], sample["label"][:, ::-1]) and np.array_equal(
        out["depth"], sample["depth"][:, ::-1]
    )
    assert out["camera"].cx_offset == -cam.cx_offset
    random.seed(0)
    aug = FlatAugment(strength=1.0, hflip=0.0)(sample)
    assert aug["image"].shape == sample["image"].shape and aug["image"].dtype == np.uint8
    assert np.array_equal(aug["label"], sample["label"]) and aug["camera"] is cam


def test_sphere_random_rot90_moves_all_keys_together():
    g = HealpixGrid(4)
    n = g.npix
    s = {"image": np.arange(3 * n, dtype=np.float32).reshape(3, n), "label": np.arange(n), "valid": np.ones(n, bool),
         "depth": np.arange(n, dtype=np.float32)}  # fmt: skip
    random.seed(1)
    out = SphereRandomRot90(g, p=1.0)(s)
    assert np.array_equal(out["image"][0], out["label"].astype(np.float32)) and np.array_equal(
        out["depth"], out["label"]
    )
    assert not np.array_equal(out["label"], s["label"])
