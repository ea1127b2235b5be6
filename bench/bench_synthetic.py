"""Synthetic fisheye benchmark generator speed (``heal-swin data synth``).

    python bench/bench_synthetic.py [--scenes-full 4] [--scenes-small 20] [--workers 1 2]

For each image size (full 1280x966 and the small 320x242 quickstart size) and worker count, it
generates a fresh dataset into a temporary folder (4 cameras per scene, files written exactly as
``data synth`` does) and reports images per second (wall clock) and CPU seconds per image of the
main process (workers=1 only). It also times rendering alone (no encoding/writing). Warm-up: one
scene is rendered first so that the per-camera ray tables are cached, as they are after the first
scene of a real run.

Prints a table and writes bench/results/synthetic.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from heal_swin.data.synthetic import SynthConfig, generate, render_scene_index


def run(width: int, height: int, scenes: int, workers: int) -> dict:
    cfg = SynthConfig(scenes=scenes, seed=0, width=width, height=height)
    render_scene_index(SynthConfig(scenes=1, seed=123, width=width, height=height), 0)  # warm the ray cache
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        summary = generate(tmp / "out", cfg, workers=workers, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = sum(p.stat().st_size for p in (tmp / "out").rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = summary["images"]
    return {
        "what": "render+write",
        "size": f"{width}x{height}",
        "workers": workers,
        "images": n,
        "wall_s": round(wall, 3),
        "images_per_s": round(n / wall, 3),
        "cpu_s_per_image_main": round(cpu / n, 4) if workers == 1 else None,
        "bytes_per_image": int(size / n),
    }


def run_render_only(width: int, height: int, scenes: int) -> dict:
    cfg = SynthConfig(scenes=scenes, seed=0, width=width, height=height)
    render_scene_index(cfg, 0)
    c0, t0 = time.process_time(), time.perf_counter()
    for s in range(1, scenes + 1):
        render_scene_index(cfg, s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = 4 * scenes
    return {
        "what": "render only",
        "size": f"{width}x{height}",
        "workers": 1,
        "images": n,
        "wall_s": round(wall, 3),
        "images_per_s": round(n / wall, 3),
        "cpu_s_per_image_main": round(cpu / n, 4),
        "bytes_per_image": None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes-full", type=int, default=4)
    ap.add_argument("--scenes-small", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic.json"))
    args = ap.parse_args(argv)

    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = []
    for (w, h), scenes in (((1280, 966), args.scenes_full), ((320, 242), args.scenes_small)):
        rows.append(run_render_only(w, h, scenes))
        for wk in args.workers:
            rows.append(run(w, h, scenes, wk))

    head = f"{'what':<13} {'size':>9} {'workers':>7} {'images':>6} {'wall s':>8} {'img/s':>7} {'CPU s/img':>9} {'MB/img':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        cpu = f"{r['cpu_s_per_image_main']:.3f}" if r["cpu_s_per_image_main"] is not None else "-"
        mb = f"{r['bytes_per_image'] / 1e6:.2f}" if r["bytes_per_image"] else "-"
        print(
            f"{r['what']:<13} {r['size']:>9} {r['workers']:>7} {r['images']:>6} {r['wall_s']:>8.2f} {r['images_per_s']:>7.2f} {cpu:>9} {mb:>7}"
        )
    result = {
        "benchmark": "synthetic",
        "command": "python bench/bench_synthetic.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "loadavg_at_start": load0,
            "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
