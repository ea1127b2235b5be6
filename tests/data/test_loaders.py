from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from heal_swin.data.classes import IGNORE_INDEX, SYNWOODSCAPE_CLASSES, synwoodscape_table
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.layout import SYNTHETIC, WOODSCAPE, detect_spec, scan, seeded_split
from heal_swin.data.synthetic import rig_cameras
from heal_swin.data.synwoodscape import CARLA_TRANSLATION_KEY
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid

GRID = HealpixGrid(8)


def _nested_woodscape(src: Path, dst: Path, split_files: bool = True) -> Path:
    """The released zips' layout (nested folders), no depth, OmniDet split files with extensions."""
    shutil.copytree(src / "rgb_images", dst / "rgb_images" / "rgb_images")
    shutil.copytree(
        src / "semantic_annotations" / "gtLabels",
        dst / "semantic_annotations" / "semantic_annotations" / "gtLabels",
    )
    shutil.copytree(src / "calibration", dst / "calibration" / "calibration")
    if split_files:
        for s in ("train", "val"):
            names = (src / f"{s}.txt").read_text().split()
            (dst / f"{s}.txt").write_text("".join(f"{n}.png\n" for n in names))
    return dst


def test_synthetic_flat_and_sphere(tiny_synth):
    assert detect_spec(tiny_synth) is SYNTHETIC
    ds = FisheyeDataset(tiny_synth, split="train", view="flat")
    assert len(ds) == 8 and ds.index.split_source.startswith("file")
    s = ds[0]
    assert s["image"].shape == (3, 120, 160) and s["image"].dtype == torch.float32
    assert s["label"].shape == (120, 160) and s["label"].dtype == torch.int64
    assert s["depth"].shape == (120, 160) and torch.isinf(s["depth"]).any()
    cam = FisheyeCamera.from_json(json.loads(s["calibration"]))
    assert cam.image_size == (160, 120) and cam.name == s["camera"]
    sp = FisheyeDataset(tiny_synth, split="train", view="sphere", grid=GRID)
    t = sp[0]
    n = GRID.npix
    assert (
        t["image"].shape == (3, n)
        and t["label"].shape == (n,)
        and t["valid"].shape == (n,)
        and t["depth"].shape == (n,)
    )
    v = t["valid"]
    assert 0.5 < v.float().mean() < 1.0
    assert torch.all(t["label"][~v] == IGNORE_INDEX) and torch.all(t["label"][v] <= 9)
    assert torch.all(t["image"][:, ~v] == 0) and torch.all(torch.isinf(t["depth"][~v]))


def test_resize_scales_calibration(tiny_synth):
    ds = FisheyeDataset(tiny_synth, split="val", view="flat", size=(80, 60))
    s = ds[0]
    assert s["image"].shape == (3, 60, 80)
    cam = FisheyeCamera.from_json(json.loads(s["calibration"]))
    assert cam.image_size == (80, 60)


def test_woodscape_nested_layout_and_split_files(tiny_synth, tmp_path):
    root = _nested_woodscape(tiny_synth, tmp_path / "ws")
    assert detect_spec(root) is WOODSCAPE
    ds = FisheyeDataset(root, split="train", view="flat")
    assert len(ds) == 8 and "depth" not in ds[0] and not ds.skipped
    assert len(FisheyeDataset(root, split="val")) == 4
    # strips: crop removes 3 rows top and bottom and keeps the centre; ignore marks them
    crop = FisheyeDataset(root, split="train", strips="crop")[0]
    assert crop["image"].shape == (3, 114, 160)
    c0 = FisheyeCamera.from_json(json.loads(ds[0]["calibration"]))
    c1 = FisheyeCamera.from_json(json.loads(crop["calibration"]))
    assert c1.height == 114 and c1.cy_offset == c0.cy_offset
    np.testing.assert_allclose(
        c1.project(np.array([0.1, 0.2, 1.0]))[1], c0.project(np.array([0.1, 0.2, 1.0]))[1] - 3
    )
    ign = FisheyeDataset(root, split="train", strips="ignore")[0]["label"]
    assert torch.all(ign[:3] == IGNORE_INDEX) and torch.all(ign[-3:] == IGNORE_INDEX)
    assert torch.equal(ign[3:-3], ds[0]["label"][3:-3])
    # sphere view works on the WoodScape layout too (no depth key)
    t = FisheyeDataset(root, split="val", view="sphere", grid=GRID, cameras=["FV"])[0]
    assert set(t) == {"image", "label", "valid", "calibration", "camera", "name"}


def test_seeded_split_when_no_split_files(tiny_synth, tmp_path):
    root = _nested_woodscape(tiny_synth, tmp_path / "ws", split_files=False)
    parts = {s: scan(root, "woodscape", split=s) for s in ("train", "val", "test")}
    names = [{r.name for r in p.samples} for p in parts.values()]
    assert all(p.split_source.startswith("seeded") for p in parts.values())
    assert sum(len(n) for n in names) == 16 and not (names[0] & names[1]) and not (names[1] & names[2])
    frames = [{n.split("_")[0] for n in ns} for ns in names]
    assert not (frames[0] & frames[1]) and not (frames[0] & frames[2])  # cameras of a frame stay together
    assert seeded_split(sorted(names[0] | names[1] | names[2]), seed=0)["val"] == names[1]


