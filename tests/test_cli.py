"""``heal-swin project`` end to end on a rendered image, and its error behaviour."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from heal_swin.cli import main, parse_base_pixels
from heal_swin.geometry import FisheyeCamera, HealpixGrid


@pytest.fixture
def small_case(tmp_path, fv_calib):
    cam = FisheyeCamera.from_json(fv_calib).scaled(320, 242)
    calib = tmp_path / "cam.json"
    calib.write_text(json.dumps(cam.to_dict()))
    rays = cam.pixel_rays()
    image = (np.stack([rays[..., 0], rays[..., 1], rays[..., 2]], -1) * 127 + 128).astype(np.uint8)
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), image)
    return cam, calib, path, image


def test_project_writes_all_outputs(tmp_path, small_case, capsys):
    _cam, calib, img, image = small_case
    out = tmp_path / "out"
    assert main(["project", str(img), "--calib", str(calib), "--nside", "32", "--out", str(out)]) == 0
    sphere = np.load(out / "sphere.npy")
    valid = np.load(out / "valid.npy")
    grid = HealpixGrid(32)
    assert sphere.shape == (grid.npix, 3) and sphere.dtype == np.uint8
    assert valid.shape == (grid.npix,) and valid.dtype == bool
    assert np.all(sphere[~valid] == 0)
    # Stored RGB: channel 0 of the file is the image's last (BGR -> RGB), encoding ray z.
    z = grid.vectors()[:, 2] * 127 + 128
    assert np.abs(sphere[valid, 0].astype(float) - z[valid]).max() < 3
    for name in ("mollweide.png", "orthographic.png", "backprojected.png"):
        assert cv2.imread(str(out / name)) is not None
    back = cv2.imread(str(out / "backprojected.png"))
    assert back.shape == image.shape
    meta = json.loads((out / "sphere.json").read_text())
    assert meta["nside"] == 32 and meta["order"] == "NESTED"
    text = capsys.readouterr().out
    assert "coverage" in text and "ms" in text


def test_project_labels_nearest_all_base_pixels(tmp_path, small_case):
    cam, calib, _img, _ = small_case
    labels = (np.arange(cam.width)[None] // 32 % 5 + np.zeros((cam.height, 1), int)).astype(np.uint8)
    lab = tmp_path / "lab.png"
    cv2.imwrite(str(lab), labels)
    out = tmp_path / "o"
    assert (
        main(
            [
                "project",
                str(lab),
                "--calib",
                str(calib),
                "--nside",
                "16",
                "--base-pixels",
                "all",
                "--mode",
                "nearest",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    sphere = np.load(out / "sphere.npy")
    assert sphere.shape == (12 * 256,) and set(np.unique(sphere)) <= set(range(5))


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda c: c["intrinsic"].pop("k2"), "intrinsic.k2"),
        (lambda c: c["intrinsic"].update(width=640.0), "does not match"),
    ],
)
def test_project_errors_are_one_line_exit_2(tmp_path, small_case, capsys, mutate, expect):
    _cam, calib, img, _ = small_case
    data = json.loads(calib.read_text())
    mutate(data)
    calib.write_text(json.dumps(data))
    assert (
        main(["project", str(img), "--calib", str(calib), "--nside", "8", "--out", str(tmp_path / "x")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_project_bad_image_and_nside(tmp_path, small_case, capsys):
    _cam, calib, img, _ = small_case
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    assert main(["project", str(bad), "--calib", str(calib), "--out", str(tmp_path / "x")]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert (
        main(["project", str(img), "--calib", str(calib), "--nside", "48", "--out", str(tmp_path / "x")]) == 2
    )
    assert "nside" in capsys.readouterr().err


def test_parse_base_pixels():
    assert parse_base_pixels("0-7") == tuple(range(8))
    assert parse_base_pixels("all") == tuple(range(12))
    assert parse_base_pixels("0,4-5,11") == (0, 4, 5, 11)


def test_atomic_writes_have_normal_permissions(tmp_path):
    import os
    import stat

    from heal_swin.io import save_json

    save_json(tmp_path / "x.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~umask
