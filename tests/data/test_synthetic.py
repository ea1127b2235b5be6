from __future__ import annotations

import functools
import itertools
import json
import operator
from pathlib import Path

import cv2
import numpy as np
import pytest

from heal_swin.data.classes import WOODSCAPE_CLASSES
from heal_swin.data.synthetic import CAMERA_NAMES, SynthConfig, camera_rotation, generate, rig_cameras
from heal_swin.geometry.camera import FisheyeCamera

from .conftest import TINY


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_matches_woodscape(tiny_synth):
    root = tiny_synth
    stems = [f"{s:05d}_{c}" for s in range(TINY.scenes) for c in CAMERA_NAMES]
    for stem in stems:
        assert (root / "rgb_images" / f"{stem}.png").is_file()
        assert (root / "semantic_annotations" / "gtLabels" / f"{stem}.png").is_file()
        assert (root / "semantic_annotations" / "rgbLabels" / f"{stem}.png").is_file()
        assert (root / "depth_maps" / "raw_data" / f"{stem}.npy").is_file()
        cam = FisheyeCamera.from_json(root / "calibration" / f"{stem}.json")
        assert cam.image_size == (TINY.width, TINY.height)
        assert cam.name == stem.split("_")[1]
        img = cv2.imread(str(root / "rgb_images" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        lab = cv2.imread(
            str(root / "semantic_annotations" / "gtLabels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED
        )
        assert img.shape == (TINY.height, TINY.width, 3) and img.dtype == np.uint8
        assert lab.shape == (TINY.height, TINY.width) and lab.dtype == np.uint8 and lab.max() <= 9
        rgb = cv2.imread(str(root / "semantic_annotations" / "rgbLabels" / f"{stem}.png"))
        assert np.array_equal(rgb, WOODSCAPE_CLASSES.colorize(lab))
    splits = {s: (root / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    allnames = functools.reduce(operator.iadd, splits.values(), [])
    assert sorted(allnames) == sorted(stems) and len(set(allnames)) == len(allnames)
    for names in splits.values():  # split by scene: all cameras of a scene together
        scenes = {n.split("_")[0] for n in names}
        assert len(names) == 4 * len(scenes)
    card = json.loads((root / "dataset_card.json").read_text())
    assert [c["name"] for c in card["classes"]] == list(WOODSCAPE_CLASSES.names)
    assert card["classes"][1]["color_bgr"] == [255, 0, 255]
    assert card["generator"]["seed"] == 0 and card["format"] == "woodscape"


def test_all_classes_present(tiny_synth):
    counts = np.zeros(10, np.int64)
    for p in (tiny_synth / "semantic_annotations" / "gtLabels").glob("*.png"):
        counts += np.bincount(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel(), minlength=10)[:10]
    assert np.all(counts > 0), dict(zip(WOODSCAPE_CLASSES.names, counts.tolist()))


def test_scenes_vary(tiny_synth):
    imgs = [
        cv2.imread(str(tiny_synth / "rgb_images" / f"{s:05d}_FV.png")).astype(np.float32) for s in range(4)
    ]
    for a, b in itertools.pairwise(imgs):
        assert np.abs(a - b).mean() > 5


def test_depth_consistent_with_geometry(tiny_synth):
    checked = 0
    for p in sorted((tiny_synth / "calibration").glob("*.json")):
        cam = FisheyeCamera.from_json(p)
        depth = np.load(tiny_synth / "depth_maps" / "raw_data" / f"{p.stem}.npy")
        lab = cv2.imread(
            str(tiny_synth / "semantic_annotations" / "gtLabels" / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED
        )
        assert depth.dtype == np.float32 and depth.shape == lab.shape
        rays = cam.to_vehicle(cam.pixel_rays(), directions=True)
        road = np.isin(lab, (1, 2))  # road and lane markings lie on z = 0
        hit_z = cam.translation[2] + depth[road] * rays[..., 2][road]
        # float32 rendering: relative error ~1e-7 (1e-5 allowed)
        assert np.all(np.abs(hit_z) <= 1e-5 * depth[road] + 1e-5)
        # whatever was hit lies at or above the ground; sky is inf and void
        fin = np.isfinite(depth)
        z = cam.translation[2] + depth[fin] * rays[..., 2][fin]
        assert z.min() > -1e-2
        assert np.all(lab[~fin] == 0)
        checked += int(road.sum())
    assert checked > 1000


def test_deterministic_resumable_and_worker_independent(tmp_path, tiny_synth):
    cfg = SynthConfig(scenes=2, seed=0, width=160, height=120)
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, cfg, workers=1, progress=False)
    generate(b, cfg, workers=2, progress=False)
    fa, fb = _files(a), _files(b)
    assert fa == fb
    # same seed & settings -> the same bytes as the first 2 scenes of the 4-scene set
    for k, v in fa.items():
        if k.startswith(("rgb_images", "semantic", "depth_maps", "calibration")):
            assert (tiny_synth / k).read_bytes() == v, k
    # resume: a deleted file is re-rendered identically, complete scenes are skipped
    victim = a / "rgb_images" / "00001_MVL.png"
    victim.unlink()
    summary = generate(a, cfg, workers=1, progress=False)
    assert summary["rendered_scenes"] == 1 and summary["skipped_scenes"] == 1
    assert _files(a) == fb
    # different settings on an existing root are refused
    with pytest.raises(ValueError, match="refusing"):
        generate(a, SynthConfig(scenes=2, seed=1, width=160, height=120), progress=False)
    # a different seed gives different images
    c = tmp_path / "c"
    generate(c, SynthConfig(scenes=1, seed=1, width=160, height=120), progress=False)
    assert (c / "rgb_images" / "00000_FV.png").read_bytes() != fa["rgb_images/00000_FV.png"]


def test_rig_extrinsics_plausible():
    cams = rig_cameras(1280, 966)
    ref = np.array([0.5941767906169857, -0.5878843193897473, 0.3873184109007999, -0.3890121040340926])
    from heal_swin.geometry.camera import quaternion_to_matrix

    ref_axis = quaternion_to_matrix(ref) @ [0, 0, 1]  # the WoodScape sample FV: forward, ~23 deg down
    fv_axis = cams["FV"].rotation @ [0, 0, 1]
    assert np.degrees(np.arccos(np.clip(fv_axis @ ref_axis, -1, 1))) < 2
    rv = cams["RV"].rotation @ [0, 0, 1]
    mvl = cams["MVL"].rotation @ [0, 0, 1]
    mvr = cams["MVR"].rotation @ [0, 0, 1]
    assert rv[0] < -0.7 and rv[2] < 0
    assert mvl[1] > 0.3 and mvl[2] < -0.6 and mvr[1] < -0.3 and mvr[2] < -0.6
    # image "down" is vehicle "down-ish" for every camera (no upside-down cameras)
    for c in cams.values():
        assert (c.rotation @ [0, 1, 0])[2] < 0
    assert np.allclose(camera_rotation(0, 0) @ [0, 0, 1], [1, 0, 0])
    small = rig_cameras(160, 120)["FV"]
    assert small.image_size == (160, 120)
