"""Model files: safetensors round trip rebuilds the same model, bad files are clear errors."""

from __future__ import annotations

import pytest
import torch

from heal_swin.models import create_model
from heal_swin.models.checkpoint import ModelFileError, load_model, read_model_metadata, save_model


def test_round_trip_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("heal_swin_tiny", nside=8, num_classes=4).eval()
    meta = {"task": "segmentation", "class_names": ["a", "b", "c", "d"], "mean": (0.5, 0.5, 0.5)}
    path = save_model(tmp_path / "m.safetensors", model, meta)
    again, meta2 = load_model(path)
    assert meta2["class_names"] == meta["class_names"] and meta2["mean"] == [0.5, 0.5, 0.5]
    x = torch.randn(2, 3, model.grid.npix)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    assert read_model_metadata(path)["model_config"]["nside"] == 8
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage that is not safetensors")
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        load_model(bad)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelFileError, match="heal-swin model header"):
        load_model(tmp_path / "plain.safetensors")


def test_weights_that_do_not_fit_name_the_tensor(tmp_path):
    from heal_swin.models.checkpoint import load_weights_into

    path = save_model(tmp_path / "m.safetensors", create_model("heal_swin_tiny", nside=32, embed_dim=8), {})
    wider = create_model("heal_swin_tiny", nside=32, embed_dim=12)
    with pytest.raises(ModelFileError, match=r"tensor '.*': expected shape \(12,?.*\), got \(8"):
        load_weights_into(wider, path)
    deeper = create_model("heal_swin_tiny", nside=32, embed_dim=8, depths=[2, 2, 2], num_heads=[2, 4, 8])
    with pytest.raises(ModelFileError, match=r"do not fit this model: missing \['decoder"):
        load_weights_into(deeper, path)
    same = create_model("heal_swin_tiny", nside=64, embed_dim=8)  # another grid: the weights fit
    assert load_weights_into(same, path)["model_config"]["nside"] == 32
