"""The end-to-end ONNX graph (projection baked in) against the Python pipeline it replaces.

- the taps reproduce ``SphereProjector.to_sphere`` bit for bit (the numpy reference of the graph);
- the graph's sphere input equals ``processing.model_input`` bit for bit, for any K taps;
- masks / depth of the whole graph against ``processing`` + onnxruntime on the sphere model: on
  synthetic frames and on a real-sized (WoodScape 1280x966) frame, batched and alone;
- the graph uses standard ONNX ops only, fixed H, W and a dynamic batch;
- ``heal-swin export --camera`` with a real (tiny) HEAL-SWIN: files, config.pbtxt, manifest, errors.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from heal_swin.export.end_to_end import compare_outputs, export_end_to_end, pipeline_output, synthetic_frames
from heal_swin.export.sampling_graph import Taps, build_end_to_end, build_sphere_input, pipeline_taps
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.inference import processing as pl
from heal_swin.inference.manifest import ManifestError, load_manifest, manifest_from_dict
from heal_swin.inference.triton import parse_pbtxt
from tests.conftest import WOODSCAPE_FV
from tests.export.sphere_models import write_sphere_folder

FV = FisheyeCamera.from_json(WOODSCAPE_FV)
SMALL = FV.scaled(160, 121)
STANDARD_OPS = {
    "Reshape",
    "Gather",
    "GatherElements",
    "Cast",
    "Mul",
    "Add",
    "Round",
    "Clip",
    "Transpose",
    "ArgMax",
    "Exp",
    "Shape",
    "Slice",
    "Concat",
    "Expand",
}


def session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def frames(camera: FisheyeCamera, seed: int = 0) -> np.ndarray:
    """(3, H, W, 3): a rendered street scene, uniform noise, and a saturated frame (0/255 blocks)."""
    scene_noise = synthetic_frames(camera, seed)
    blocks = (np.indices((camera.height, camera.width)).sum(0) // 7 % 2 * 255).astype(np.uint8)
    return np.concatenate([scene_noise, np.repeat(blocks[None, ..., None], 3, -1)])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_sphere_folder(root, "seg", "segmentation", nside=8)
    write_sphere_folder(root, "depth", "depth", nside=8, seed=1)
    write_sphere_folder(root, "seg_area", "segmentation", nside=8, seed=3, resample="area")
    write_sphere_folder(root, "seg_bgr", "segmentation", nside=4, seed=2,
                        normalisation={"colour_order": "BGR", "scale": 1 / 200, "mean": [0.1, 0.5, 0.9], "std": [0.3, 0.2, 0.7]})  # fmt: skip
    return root


@pytest.mark.parametrize("camera", [SMALL, FV.scaled(320, 242)], ids=["160x121", "320x242"])
def test_taps_reproduce_to_sphere(camera):
    """The graph's arithmetic (``Taps.apply``: taps in order, float32, rint) is the pipeline's sampling exactly."""
    proj = SphereProjector(camera, HealpixGrid(8, range(8)))
    taps = pipeline_taps(proj)
    assert taps.k == 4 and taps.index.shape == (proj.grid.npix, 4)
    ok = taps.valid
    assert np.allclose(taps.weight[ok].sum(1), 1, atol=1e-6) and not taps.weight[~ok].any()
    assert taps.index.min() >= 0 and taps.index.max() < camera.width * camera.height
    for img in frames(camera):
        assert np.array_equal(taps.apply(img), proj.to_sphere(img, "bilinear"))


@pytest.mark.parametrize("name", ["seg", "seg_bgr", "seg_area"])
def test_sphere_input_equals_model_input(repo, name):
    """The graph's input half gives ``model_input``'s float32 tensor bit for bit (RGB and BGR models)."""
    m = load_manifest(repo / name)
    proj = pl.projector_for(SMALL, m)
    norm = m.normalisation
    taps = pipeline_taps(proj, m.resample)
    assert (
        taps.k == 4 if m.resample == "bilinear" else taps.k > 4
    )  # area: the footprint of a coarse grid pixel
    g = build_sphere_input(taps, SMALL.image_size, mean=m.mean, std=m.std, scale=norm["scale"],
                           reverse_channels=norm["colour_order"] != "BGR")  # fmt: skip
    imgs = frames(SMALL)
    got = session(g).run(None, {"image": imgs})[0]
    for i, img in enumerate(imgs):
        ref = pl.model_input(img, m, SMALL)
        assert got[i].dtype == np.float32 and np.array_equal(
            got[i].view(np.uint32), ref.view(np.uint32)
        )  # incl. +0.0 outside


def test_any_number_of_taps(repo):
    """Generic K: K = 1 nearest taps give the normalised ``to_sphere(nearest)``; random K = 7 taps their numpy sum."""
    m = load_manifest(repo / "seg")
    proj = pl.projector_for(SMALL, m)
    img = frames(SMALL)[1]
    n, hw = proj.grid.npix, SMALL.width * SMALL.height
    fwd = proj.taps("nearest")
    nearest = Taps(fwd.index.astype(np.int64), fwd.weight, fwd.valid)
    rng = np.random.default_rng(0)
    w7 = rng.uniform(0, 1, (n, 7)).astype(np.float32)
    random7 = Taps(
        rng.integers(0, hw, (n, 7)),
        (w7 / w7.sum(1, keepdims=True)).astype(np.float32),
        rng.uniform(size=n) < 0.8,
    )
    for taps, sphere in ((nearest, proj.to_sphere(img, "nearest")), (random7, None)):
        if sphere is None:  # independent of Taps.apply: one (N, K, 3) product summed tap by tap in float32
            picked = img.reshape(hw, 3)[taps.index].astype(np.float32) * taps.weight[..., None]
            acc = np.zeros((n, 3), np.float32)
            for k in range(7):
                acc += picked[:, k]
            sphere = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
        g = build_sphere_input(
            taps, SMALL.image_size, mean=m.mean, std=m.std, scale=1 / 255, reverse_channels=True
        )
        got = session(g).run(None, {"image": img[None]})[0][0]
        ref = pl.normalise_pixels(sphere, m.mean, m.std, 1 / 255, reverse_channels=True)
        ref[:, ~taps.valid] = 0
        assert np.array_equal(got, ref)


def e2e_for(repo, name: str, camera: FisheyeCamera):
    m = load_manifest(repo / name)
    proj = pl.projector_for(camera, m)
    model = build_end_to_end(onnx.load(str(repo / name / "1" / "model.onnx")), pipeline_taps(proj, m.resample), proj.backward_maps().nearest,
                             task=m.task, mean=m.mean, std=m.std, scale=m.normalisation["scale"],
                             reverse_channels=m.normalisation["colour_order"] != "BGR", depth=m.depth)  # fmt: skip
    sphere = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return m, model, sphere


CASES = [(name, cam) for cam in ("160x121", "woodscape-1280x966") for name in ("seg", "depth", "seg_bgr")] + [
    ("seg_area", "160x121")
]


# (area taps of a coarse grid on a 1280x966 image take a minute to compute: area runs on the small camera)
@pytest.mark.parametrize(
    ("name", "camera"), [pytest.param(n, SMALL if c == "160x121" else FV, id=f"{n}-{c}") for n, c in CASES]
)
def test_end_to_end_matches_pipeline(repo, name, camera):
    m, model, sphere = e2e_for(repo, name, camera)
    onnx.checker.check_model(model, full_check=True)
    imgs = frames(camera)
    out = "mask" if m.task == "segmentation" else "depth"
    got = session(model).run([out], {"image": imgs})[0]
    w, h = camera.image_size
    assert got.shape == (len(imgs), h, w) and got.dtype == (
        np.uint8 if m.task == "segmentation" else np.float32
    )
    footprint = pl.projector_for(camera, m).footprint()
    for i, img in enumerate(imgs):
        ref = pipeline_output(m, sphere, camera, img)
        r = compare_outputs(m.task, got[i], ref)
        if m.task == "segmentation":
            assert r["agreement"] >= 0.999, r
            assert np.all(got[i][~footprint] == 255) and np.all(got[i][footprint] < 10)
            assert len(np.unique(got[i][footprint])) > 1  # a real prediction, not a constant
        else:
            assert r["max_rel"] <= 1e-4 and r["nan_mismatch"] == 0, r
            assert np.array_equal(np.isnan(got[i]), ~footprint) and np.all(got[i][footprint] > 0)
    single = session(model).run([out], {"image": imgs[1:2]})[0]
    assert np.array_equal(single[0], got[1], equal_nan=True)  # batch members do not mix


def test_graph_interface_and_ops(repo):
    _, model, _ = e2e_for(repo, "seg", SMALL)
    added = {n.op_type for n in model.graph.node if n.name.startswith("e2e/")}
    assert added <= STANDARD_OPS and {n.domain for n in model.graph.node} <= {""}  # no custom ops
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [121, 160, 3]  # dynamic batch, fixed H, W
    assert out.name == "mask" and out.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    with pytest.raises(Exception, match="image"):  # a frame of another size is refused by onnxruntime
        session(model).run(None, {"image": np.zeros((1, 120, 160, 3), np.uint8)})


def test_export_end_to_end_folder(repo, tmp_path):
    """Folder, manifest and config of an end-to-end export from an exported sphere folder (Python backend)."""
    m = export_end_to_end(
        repo / "depth", SMALL, "small", tmp_path / "depth_small", backend="python", max_batch_size=4
    )
    out = tmp_path / "depth_small"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "1/model.onnx",
        "1/model.py",
        "config.pbtxt",
        "model.json",
    ]
    back = load_manifest(out)
    assert back == m and m.name == "depth_small" and m.task == "depth"
    e = m.end_to_end
    assert (
        e["camera"] == "small"
        and e["image_size"] == [160, 121]
        and FisheyeCamera.from_dict(e["calibration"]) == SMALL
    )
    assert e["input"] == {
        "name": "image",
        "datatype": "UINT8",
        "shape": [-1, 121, 160, 3],
        "colour_order": "BGR",
    }
    assert (
        e["output"]["name"] == "depth"
        and e["output"]["datatype"] == "FP32"
        and e["sampling"] == {"mode": "bilinear", "taps": 4}
    )
    assert (
        all(r["max_rel"] <= 1e-4 and r["nan_mismatch"] == 0 for r in m.parity["results"])
        and len(m.parity["results"]) == 2
    )
    cfg = parse_pbtxt((out / "config.pbtxt").read_text())
    assert cfg["backend"] == ["python"] and "platform" not in cfg and cfg["max_batch_size"] == [4]
    assert cfg["input"] == [{"name": ["image"], "data_type": ["TYPE_UINT8"], "dims": [121, 160, 3]}]
    assert cfg["output"] == [{"name": ["depth"], "data_type": ["TYPE_FP32"], "dims": [121, 160]}]
    compile((out / "1" / "model.py").read_text(), "model.py", "exec")
    # the manifest's end_to_end interface is validated
    data = json.loads((out / "model.json").read_text())
    data["end_to_end"]["input"]["shape"] = [-1, 3, 121, 160]
    with pytest.raises(ManifestError, match="end_to_end.input"):
        manifest_from_dict(data, "model.json")


def test_end_to_end_model_is_not_wrapped_again(repo, tmp_path):
    """Only sphere models get a projection baked in: an end-to-end or a flat model is a one-line input error."""
    from heal_swin.export.exporter import ExportInputError
    from heal_swin.inference.manifest import save_manifest

    m = export_end_to_end(repo / "seg", SMALL, "small", tmp_path / "seg_small")
    with pytest.raises(ExportInputError, match="end-to-end model"):
        export_end_to_end(tmp_path / "seg_small", SMALL, "again")
    assert parse_pbtxt((tmp_path / "seg_small" / "config.pbtxt").read_text())["platform"] == [
        "onnxruntime_onnx"
    ]
    assert m.end_to_end["triton_backend"] == "onnxruntime"
    flat = load_manifest(repo / "seg")
    flat.input_kind, flat.nside, flat.base_pixels, flat.img_size = "flat", None, None, [48, 64]
    flat.input_shape, flat.output_shape, flat.end_to_end = [-1, 3, 48, 64], [-1, 10, 48, 64], None
    (tmp_path / "flat").mkdir()
    save_manifest(tmp_path / "flat", flat)
    with pytest.raises(ExportInputError, match="is a flat model"):
        export_end_to_end(tmp_path / "flat", SMALL, "small")
    with pytest.raises(ExportInputError, match="--triton-backend"):
        export_end_to_end(repo / "seg", SMALL, "small", tmp_path / "x", backend="tensorrt")
    assert not (tmp_path / "flat_small").exists() and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_export_cli_with_cameras(tmp_path, capsys):
    """``heal-swin export --camera`` on a real (tiny) HEAL-SWIN: a registered camera and a calibration file."""
    import torch

    from heal_swin.cli import main
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_model(ckpt, create_model("heal_swin_tiny", nside=8), {"task": "segmentation"})
    repo = tmp_path / "repo"
    (repo / "cameras").mkdir(parents=True)
    (repo / "cameras" / "small.json").write_text(json.dumps(SMALL.to_dict()))
    wide = tmp_path / "wide_FV.json"
    wide.write_text(json.dumps(FV.scaled(200, 151).to_dict()))
    rc = main(["export", "--checkpoint", str(ckpt), "--out", str(repo / "seg"), "--camera", "small", "--camera", str(wide),
               "--triton-backend", "python", "--max-batch-size", "2"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in repo.iterdir()) == ["cameras", "seg", "seg_small", "seg_wide_FV"]
    sphere = ort.InferenceSession(str(repo / "seg" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    for name, camera in (("seg_small", SMALL), ("seg_wide_FV", FV.scaled(200, 151))):
        m = load_manifest(repo / name)
        assert m.end_to_end["sphere_model"] == "seg" and m.end_to_end["image_size"] == list(camera.image_size)
        assert m.end_to_end["sphere_onnx_sha256"] == load_manifest(repo / "seg").onnx_sha256
        assert all(r["agreement"] >= 0.999 for r in m.parity["results"])
        cfg = parse_pbtxt((repo / name / "config.pbtxt").read_text())
        assert (
            cfg["backend"] == ["python"]
            and cfg["max_batch_size"] == [2]
            and (repo / name / "1" / "model.py").is_file()
        )
        e2e = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        img = frames(camera, seed=5)[0]
        assert (
            compare_outputs(
                "segmentation",
                e2e.run(None, {"image": img[None]})[0][0],
                pipeline_output(m, sphere, camera, img),
            )["agreement"]
            >= 0.999
        )
    assert "seg_small/1/model.onnx (end to end, python" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["nosuch", "missing.json", "../x"])
def test_export_cli_bad_camera_is_one_line_error(tmp_path, capsys, spec):
    from heal_swin.cli import main

    rc = main(
        [
            "export",
            "--checkpoint",
            str(tmp_path / "none.safetensors"),
            "--out",
            str(tmp_path / "repo" / "seg"),
            "--camera",
            spec,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"--camera {spec}" in err, err
    assert not (tmp_path / "repo").exists()  # checked before anything is exported
