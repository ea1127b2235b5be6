"""An exported sphere model + one camera -> an end-to-end model folder ``REPO/<name>_<camera>/``.

``export_end_to_end`` reads a model folder written by ``heal-swin export`` (torch is not needed),
builds the end-to-end graph (:mod:`heal_swin.export.sampling_graph`) with the camera's sampling
maps, runs ``onnx.checker`` and checks it against the Python pipeline (``heal_swin.inference.processing``
+ onnxruntime on the sphere model) on synthetic frames: a street scene rendered through the
camera and uniform noise (the hardest case for the interpolation), as one batch. The folder is
written only if the masks agree on >= 99.9 % of the pixels (depth: max relative error <= 1e-4),
staged and swapped in like every export::

    REPO/<name>_<camera>/config.pbtxt     Triton: onnxruntime_onnx, or backend "python" (--triton-backend python)
    REPO/<name>_<camera>/model.json       the sphere model's manifest + "end_to_end" (camera, interface) + parity
    REPO/<name>_<camera>/1/model.onnx     image uint8 (B, H, W, 3) BGR -> mask uint8 / depth float32 (B, H, W)
    REPO/<name>_<camera>/1/model.py       Python backend only: runs 1/model.onnx with onnxruntime
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.export.exporter import NAME_RE, ExportInputError, _stage, commit_folder
from heal_swin.geometry import FisheyeCamera
from heal_swin.inference.manifest import (
    FP32_VERSION,
    MANIFEST_NAME,
    ONNX_NAME,
    Manifest,
    load_manifest,
    save_manifest,
    sha256_file,
)
from heal_swin.inference.triton import BACKENDS, CONFIG_NAME, PYTHON_MODEL_NAME, end_to_end_config_text

__all__ = [
    "DEPTH_MAX_REL",
    "MASK_AGREEMENT",
    "compare_outputs",
    "export_end_to_end",
    "pipeline_output",
    "resolve_camera",
]

MASK_AGREEMENT = 0.999  # fraction of fisheye pixels whose class equals the Python pipeline's
DEPTH_MAX_REL = 1e-4  # max relative depth error where both are finite
_CAMERAS = "cameras"


class EndToEndParityError(AssertionError):
    """The end-to-end model differs from the Python pipeline beyond the thresholds."""


def resolve_camera(spec: str, repository: Path) -> tuple[FisheyeCamera, str]:
    """``--camera``: a calibration file, or a camera registered as ``REPO/cameras/<name>.json``. Returns (camera, name)."""
    path = Path(spec)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise ExportInputError(f"--camera {spec}: no such calibration file")
        return FisheyeCamera.from_json(path), path.stem
    registered = repository / _CAMERAS / f"{spec}.json"
    if not NAME_RE.match(spec) or not registered.is_file():
        known = (
            sorted(p.stem for p in (repository / _CAMERAS).glob("*.json"))
            if (repository / _CAMERAS).is_dir()
            else []
        )
        raise ExportInputError(
            f"--camera {spec}: expected a calibration .json file or a camera registered in {repository / _CAMERAS}/, "
            f"got neither (registered: {', '.join(known) or 'none'})"
        )
    return FisheyeCamera.from_json(registered), spec


def synthetic_frames(camera: FisheyeCamera, seed: int = 0) -> np.ndarray:
    """(2, H, W, 3) uint8 BGR: a street scene rendered through ``camera`` and uniform noise."""
    from heal_swin.data.synthetic import make_scene, render_scene

    rng = np.random.default_rng([seed, 1])
    scene = render_scene(make_scene(rng, cameras=("FV",)), camera, rng)["image"]
    noise = np.random.default_rng([seed, 2]).integers(0, 256, scene.shape, dtype=np.uint8)
    return np.stack([scene, noise])


def pipeline_output(manifest: Manifest, session: Any, camera: FisheyeCamera, image: np.ndarray) -> np.ndarray:
    """What the Python pipeline gives for one (H, W, 3) BGR frame: (H, W) uint8 mask or float32 metres."""
    from heal_swin.inference import processing as pl

    x = pl.model_input(image, manifest, camera)[None]
    out = session.run(None, {manifest.input_name: x})[0][0]
    if manifest.task == "segmentation":
        return pl.classes_to_image(pl.classes_from_logits(out), manifest, camera, camera.image_size)
    return pl.depth_to_image(pl.depth_from_output(out, manifest), manifest, camera, camera.image_size)


def compare_outputs(task: str, got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Agreement of end-to-end outputs with the pipeline's: mask ``agreement``, or depth ``max_rel`` and ``nan_mismatch``."""
    if task == "segmentation":
        return {"agreement": float(np.mean(got == ref)), "pixels": int(ref.size)}
    both = np.isfinite(got) & np.isfinite(ref)
    rel = np.abs(got[both].astype(np.float64) - ref[both]) / np.maximum(np.abs(ref[both]), 1e-30)
    return {
        "max_rel": float(rel.max(initial=0.0)),
        "nan_mismatch": int(np.sum(np.isnan(got) != np.isnan(ref))),
        "pixels": int(ref.size),
    }


def _passes(task: str, r: dict[str, float]) -> bool:
    if task == "segmentation":
        return r["agreement"] >= MASK_AGREEMENT
    return r["max_rel"] <= DEPTH_MAX_REL and r["nan_mismatch"] == 0


