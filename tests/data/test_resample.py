"""The ``resample`` option: training's dataset and the served model input take the same taps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from heal_swin.data.datasets import FisheyeDataset
from heal_swin.geometry import FisheyeCamera, HealpixGrid
from heal_swin.inference import processing
from heal_swin.inference.manifest import Manifest, ManifestError, manifest_from_dict


def _manifest(resample: str, nside: int = 4) -> Manifest:
    n = 8 * nside * nside
    return Manifest(
        name="m", model_name="heal_swin_tiny", task="segmentation", input_kind="sphere", in_chans=3, out_chans=2,
        input_shape=[-1, 3, n], output_shape=[-1, 2, n], onnx_sha256="0" * 64, opset=18, nside=nside,
        base_pixels=list(range(8)), class_names=["a", "b"], class_colours=[[0, 0, 0], [1, 1, 1]], resample=resample,
        normalisation={"colour_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ).validate()  # fmt: skip


@pytest.mark.parametrize("resample", ["bilinear", "area"])
def test_dataset_equals_model_input(tiny_synth, resample):
    ds = FisheyeDataset(
        tiny_synth, "synthetic", split="all", view="sphere", grid=HealpixGrid(4), resample=resample
    )
    rec = ds.samples[3]
    served = processing.model_input(
        cv2.imread(rec.image), _manifest(resample), FisheyeCamera.from_json(rec.calibration)
    )
    assert np.array_equal(ds[3]["image"].numpy(), served)


def test_area_differs_from_bilinear_and_labels_stay_nearest(tiny_synth):
    grid = HealpixGrid(4)  # much coarser than the 160x120 images
    a = FisheyeDataset(tiny_synth, "synthetic", split="all", view="sphere", grid=grid, resample="area")[0]
    b = FisheyeDataset(tiny_synth, "synthetic", split="all", view="sphere", grid=grid)[0]
    assert not np.array_equal(a["image"].numpy(), b["image"].numpy())
    np.testing.assert_array_equal(a["label"].numpy(), b["label"].numpy())
    np.testing.assert_array_equal(a["depth"].numpy(), b["depth"].numpy())
    np.testing.assert_array_equal(a["valid"].numpy(), b["valid"].numpy())


def test_bad_resample_is_named(tiny_synth):
    with pytest.raises(ValueError, match="resample"):
        FisheyeDataset(tiny_synth, "synthetic", split="all", view="sphere", resample="cubic")
    with pytest.raises(ValidationError, match="resample"):
        _manifest("cubic")
    data = {**_manifest("area").to_dict(), "resample": "cubic"}
    with pytest.raises(ManifestError, match="field 'resample'"):
        manifest_from_dict(data)
    assert Manifest.__dataclass_fields__["resample"].default == "bilinear"  # old manifests: bilinear
