"""int8 dynamic quantisation of an exported model and its accuracy change on a validation set.

``quantize_int8`` writes weights-int8 (per output channel) / activations-dynamic ``model.onnx`` of version 2 with onnxruntime's
quantiser (MatMul/Gemm-heavy transformers gain most). ``compare_on_frames`` runs the fp32 and the
int8 model on the same validation frames and reports the task metric of each, their difference
and how often the two agree (both fed through :mod:`heal_swin.inference.processing`). No torch here.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.geometry import FisheyeCamera
from heal_swin.inference.manifest import Manifest

__all__ = ["compare_on_frames", "ort_session", "quantize_int8", "validation_frames_from_folder"]

Frame = tuple[
    FisheyeCamera, np.ndarray, np.ndarray | None, np.ndarray | None
]  # camera, BGR image, label, depth


def ort_session(path: str | Path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of ``src`` into ``dst``: weights int8 per output channel, activations uint8
    quantised per tensor at run time.

    Per-channel weight scales cost ~1-3 % of onnxruntime's int8 time on the paper model and raise its argmax
    agreement with fp32 from 56 % to 84 % (nside 64) and 65 % to 90 % (nside 128) on random weights,
    whose narrow-range output channels a single per-tensor scale crushes (BENCHMARKS.md, "Model speed").

    Weights use 7 of the 8 bits (``reduce_range``): on x86 CPUs without VNNI, onnxruntime's u8 x s8 kernel
    adds pairs of products in 16 bits, which saturate with full-range weights (paper model, nside 64,
    random weights, an AVX2 EPYC: argmax agreement with fp32 22 % at 8 bits, 79 % at 7). The file is a
    portable artefact and the serving CPU is unknown at export time, so it is quantised for both.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    dst.parent.mkdir(parents=True, exist_ok=True)  # the version folder (REPO/<name>/2/)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 (pre-processing is an optimisation; quantise the original if it fails)
            pre = Path(src)
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return dst


def _seg_scores(pred: np.ndarray, label: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class intersections and unions over valid labels (label < num_classes)."""
    ok = label < num_classes
    p, g = pred[ok].astype(np.int64), label[ok].astype(np.int64)
    conf = np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return inter, union.astype(np.float64)