def export_end_to_end(
    model_folder: str | Path,
    camera: FisheyeCamera,
    camera_name: str,
    out: str | Path | None = None,
    *,
    backend: str = "onnxruntime",
    max_batch_size: int = 8,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> Manifest:
    """Write the end-to-end model of ``camera`` for the sphere model in ``model_folder`` (see the module docstring).

    ``out`` defaults to ``<model_folder>_<camera_name>`` beside it. Raises :class:`ExportInputError` for a
    flat model, a bad name or backend, and :class:`EndToEndParityError` when the graph differs from the pipeline.
    """
    import onnx
    import onnxruntime as ort

    from heal_swin.export.sampling_graph import (
        DEPTH_OUTPUT,
        IMAGE_INPUT,
        MASK_OUTPUT,
        build_end_to_end,
        pipeline_taps,
    )
    from heal_swin.inference import processing as pl

    model_folder = Path(model_folder)
    m = load_manifest(model_folder)
    if m.input_kind != "sphere" or m.end_to_end is not None:
        raise ExportInputError(f"--camera: {model_folder} is {'an end-to-end' if m.end_to_end else 'a ' + m.input_kind} model; "
                               "the projection is baked in only around sphere models")  # fmt: skip
    if backend not in BACKENDS:
        raise ExportInputError(f"--triton-backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    name = f"{m.name}_{camera_name}"
    out = Path(out) if out is not None else model_folder.parent / name
    name = out.resolve().name
    if not NAME_RE.match(name) or name == _CAMERAS:
        raise ExportInputError(
            f"end-to-end model name: expected letters, digits, '_', '.', '-', got {name!r}"
        )
    w, h = camera.image_size
    log(f"end-to-end model for camera {camera_name} ({w}x{h}) around {m.name} ...")
    proj = pl.projector_for(camera, m)
    taps = pipeline_taps(proj, m.resample)
    sphere = onnx.load(str(model_folder / str(FP32_VERSION) / m.onnx_file))
    norm = m.normalisation
    e2e = build_end_to_end(
        sphere, taps, proj.backward_maps().nearest, task=m.task, mean=m.mean, std=m.std,
        scale=float(norm.get("scale", 1 / 255)), reverse_channels=norm.get("colour_order", "RGB") != "BGR",
        depth=m.depth, input_name=m.input_name, output_name=m.output_name,
    )  # fmt: skip
    onnx.checker.check_model(e2e, full_check=True)
    output = MASK_OUTPUT if m.task == "segmentation" else DEPTH_OUTPUT

    tmp = _stage(out)
    try:
        (tmp / str(FP32_VERSION)).mkdir()
        onnx_path = tmp / str(FP32_VERSION) / ONNX_NAME
        onnx.save_model(e2e, str(onnx_path))
        frames = synthetic_frames(camera, seed)
        sphere_session = ort.InferenceSession(
            str(model_folder / str(FP32_VERSION) / m.onnx_file), providers=["CPUExecutionProvider"]
        )
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run([output], {IMAGE_INPUT: frames})[0]
        results = [
            compare_outputs(m.task, got[i], pipeline_output(m, sphere_session, camera, f))
            for i, f in enumerate(frames)
        ]
        log(f"parity vs the Python pipeline (street scene, noise; one batch): {results}")
        if not all(_passes(m.task, r) for r in results):
            raise EndToEndParityError(f"end-to-end model differs from the Python pipeline: {results} "
                                      f"(need agreement >= {MASK_AGREEMENT}, depth max_rel <= {DEPTH_MAX_REL})")  # fmt: skip
        io_out = {
            "name": output,
            "datatype": "UINT8" if m.task == "segmentation" else "FP32",
            "shape": [-1, h, w],
        }
        io_out.update(
            {"no_prediction": 255} if m.task == "segmentation" else {"unit": "metres", "no_prediction": "NaN"}
        )
        e2e_info = {
            "camera": camera_name,
            "image_size": [w, h],
            "calibration": camera.to_dict(),
            "sphere_model": m.name,
            "sphere_onnx_sha256": m.onnx_sha256,
            "sampling": {"mode": m.resample, "taps": taps.k},
            "input": {
                "name": IMAGE_INPUT,
                "datatype": "UINT8",
                "shape": [-1, h, w, 3],
                "colour_order": "BGR",
            },
            "output": io_out,
            "triton_backend": backend,
        }
        parity: dict[str, Any] = {
            "against": "heal_swin.inference.processing + onnxruntime on the sphere model",
            "frames": ["synthetic street scene", "uniform noise"],
            "results": results,
            "thresholds": {"mask_agreement": MASK_AGREEMENT, "depth_max_rel": DEPTH_MAX_REL},
        }
        manifest = Manifest(**{
            **m.to_dict(), "name": name, "onnx_sha256": sha256_file(onnx_path), "onnx_data_file": None, "onnx_data_sha256": None,
            "int8": None, "model_versions": {str(FP32_VERSION): "fp32"}, "parity": parity, "end_to_end": e2e_info,
            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip
        save_manifest(tmp / MANIFEST_NAME, manifest)
        (tmp / CONFIG_NAME).write_text(
            end_to_end_config_text(manifest, backend=backend, max_batch_size=max_batch_size)
        )
        if backend == "python":
            shutil.copyfile(
                Path(__file__).with_name("triton_python_model.py"),
                tmp / str(FP32_VERSION) / PYTHON_MODEL_NAME,
            )
        for f in [tmp / CONFIG_NAME, *tmp.glob("[0-9]*/*")]:
            f.chmod(0o644)
        (tmp / str(FP32_VERSION)).chmod(0o755)
        commit_folder(tmp, out)
        log(
            f"wrote {out}/ ({', '.join(sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file()))})"
        )
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
