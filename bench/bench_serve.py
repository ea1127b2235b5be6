"""Serving benchmark: model latency (torch eager vs onnxruntime fp32 vs int8) and service throughput/latency.

    python bench/bench_serve.py                       # defaults below (a few minutes on 2 cores)
    python bench/bench_serve.py --quick               # smaller, for a smoke run
    python bench/bench_serve.py --soak                # memory soak: 16 clients, 2 minutes, RSS vs the budget (no torch)

1. Model latency, batch 1, per model: torch eager (no_grad), onnxruntime fp32 and int8 (dynamic quantisation),
   median of ``--repeats`` runs after warm-up, with onnxruntime's threads = all cores.
2. Service: ``heal-swin serve`` as a real uvicorn process on 127.0.0.1 serving the HEAL-SWIN model; closed-loop
   clients (httpx, one connection each) POST /v1/segment (PNG mask) with a synthetic fisheye frame of ``--size``
   and its calibration by registered camera name, at concurrency 1, 4, 16, with and without micro-batching.
   Reports requests/s, p50 and p99 latency, errors and the mean micro-batch size (from /metrics).

Prints markdown tables and writes bench/results/serve.json. Models have random weights (latency does not depend
on them); the service numbers include decode, projection, inference, back-projection and PNG encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper next to this file
from bench_serve_soak import SOAK_DOC, print_soak, soak, wait_for

MODELS = {
    # name: (registry name, overrides, metadata)
    "heal_swin_tiny_n64": ("heal_swin_tiny", {"nside": 64}, {"task": "segmentation"}),
    "swin_unet_tiny_256x320": ("swin_unet_tiny", {"img_size": (256, 320)}, {"task": "segmentation"}),
    "s2cnn_seg_tiny_n64": ("s2cnn_seg_tiny", {"nside": 64}, {"task": "segmentation"}),
}


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def export_models(repo: Path, names: list[str], log) -> dict[str, dict]:
    import torch

    from heal_swin.export.exporter import export_checkpoint
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model

    out = {}
    for name in names:
        reg, kw, meta = MODELS[name]
        torch.manual_seed(0)
        ckpt = repo.parent / f"{name}.safetensors"
        save_model(ckpt, create_model(reg, **kw), meta)
        t0 = time.perf_counter()
        m = export_checkpoint(ckpt, repo / name, int8=True, val_samples=2, log=lambda s: None)
        log(
            f"  exported {name} in {time.perf_counter() - t0:.0f} s (parity max abs {m.parity['random']['max_abs']:.1e})"
        )
        out[name] = {"checkpoint": ckpt, "manifest": m}
    return out


def model_latency(repo: Path, exported: dict, repeats: int, log) -> list[dict]:
    import onnxruntime as ort
    import torch

    from heal_swin.models.checkpoint import load_model

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    rows = []
    for name, info in exported.items():
        m = info["manifest"]
        model, _ = load_model(info["checkpoint"])
        x = np.random.default_rng(0).standard_normal((1, *m.input_shape[1:]), dtype=np.float32)
        xt = torch.from_numpy(x)

        def eager(model=model, xt=xt):
            with torch.no_grad():
                model(xt)

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        fp32 = ort.InferenceSession(
            str(repo / name / "1" / "model.onnx"), so, providers=["CPUExecutionProvider"]
        )
        int8 = ort.InferenceSession(
            str(repo / name / "2" / "model.onnx"), so, providers=["CPUExecutionProvider"]
        )
        row = {
            "model": name,
            "input": m.input_shape[1:],
            "params": int(sum(p.numel() for p in model.parameters())),
            "torch_eager_ms": median_ms(eager, repeats),
            "ort_fp32_ms": median_ms(lambda fp32=fp32, x=x: fp32.run(None, {"input": x}), repeats),
            "ort_int8_ms": median_ms(lambda int8=int8, x=x: int8.run(None, {"input": x}), repeats),
            "int8_agreement": m.int8["validation"].get("agreement"),
        }
        rows.append(row)
        log(
            f"  {name}: eager {row['torch_eager_ms']:.1f} ms, ort fp32 {row['ort_fp32_ms']:.1f} ms, int8 {row['ort_int8_ms']:.1f} ms"
        )
    return rows


def start_server(
    repo: Path, batching: bool, max_batch: int, wait_ms: float, runs: int, threads: int
) -> tuple[subprocess.Popen, str]:

    from heal_swin.serve.readiness import free_port, serve_command

    port = free_port()
    cmd = serve_command(repo, port, "--max-batch-size", str(max_batch), "--max-wait-ms", str(wait_ms),
                        "--concurrent-batches", str(runs), "--intra-op-threads", str(threads))  # fmt: skip
    if not batching:
        cmd.append("--no-batching")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_for(proc, url)
    return proc, url


def batch_stats(url: str, model: str) -> tuple[float, float]:
    import httpx

    count = total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'heal_swin_batch_size_count{{model="{model}"}}'):
            count = float(line.split()[-1])
        elif line.startswith(f'heal_swin_batch_size_sum{{model="{model}"}}'):
            total = float(line.split()[-1])
    return count, total


def load_level(
    url: str, model: str, image: bytes, concurrency: int, seconds: float, max_requests: int
) -> dict:
    import httpx

    files = {"image": ("frame.jpg", image, "image/jpeg")}
    data = {"camera": "bench", "model": model}
    c0, s0 = batch_stats(url, model)
    stop_at = time.perf_counter() + seconds
    per_client = max(1, max_requests // concurrency)

    def client(_: int) -> tuple[list[float], int]:
        lat, errors = [], 0
        with httpx.Client(base_url=url, timeout=120) as c:
            for _ in range(per_client):
                if time.perf_counter() > stop_at:
                    break
                t0 = time.perf_counter()
                r = c.post("/v1/segment", files=files, data=data)
                lat.append(time.perf_counter() - t0)
                errors += r.status_code != 200
        return lat, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(r[0]) for r in results])
    c1, s1 = batch_stats(url, model)
    return {
        "concurrency": concurrency,
        "requests": int(lat.size),
        "errors": int(sum(r[1] for r in results)),
        "seconds": wall,
        "req_per_s": lat.size / wall,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "mean_batch": (s1 - s0) / (c1 - c0) if c1 > c0 else None,
    }


def make_frame(size: tuple[int, int]) -> tuple[bytes, dict]:
    import cv2

    from heal_swin.serve.demo import render_frames

    ((cam, image, _, _),) = render_frames(1, size, seed=3)
    _ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return jpg.tobytes(), cam.to_dict()


def print_tables(results: dict) -> None:
    print("\n## Model latency (batch 1, median ms, onnxruntime/torch threads = all cores)\n")
    print("| model | input | params | torch eager | ORT fp32 | ORT int8 | int8 argmax agreement |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results["models"]:
        agree = "" if r["int8_agreement"] is None else f"{100 * r['int8_agreement']:.1f} %"
        print(
            f"| {r['model']} | {r['input']} | {r['params']:,} | {r['torch_eager_ms']:.1f} | {r['ort_fp32_ms']:.1f} | {r['ort_int8_ms']:.1f} | {agree} |"
        )
    s = results["service"]
    print(f"\n## Service: POST /v1/segment, {s['model']}, {s['frame']}, {s['format']}\n")
    print(
        "| batching | runs in flight x ORT threads | concurrency | requests | req/s | p50 ms | p99 ms | errors | mean batch |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in s["levels"]:
        mb = "" if r["mean_batch"] is None else f"{r['mean_batch']:.2f}"
        print(
            f"| {'on' if r['batching'] else 'off'} | {r['runs_in_flight']} x {r['ort_threads']} | {r['concurrency']} | {r['requests']} | {r['req_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} | {mb} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS)
    )
    ap.add_argument("--serve-model", default="heal_swin_tiny_n64")
    ap.add_argument("--size", default="1280x966", help="fisheye frame size for the service (WxH)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=12.0, help="max seconds per load level")
    ap.add_argument("--max-requests", type=int, default=400, help="max requests per load level")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--wait-ms", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="heal_swin only, 4 s per level")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    ap.add_argument(
        "--tables", type=Path, default=None, help="only print the tables of an existing results file"
    )
    ap.add_argument("--soak", action="store_true", help="the memory soak instead (no torch): " + SOAK_DOC)
    ap.add_argument("--soak-seconds", type=float, default=120.0)
    ap.add_argument("--soak-nside", type=int, default=64)
    ap.add_argument("--good-clients", type=int, default=8)
    ap.add_argument("--large-clients", type=int, default=4)
    ap.add_argument("--v2-clients", type=int, default=4)
    ap.add_argument(
        "--large-sizes",
        type=int,
        default=6,
        help="distinct large frame sizes (each request trims 0-3 rows more)",
    )
    ap.add_argument("--budget-mib", type=int, default=4608)
    ap.add_argument("--cache-mib", type=int, default=512)
    ap.add_argument("--max-image-pixels", type=int, default=4096 * 3072)
    ap.add_argument("--max-tensor-elements", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--max-infer-batch", type=int, default=64)
    ap.add_argument("--max-upload-bytes", type=int, default=20 * 1024 * 1024)
    ap.add_argument("--max-inflight", type=int, default=2)
    args = ap.parse_args()
    if args.tables:
        data = json.loads(args.tables.read_text())
        print_soak(data) if "rows" in data else print_tables(data)
        return
    if args.soak:
        out = (
            args.out
            if args.out != ROOT / "bench" / "results" / "serve.json"
            else ROOT / "bench" / "results" / "serve_soak.json"
        )
        result = soak(args)
        result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        result["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print_soak(result)
        print(f"\nwrote {out}")
        return
    if args.quick:
        args.models, args.seconds, args.repeats = args.serve_model, 4.0, 5
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.serve_model not in names:
        names.append(args.serve_model)
    w, h = (int(v) for v in args.size.lower().split("x"))
    log = lambda s: print(s, flush=True)

    results: dict = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        log("exporting models (fp32 + int8) ...")
        exported = export_models(repo, names, log)
        log("model latency, batch 1 ...")
        results["models"] = model_latency(repo, exported, args.repeats, log)
        # the service serves only the chosen model
        for name in names:
            if name != args.serve_model:
                import shutil

                shutil.rmtree(repo / name)
        image, calib = make_frame((w, h))
        (repo / "cameras").mkdir()
        (repo / "cameras" / "bench.json").write_text(json.dumps(calib))
        results["service"] = {
            "model": args.serve_model,
            "frame": f"{w}x{h} JPEG ({len(image)} bytes)",
            "format": "mask (PNG)",
            "max_batch": args.max_batch,
            "max_wait_ms": args.wait_ms,
            "levels": [],
        }
        cores = len(os.sched_getaffinity(0))
        variants = [
            (True, 1, cores),
            (True, 2, max(1, cores // 2)),
            (False, 1, cores),
            (False, 2, max(1, cores // 2)),
        ]
        for batching, runs, threads in variants:
            log(
                f"service, batching {'on' if batching else 'off'}, {runs} run(s) in flight x {threads} thread(s) ..."
            )
            proc, url = start_server(repo, batching, args.max_batch, args.wait_ms, runs, threads)
            try:
                load_level(url, args.serve_model, image, 2, 2.0, 20)  # warm the maps and connections
                for conc in (int(c) for c in args.concurrency.split(",")):
                    row = load_level(url, args.serve_model, image, conc, args.seconds, args.max_requests)
                    row.update(batching=batching, runs_in_flight=runs, ort_threads=threads)
                    results["service"]["levels"].append(row)
                    log(
                        f"  c={conc}: {row['req_per_s']:.1f} req/s, p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                        f"errors {row['errors']}, mean batch {row['mean_batch']}"
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print_tables(results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