def compare_on_frames(
    manifest: Manifest,
    fp32_path: str | Path,
    int8_path: str | Path,
    frames: Iterable[Frame],
    source: str,
) -> dict[str, Any]:
    """fp32 vs int8 on ``frames``: task metrics of both (vs the labels) and their agreement."""
    from heal_swin.inference import processing as pl

    sessions = {"fp32": ort_session(fp32_path), "int8": ort_session(int8_path)}
    k = manifest.out_chans
    acc: dict[str, dict[str, Any]] = {
        name: {
            "inter": np.zeros(k),
            "union": np.zeros(k),
            "correct": 0,
            "total": 0,
            "abs_rel": [],
            "sq_log": [],
        }
        for name in sessions
    }
    agree = total = 0
    depth_rel_diff: list[float] = []
    n_frames = 0
    for camera, image, label, depth in frames:
        n_frames += 1
        x = pl.model_input(image, manifest, camera)[None]
        outs = {name: s.run(None, {manifest.input_name: x})[0][0] for name, s in sessions.items()}
        # The reference on the model's domain: nearest samples of the label / depth images.
        if manifest.input_kind == "sphere":
            proj = pl.projector_for(camera, manifest)
            valid = proj.valid_mask
            lab = pl.labels_to_sphere(label, proj) if label is not None else None
            ref_depth = pl.depth_to_sphere(depth, proj) if depth is not None else None
        else:
            h, w = manifest.img_size
            valid = np.ones((h, w), bool)
            lab = None if label is None else pl.resize_nearest(label, (w, h))
            ref_depth = None if depth is None else pl.resize_nearest(depth.astype(np.float32), (w, h))
        if manifest.task == "segmentation":
            preds = {name: pl.classes_from_logits(o) for name, o in outs.items()}
            agree += int((preds["fp32"][valid] == preds["int8"][valid]).sum())
            total += int(valid.sum())
            if lab is not None:
                lab = np.where(valid, lab, 255)
                for name, p in preds.items():
                    i, u = _seg_scores(p, lab, k)
                    a = acc[name]
                    a["inter"] += i
                    a["union"] += u
                    ok = lab < k
                    a["correct"] += int((p[ok] == lab[ok]).sum())
                    a["total"] += int(ok.sum())
        else:
            metres = {name: pl.depth_from_output(o, manifest) for name, o in outs.items()}
            f, q = metres["fp32"][valid], metres["int8"][valid]
            depth_rel_diff.append(float(np.mean(np.abs(q - f) / np.maximum(f, 1e-6))))
            if ref_depth is not None:
                ok = valid & np.isfinite(ref_depth) & (ref_depth > 0)
                for name, m in metres.items():
                    acc[name]["abs_rel"].append(np.abs(m[ok] - ref_depth[ok]) / ref_depth[ok])
                    acc[name]["sq_log"].append((np.log(m[ok]) - np.log(ref_depth[ok])) ** 2)
    result: dict[str, Any] = {"source": source, "frames": n_frames}
    if manifest.task == "segmentation":
        for name in sessions:
            a = acc[name]
            present = a["union"] > 0
            result[name] = {
                "miou": float(np.mean(a["inter"][present] / a["union"][present])) if present.any() else None,
                "pixel_accuracy": a["correct"] / a["total"] if a["total"] else None,
            }
        result["agreement"] = agree / total if total else None
        f, q = result["fp32"]["miou"], result["int8"]["miou"]
        result["delta_miou"] = None if f is None or q is None else q - f
    else:
        for name in sessions:
            a = acc[name]
            if a["abs_rel"]:
                rel = np.concatenate(a["abs_rel"])
                sq = np.concatenate(a["sq_log"])
                result[name] = {"abs_rel": float(rel.mean()), "rmse_log": float(np.sqrt(sq.mean()))}
            else:
                result[name] = {"abs_rel": None, "rmse_log": None}
        result["mean_rel_diff_int8_vs_fp32"] = float(np.mean(depth_rel_diff)) if depth_rel_diff else None
        f, q = result["fp32"]["abs_rel"], result["int8"]["abs_rel"]
        result["delta_abs_rel"] = None if f is None or q is None else q - f
    return result


def validation_frames_from_folder(
    folder: str | Path, limit: int, split: Sequence[str] = ("val.txt",)
) -> tuple[list[Frame], str]:
    """Frames of a WoodScape-layout folder (``rgb_images``, ``gtLabels``, ``depth_maps/raw_data``, ``calibration``)."""
    from heal_swin.errors import InputError
    from heal_swin.io import read_image

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--val-data {root}: not a directory")

    def find_dir(*names: str) -> Path | None:
        for name in names:
            hits = sorted(p for p in root.rglob(name) if p.is_dir())
            if hits:
                return hits[-1]  # the deepest of nested copies (rgb_images/rgb_images)
        return None

    rgb = find_dir("rgb_images")
    calib = find_dir("calibration")
    if rgb is None or calib is None:
        raise InputError(
            f"--val-data {root}: expected rgb_images/ and calibration/ folders (WoodScape layout)"
        )
    labels = find_dir("gtLabels")
    depths = root / "depth_maps" / "raw_data"
    stems: list[str] | None = None
    for s in split:
        if (root / s).is_file():
            stems = [line.strip() for line in (root / s).read_text().splitlines() if line.strip()]
            break
    if stems is None:
        stems = sorted(p.stem for p in rgb.glob("*.png"))
    frames: list[Frame] = []
    for stem in stems[:limit]:
        cal = calib / f"{stem}.json"
        if not cal.is_file():
            raise InputError(f"--val-data: no calibration {cal} for image {stem}")
        image = read_image(rgb / f"{stem}.png", 1)
        label = (
            read_image(labels / f"{stem}.png", 0)
            if labels is not None and (labels / f"{stem}.png").is_file()
            else None
        )
        dpath = depths / f"{stem}.npy"
        depth = np.load(dpath, allow_pickle=False).astype(np.float32) if dpath.is_file() else None
        if depth is not None:
            depth[depth >= 1000] = np.inf
        frames.append((FisheyeCamera.from_json(cal), image, label, depth))
    if not frames:
        raise InputError(f"--val-data {root}: no images found")
    return frames, f"{root} ({len(frames)} frames)"
