"""The memory soak of bench/bench_serve.py (``--soak``): good, large and v2 requests at once, server RSS.

    python bench/bench_serve.py --soak                               # run it (no torch)
    python bench/bench_serve_soak.py bench/results/serve_soak.json   # its tables again

Also ``wait_for``, the wait until a started ``heal-swin serve`` answers, which the script's runs share.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def wait_for(proc: subprocess.Popen, url: str) -> None:
    """Wait until the server at ``url`` is ready; if it exits or never answers, kill it and raise."""
    from heal_swin.serve.readiness import wait_until_ready

    def stopped() -> str | None:
        return None if proc.poll() is None else proc.stderr.read().decode()[-2000:]

    try:
        wait_until_ready(url, 120, stopped=stopped, interval=0.1)
    except RuntimeError:
        proc.kill()
        raise


# ------------------------------------------------------------------ memory soak (no torch)
SOAK_DOC = """--soak: 16 clients for --soak-seconds against `heal-swin serve` with a memory budget, mixing
good frames (the registered camera's size), large frames of a new size every request (resize=true:
new sampling maps each time, up to max_image_pixels) and large KServe v2 batches (binary tensors,
the most elements max_tensor_elements allows); the server's RSS is sampled every 0.2 s."""


def soak_model(folder: Path, nside: int, classes: int = 10) -> None:
    """A sphere model in the exported layout (a small real ONNX graph: 1x1 conv + per-sample mean term)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from heal_swin.inference.manifest import Manifest, save_manifest, sha256_file
    from heal_swin.inference.triton import CONFIG_NAME, model_config_text

    n = 8 * nside * nside
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 1, (classes, 3, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, (classes,)).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 1, (classes, 3, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([2], np.int64), "axes")]  # fmt: skip
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["local"]),
             helper.make_node("ReduceMean", ["input", "axes"], ["avg"], keepdims=1),
             helper.make_node("Conv", ["avg", "w2"], ["glob"]),
             helper.make_node("Add", ["local", "glob"], ["output"])]  # fmt: skip
    graph = helper.make_graph(nodes, "soak", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, n])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", classes, n])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = folder / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))
    m = Manifest(
        name=folder.name, model_name="soak", task="segmentation", input_kind="sphere", in_chans=3, out_chans=classes,
        input_shape=[-1, 3, n], output_shape=[-1, classes, n], onnx_sha256=sha256_file(path), opset=18, nside=nside,
        base_pixels=list(range(8)), class_names=[f"c{i}" for i in range(classes)],
        class_colours=rng.integers(0, 256, (classes, 3)).tolist(),
        normalisation={"colour_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    )  # fmt: skip
    save_manifest(folder, m)
    (folder / CONFIG_NAME).write_text(model_config_text(m))


def soak(args) -> dict:
    import threading

    import cv2
    import httpx

    from heal_swin.serve.memory import rss_bytes

    budget, cache = args.budget_mib << 20, args.cache_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        soak_model(repo / "seg", args.soak_nside)
        from heal_swin.serve.demo import render_frames

        ((cam, image, _, _),) = render_frames(1, (640, 483), seed=3)
        (repo / "cameras").mkdir()
        (repo / "cameras" / "bench.json").write_text(json.dumps(cam.to_dict()))
        good = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        rng = np.random.default_rng(0)
        max_side = int(np.sqrt(args.max_image_pixels * 4 / 3))  # 4:3 frames up to max_image_pixels
        large = []
        for _ in range(args.large_sizes):  # distinct sizes; every request also gets its own 1-pixel variation
            w = int(rng.integers(max_side // 2, max_side)) // 4 * 4
            h = min(int(w * 3 / 4), args.max_image_pixels // w)
            big = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            large.append(big)
        n = 8 * args.soak_nside**2
        batch = max(
            1,
            min(
                args.max_infer_batch,
                args.max_tensor_elements // (10 * n),
                (args.max_upload_bytes - 4096) // (3 * n * 4),
            ),
        )
        x = rng.standard_normal((batch, 3, n), dtype=np.float32).tobytes()
        head = json.dumps({"inputs": [{"name": "input", "shape": [batch, 3, n], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(x)}}],
                           "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
        from heal_swin.serve.readiness import free_port, serve_command

        port = free_port()
        cmd = serve_command(repo, port, "--no-batching", f"memory_budget_bytes={budget}", f"cache_bytes={cache}",
               f"max_image_pixels={args.max_image_pixels}", f"max_tensor_elements={args.max_tensor_elements}",
               f"max_infer_batch={args.max_infer_batch}", f"max_upload_bytes={args.max_upload_bytes}",
               f"max_inflight_requests={args.max_inflight}", "max_queued_requests=16", "queue_timeout_s=60")  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        wait_for(proc, url)
        rss_start = rss_bytes(proc.pid)
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(rss_bytes(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        end = time.monotonic() + args.soak_seconds
        counter = [0]
        lock = threading.Lock()

        def client(kind: str) -> list[tuple[str, int, float]]:
            out = []
            with httpx.Client(base_url=url, timeout=300) as c:
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    try:
                        if kind == "good":
                            r = c.post(
                                "/v1/segment",
                                files={"image": ("f.jpg", good, "image/jpeg")},
                                data={"camera": "bench"},
                            )
                        elif kind == "large":
                            with lock:
                                counter[0] += 1
                                k = counter[0]
                            img = large[k % len(large)]
                            h = img.shape[0]
                            img = img[: h - (k // len(large)) % 4]  # a new size every request
                            data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                            r = c.post(
                                "/v1/segment",
                                files={"image": ("f.jpg", data, "image/jpeg")},
                                data={"camera": "bench", "resize": "true"},
                            )
                        else:
                            r = c.post(
                                "/v2/models/seg/infer",
                                content=head + x,
                                headers={"Inference-Header-Content-Length": str(len(head))},
                            )
                        status = r.status_code
                    except httpx.HTTPError as e:
                        status = -1
                        print(f"  {kind}: {type(e).__name__}: {e}", flush=True)
                    out.append((kind, status, time.perf_counter() - t0))
            return out

        kinds = ["good"] * args.good_clients + ["large"] * args.large_clients + ["v2"] * args.v2_clients
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(kinds)) as pool:
            results = [r for rs in pool.map(client, kinds) for r in rs]
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        stop.set()
        sampler.join()
        metrics = httpx.get(url + "/metrics").text
        proc.terminate()
        proc.wait(timeout=30)
    rows = []
    for kind in ("good", "large", "v2"):
        rs = [r for r in results if r[0] == kind]
        lat = np.asarray([r[2] for r in rs if r[1] == 200]) * 1e3
        statuses = sorted({r[1] for r in rs})
        rows.append({
            "kind": kind, "clients": kinds.count(kind), "requests": len(rs),
            "statuses": {str(s): sum(1 for r in rs if r[1] == s) for s in statuses},
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        })  # fmt: skip
    cache_line = next((ln for ln in metrics.splitlines() if ln.startswith("heal_swin_cache_bytes ")), "")
    return {
        "budget_bytes": budget, "cache_bytes": cache, "seconds": wall, "rss_start_bytes": rss_start,
        "rss_max_bytes": max(samples), "rss_end_bytes": samples[-1], "rss_samples": len(samples),
        "cache_bytes_at_end": float(cache_line.split()[-1]) if cache_line else None,
        "loadavg_before": load0, "loadavg_after": load1, "v2_batch": batch, "large_frames": [im.shape[1::-1] for im in large],
        "rows": rows, "server_cmd": " ".join(cmd[2:]),
    }  # fmt: skip


def print_soak(s: dict) -> None:
    mib = 2**20
    print(
        f"\n## Memory soak: {sum(r['clients'] for r in s['rows'])} clients for {s['seconds']:.0f} s, budget {s['budget_bytes'] // mib} MiB "
        f"(cache {s['cache_bytes'] // mib} MiB); load average {s['loadavg_before'][0]:.2f} -> {s['loadavg_after'][0]:.2f}\n"
    )
    print(
        f"server RSS: start {s['rss_start_bytes'] / mib:.0f} MiB, max {s['rss_max_bytes'] / mib:.0f} MiB, end {s['rss_end_bytes'] / mib:.0f} MiB "
        f"({s['rss_samples']} samples); v2 batch {s['v2_batch']}\n"
    )
    print("| requests | clients | sent | statuses | p50 ms (200s) | p99 ms (200s) |")
    print("|---|---:|---:|---|---:|---:|")
    for r in s["rows"]:
        p50 = "" if r["p50_ms"] is None else f"{r['p50_ms']:.0f}"
        p99 = "" if r["p99_ms"] is None else f"{r['p99_ms']:.0f}"
        st = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        print(f"| {r['kind']} | {r['clients']} | {r['requests']} | {st} | {p50} | {p99} |")


def main() -> None:
    """Print the tables of a soak results file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "bench" / "results" / "serve_soak.json"
    ap.add_argument("results", type=Path, nargs="?", default=default, help="default: %(default)s")
    print_soak(json.loads(ap.parse_args().results.read_text()))


if __name__ == "__main__":
    main()
