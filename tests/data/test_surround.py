"""Surround frames of the synthetic benchmark against per-pixel computation through each calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.data.surround import SurroundDataset, mirror_sample, vehicle_mirror_index
from heal_swin.data.transforms import flip_camera
from heal_swin.geometry.rig import CameraRig, vehicle_grid

NSIDE = 16


@pytest.fixture(scope="module")
def ds(tiny_synth):
    return SurroundDataset(tiny_synth, split="all", nside=NSIDE)


def test_frames_group_the_four_cameras_of_each_scene(ds, tiny_synth):
    assert len(ds) == 4 and ds.skipped == []
    frame, raws = ds.raw_frame(2)
    assert frame == "00002" and [s["camera_name"] for s in raws] == ["FV", "MVL", "MVR", "RV"]
    s = ds[2]
    n = 12 * NSIDE**2
    assert s["image"].shape == (3, n) and s["image"].dtype == torch.float32
    assert s["label"].shape == (n,) and s["label"].dtype == torch.int64
    assert s["valid"].dtype == torch.bool and s["depth"].dtype == torch.float32 and s["source"].shape == (n,)
    assert s["name"] == "00002"
    rig = CameraRig.from_dict(json.loads(s["rig"]))
    assert rig.names == ("FV", "MVL", "MVR", "RV")
    # the frame's own calibration files (per-scene extrinsic jitter), not one fixed rig
    cal = json.loads((tiny_synth / "calibration" / "00002_MVL.json").read_text())
    np.testing.assert_allclose(
        rig.cameras[1].quaternion,
        np.asarray(cal["extrinsic"]["quaternion"]) / np.linalg.norm(cal["extrinsic"]["quaternion"]),
    )
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, n) and len(batch["rig"]) == 2


def test_labels_and_range_are_the_best_cameras_pixel(ds):
    _, raws = ds.raw_frame(1)
    s = ds[1]
    grid = vehicle_grid(NSIDE)
    v = grid.vectors()
    label, depth, source, valid = (s[k].numpy() for k in ("label", "depth", "source", "valid"))
    assert valid.mean() > 0.75 and np.all(label[~valid] == IGNORE_INDEX) and np.all(source[~valid] == -1)
    checked = 0
    for c, raw in enumerate(raws):
        cam = raw["camera"]
        sel = np.flatnonzero(source == c)
        ray = cam.from_vehicle(v[sel], directions=True)
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        uv = cam.project(ray)
        u = np.clip(np.floor(uv[:, 0] + 0.5).astype(int), 0, cam.width - 1)
        r = np.clip(np.floor(uv[:, 1] + 0.5).astype(int), 0, cam.height - 1)
        np.testing.assert_array_equal(label[sel], raw["label"][r, u])
        d = raw["depth"][r, u].astype(np.float64)
        finite = np.isfinite(d)
        point = cam.to_vehicle(
            np.where(finite, d, 0.0)[:, None] * ray
        )  # the measured point, in the vehicle frame
        np.testing.assert_allclose(depth[sel][finite], np.linalg.norm(point[finite], axis=1), rtol=1e-5)
        assert np.all(np.isinf(depth[sel][~finite]))
        checked += sel.size
    assert checked == valid.sum()


def test_mirror_is_the_flip_of_every_camera(ds):
    grid = vehicle_grid(NSIDE)
    idx = vehicle_mirror_index(grid)
    np.testing.assert_array_equal(idx[idx], np.arange(grid.npix))  # an involution
    _, raws = ds.raw_frame(0)
    mirrored = mirror_sample(ds.fuse(raws), grid, ds.cameras)
    # the flat rule on all four cameras at once: images flipped, calibrations flipped, MVL <-> MVR
    flipped = {s["camera_name"]: s for s in raws}
    flipped = [
        {**flipped[name], "image": flipped[name]["image"][:, ::-1].copy(), "label": flipped[name]["label"][:, ::-1].copy(),
         "depth": flipped[name]["depth"][:, ::-1].copy(), "camera": flip_camera(flipped[name]["camera"])}
        for name in ("FV", "MVR", "MVL", "RV")
    ]  # fmt: skip
    direct = ds.fuse(flipped)
    both = mirrored["valid"] & direct["valid"]
    assert (mirrored["valid"] == direct["valid"]).mean() > 0.995
    assert (mirrored["label"][both] == direct["label"][both]).mean() > 0.98
    assert (mirrored["source"][both] == direct["source"][both]).mean() > 0.98
    assert np.median(np.abs(mirrored["image"][:, both] - direct["image"][:, both])) < 0.05


def test_incomplete_frames_are_listed(synth_copy):
    (synth_copy / "rgb_images" / "00003_RV.png").unlink()
    ds = SurroundDataset(synth_copy, split="all", nside=4)
    assert [f for f, _ in ds.frames] == ["00000", "00001", "00002"]
    assert any(p == "00003" and "RV" in why for p, why in ds.skipped)
