"""End-to-end ONNX (projection in the graph) vs sphere-model ONNX + the Python projection, one frame, CPU.

    python bench/bench_end_to_end.py                 # defaults (a few minutes on 2 cores)
    python bench/bench_end_to_end.py --quick         # smoke run

For each model and thread count (1, 2), the two paths run *interleaved* (A, B, A, B, ...) on the same
WoodScape-sized 1280x966 frame, in the same onnxruntime (intra-op threads = T; OpenCV threads = T):

- ``e2e``: one ``session.run`` of ``REPO/<name>_<camera>/1/model.onnx``: uint8 frame -> uint8 mask;
- ``python``: ``processing.model_input`` (cv2 / taps projection + normalisation) -> the sphere model's
  ``session.run`` -> ``classes_from_logits`` -> ``classes_to_image`` (the back-projection), what
  ``heal-swin serve`` does around the model (without decode/encode).

Models: a hand-built 1x1-convolution sphere model (almost no compute: the projection dominates) at
nside 64 and 256, and ``heal_swin_tiny`` (random weights, exported with ``heal-swin export``) at nside 64.
Prints a table (median ms, p90, ratio python / e2e) and writes bench/results/end_to_end.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_repo(repo: Path, quick: bool, log) -> list[tuple[str, str]]:
    """Sphere model folders + their end-to-end models for the WoodScape FV camera; [(label, sphere folder name)]."""
    from heal_swin.export.end_to_end import export_end_to_end
    from heal_swin.geometry import FisheyeCamera
    from tests.conftest import WOODSCAPE_FV
    from tests.export.sphere_models import write_sphere_folder

    camera = FisheyeCamera.from_json(WOODSCAPE_FV)
    out = []
    for nside in (64,) if quick else (64, 256):
        write_sphere_folder(repo, f"conv_n{nside}", nside=nside)
        out.append((f"1x1-conv sphere model, nside {nside}", f"conv_n{nside}"))
    if not quick:
        import torch

        from heal_swin.export.exporter import export_checkpoint
        from heal_swin.models.checkpoint import save_model
        from heal_swin.models.registry import create_model

        torch.manual_seed(0)
        ckpt = repo.parent / "tiny.safetensors"
        save_model(ckpt, create_model("heal_swin_tiny", nside=64), {"task": "segmentation"})
        export_checkpoint(ckpt, repo / "heal_swin_tiny_n64", log=log)
        out.append(("heal_swin_tiny (random weights), nside 64", "heal_swin_tiny_n64"))
    for _, name in out:
        export_end_to_end(repo / name, camera, "FV", log=log)
    return out


def bench(repo: Path, name: str, threads: int, repeats: int) -> dict:
    import cv2
    import onnxruntime as ort

    from heal_swin.export.end_to_end import synthetic_frames
    from heal_swin.geometry import FisheyeCamera
    from heal_swin.inference import processing as pl
    from heal_swin.inference.manifest import load_manifest
    from tests.conftest import WOODSCAPE_FV

    camera = FisheyeCamera.from_json(WOODSCAPE_FV)
    m = load_manifest(repo / name)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    cv2.setNumThreads(threads)
    e2e = ort.InferenceSession(
        str(repo / f"{name}_FV" / "1" / "model.onnx"), so, providers=["CPUExecutionProvider"]
    )
    sphere = ort.InferenceSession(
        str(repo / name / "1" / "model.onnx"), so, providers=["CPUExecutionProvider"]
    )
    image = synthetic_frames(camera, seed=3)[0]

    def run_e2e() -> np.ndarray:
        return e2e.run(None, {"image": image[None]})[0][0]

    def run_python() -> np.ndarray:
        x = pl.model_input(image, m, camera)[None]
        logits = sphere.run(None, {m.input_name: x})[0][0]
        return pl.classes_to_image(pl.classes_from_logits(logits), m, camera, camera.image_size)

    agreement = float(np.mean(run_e2e() == run_python()))  # also warms both up (maps cached)
    times: dict[str, list[float]] = {"e2e": [], "python": []}
    for _ in range(repeats):
        for key, fn in (("e2e", run_e2e), ("python", run_python)):
            t0 = time.perf_counter()
            fn()
            times[key].append(1e3 * (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in times.items()}
    p90 = {k: float(np.percentile(v, 90)) for k, v in times.items()}
    size = (repo / f"{name}_FV" / "1" / "model.onnx").stat().st_size
    return {"threads": threads, "median_ms": med, "p90_ms": p90, "ratio_python_over_e2e": med["python"] / med["e2e"],
            "mask_agreement": agreement, "e2e_onnx_mb": size / 1e6, "repeats": repeats}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "end_to_end.json")
    a = p.parse_args()
    repeats = a.repeats or (5 if a.quick else 30)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        models = build_repo(repo, a.quick, log=lambda s: None)
        for label, name in models:
            for threads in (1, 2):
                r = bench(repo, name, threads, repeats)
                rows.append({"model": label, **r})
                print(
                    f"  {label}, {threads} thread(s): e2e {r['median_ms']['e2e']:.1f} ms, python {r['median_ms']['python']:.1f} ms",
                    flush=True,
                )
    load_after = os.getloadavg()
    print(
        "\n| model | threads | end-to-end ONNX, ms (p90) | ONNX + Python projection, ms (p90) | python / e2e | mask agreement |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        md, p9 = r["median_ms"], r["p90_ms"]
        print(f"| {r['model']} | {r['threads']} | {md['e2e']:.1f} ({p9['e2e']:.1f}) | {md['python']:.1f} ({p9['python']:.1f}) | "
              f"{r['ratio_python_over_e2e']:.2f}x | {100 * r['mask_agreement']:.3f} % |")  # fmt: skip
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs; frame 1280x966"
    )
    import onnxruntime

    result = {
        "command": "python bench/bench_end_to_end.py" + (" --quick" if a.quick else "") + (f" --repeats {a.repeats}" if a.repeats else ""),
        "rows": rows, "loadavg_before": load_before, "loadavg_after": load_after, "cpus": os.cpu_count(),
        "platform": platform.platform(), "onnxruntime": onnxruntime.__version__, "frame": [1280, 966],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    from heal_swin.io import save_json

    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