def _fake_synwoodscape(root: Path, n: int = 3, w: int = 64, h: int = 48) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("rgb_images", "semantic_annotations/gtLabels", "depth_maps/raw_data", "calibration"):
        (root / sub).mkdir(parents=True)
    cams = rig_cameras(w, h)
    for i in range(n):
        for name in ("FV", "MVL"):
            stem = f"{i:05d}_{name}"
            cv2.imwrite(
                str(root / "rgb_images" / f"{stem}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            )
            lab = np.repeat(np.arange(25, dtype=np.uint8), (w * h) // 25 + 1)[: w * h].reshape(h, w)
            cv2.imwrite(str(root / "semantic_annotations" / "gtLabels" / f"{stem}.png"), lab)
            depth = rng.uniform(1, 50, (h, w)).astype(np.float32)
            depth[lab == 13] = 1000.0  # sky
            np.save(root / "depth_maps" / "raw_data" / f"{stem}.npy", depth)
            calib = cams[name].to_dict()
            calib["intrinsic"]["aspect_ratio"] = 1.0009
            calib["extrinsic"][CARLA_TRANSLATION_KEY] = calib["extrinsic"].pop("translation")
            (root / "calibration" / f"{stem}.json").write_text(json.dumps(calib))
    return root


def test_synwoodscape_classes_merges_depth(tmp_path):
    root = _fake_synwoodscape(tmp_path / "syn")
    assert detect_spec(root).name == "synwoodscape"
    full = FisheyeDataset(root, "synwoodscape", split="all")
    assert full.num_classes == 25 and len(full) == 6 and not full.skipped
    s = full.raw(0)
    lab, depth = s["label"], s["depth"]
    assert np.isinf(depth[lab == 13]).all() and np.isfinite(depth[lab != 13]).all()
    large = FisheyeDataset(root, "synwoodscape-large", split="all")
    assert large.classes.names == (
        "void",
        "building",
        "road line",
        "road",
        "sidewalk",
        "four-wheeler vehicle",
        "sky",
        "ego-vehicle",
    )
    ll = large.raw(0)["label"]
    name = SYNWOODSCAPE_CLASSES.names
    for raw_id in range(25):
        target = large.classes.names.index(name[raw_id]) if name[raw_id] in large.classes.names else 0
        assert np.all(ll[lab == raw_id] == target), name[raw_id]
    ad = synwoodscape_table("large_plus_AD")
    assert ad.num_classes == 12 and ad.names[8:] == (
        "pedestrian",
        "traffic sign",
        "traffic light",
        "two-wheeler vehicle",
    )
    assert ad.raw_to_class[21] == 11 and ad.raw_to_class[4] == 8 and ad.raw_to_class[5] == 0  # pole -> void
    t = FisheyeDataset(root, "synwoodscape-large_plus_AD", split="all", view="sphere", grid=GRID)[0]
    assert t["label"][t["valid"]].max() <= 11 and torch.isinf(t["depth"]).any()
    with pytest.raises(ValueError):
        synwoodscape_table("nope")


def test_dataloader_two_workers(tiny_synth):
    from heal_swin.data.transforms import Compose, FlatAugment, SphereRandomFlip, SphereRandomRot90

    ds = FisheyeDataset(
        tiny_synth, split="all", view="sphere", grid=GRID, transform=FlatAugment(),
        sphere_transform=Compose(SphereRandomRot90(GRID), SphereRandomFlip(GRID)),
    )  # fmt: skip
    dl = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True)
    n = 0
    for b in dl:
        assert b["image"].shape == (4, 3, GRID.npix) and b["label"].dtype == torch.int64
        assert len(b["calibration"]) == 4 and isinstance(b["calibration"][0], str)
        n += b["image"].shape[0]
    assert n == len(ds) == 16
    flat = DataLoader(FisheyeDataset(tiny_synth, split="val", view="flat"), batch_size=2, num_workers=2)
    b = next(iter(flat))
    assert b["image"].shape == (2, 3, 120, 160) and b["depth"].shape == (2, 120, 160)


def test_missing_one_split_file_is_an_error(tiny_synth, tmp_path):
    from heal_swin.data.layout import DatasetError

    root = _nested_woodscape(tiny_synth, tmp_path / "ws")  # train.txt + val.txt, no test.txt
    with pytest.raises(DatasetError, match="no test.txt"):
        scan(root, "woodscape", split="test")
    assert len(scan(root, "woodscape", split="all").samples) == 16


def test_unlabelled_images_load_without_labels(tiny_synth, tmp_path):
    root = _nested_woodscape(tiny_synth, tmp_path / "ws", split_files=False)
    shutil.rmtree(root / "semantic_annotations")
    assert len(scan(root, "woodscape").samples) == 0
    ds = FisheyeDataset(root, "woodscape", split="all", require_labels=False, validate="full")
    assert len(ds) == 16 and "label" not in ds[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = FisheyeDataset(root, "woodscape", split="all", view="sphere", grid=GRID, require_labels=False)
    assert "label" not in sp[0] and sp[0]["valid"].any()


def test_three_channel_carla_labels(tmp_path):
    from heal_swin.data.layout import read_raw_label

    lab = np.zeros((4, 5, 3), np.uint8)
    lab[..., 2] = 7  # CARLA: id in the red channel (BGR index 2)
    lab[..., 1] = 3
    cv2.imwrite(str(tmp_path / "a.png"), lab)
    assert np.all(read_raw_label(tmp_path / "a.png") == 7)
    cv2.imwrite(str(tmp_path / "b.png"), np.full((4, 5, 3), 5, np.uint8))
    assert np.all(read_raw_label(tmp_path / "b.png") == 5)
