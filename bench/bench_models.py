"""Model benchmark: CPU forward latency and peak memory of HEAL-SWIN variants.

    python bench/bench_models.py [--repeat 3] [--threads N] [--quick]

Each configuration runs in its own subprocess so that its peak resident memory (ru_maxrss) is
its own: "peak MiB" is the peak RSS of that process, "fwd MiB" the growth of the peak during the
forward passes over the RSS after building the model. Batch 1, ``torch.no_grad()``, eval mode,
float32. Prints a table and writes bench/results/models.json. ``--quick`` skips the paper model.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS: list[tuple[str, int]] = [
    ("heal_swin_tiny", 32),
    ("heal_swin_tiny", 64),
    ("heal_swin_tiny", 128),
    ("heal_swin_small", 32),
    ("heal_swin_small", 64),
    ("heal_swin_small", 128),
    ("heal_swin_paper", 256),
]
OUT = Path(__file__).parent / "results" / "models.json"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def run_one(name: str, nside: int, repeat: int, threads: int | None) -> dict:
    """Build ``name`` at ``nside`` and time ``repeat`` forward passes (after one warm-up)."""
    import torch

    from heal_swin.models import create_model

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = create_model(name, nside=nside).eval()
    build_s = time.perf_counter() - t0
    x = torch.randn(1, 3, model.grid.npix)
    rss_built = _rss_mib()
    times = []
    with torch.no_grad():
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            y = model(x)
            if i:  # the first pass is a warm-up
                times.append(time.perf_counter() - t0)
    assert y.shape == (1, model.out_chans, model.grid.npix)
    peak = _rss_mib()
    med = statistics.median(times)
    return {
        "model": name,
        "nside": nside,
        "pixels": model.grid.npix,
        "params": sum(p.numel() for p in model.parameters()),
        "build_s": round(build_s, 3),
        "forward_ms_median": round(1e3 * med, 2),
        "forward_ms_min": round(1e3 * min(times), 2),
        "ns_per_pixel": round(1e9 * med / model.grid.npix, 1),
        "peak_rss_mib": round(peak, 1),
        "forward_peak_mib": round(peak - rss_built, 1),
        "threads": torch.get_num_threads(),
        "repeat": repeat,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timed forward passes per config (paper: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="skip heal_swin_paper at nside 256")
    p.add_argument("--one", nargs=2, metavar=("NAME", "NSIDE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one:
        name, nside = args.one[0], int(args.one[1])
        print(json.dumps(run_one(name, nside, args.repeat, args.threads)))
        return

    rows = []
    for name, nside in CONFIGS:
        if args.quick and name == "heal_swin_paper":
            continue
        repeat = 1 if name == "heal_swin_paper" else args.repeat
        cmd = [sys.executable, __file__, "--one", name, str(nside), "--repeat", str(repeat)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"done {name} nside {nside}: {r['forward_ms_median']:.1f} ms", file=sys.stderr)

    header = [
        "model", "nside", "pixels", "params", "forward ms (median)", "ns/pixel", "peak RSS MiB", "fwd peak MiB"
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['nside']} | {r['pixels']:,} | {r['params']:,} "
            f"| {r['forward_ms_median']:.1f} | {r['ns_per_pixel']:.0f} "
            f"| {r['peak_rss_mib']:.0f} | {r['forward_peak_mib']:.0f} |"
        )
    print("\n".join(lines))

    import torch

    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join(["python", "bench/bench_models.py", *(argv if argv is not None else sys.argv[1:])]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": __import__("os").cpu_count(),
        "batch": 1,
        "dtype": "float32",
    }
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
