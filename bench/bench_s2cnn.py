"""S2CNN benchmark: transform sizes, per-layer and per-model latency/memory vs bandwidth, equivariance.

Usage:
    python bench/bench_s2cnn.py                      # b = 8, 16, 32, 48; writes bench/results/s2cnn.json + PNG
    python bench/bench_s2cnn.py --bandwidths 8 16    # quicker
    python bench/bench_s2cnn.py --threads 2 --repeats 3

Latency: best (min) wall time of ``--repeats`` runs after one warm-up (the median is stored in
the JSON too), batch 1, float32, CPU, ``torch.set_num_threads(--threads)``; on a shared machine
the minimum is the least disturbed estimate. Memory: every measurement runs in a fresh subprocess; the
peak RSS high-water mark (VmHWM) is reset after the module is built, so "peak" is the process
RSS during forward(+backward), and "extra" is that peak minus the RSS just before the run
(activations, gradients and temporaries). Equivariance errors are relative L2 errors on the DH
grid (quadrature-weighted) between ``N(R f)`` and ``R N(f)``; rotations of band-limited signals
are applied exactly in the spectral domain with Wigner-D matrices.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper next to this file, even as a worker
from bench_s2cnn_measure import (
    FEATURES,
    equivariance,
    model_quarter_turn,
    scaled_schedule,
    transform_table,
    worker,
)

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ worker processes
def run_worker(spec: dict, timeout: float) -> dict:
    """Run ``worker(spec)`` in a fresh process of this script; a failure or timeout becomes an error row."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timeout after {timeout:.0f}s"}
    if res.returncode != 0:
        return {**spec, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- main
def _fmt_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---:" for _ in cols) + "|"
    lines = [head, sep]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append(
                "—"
                if v is None or (isinstance(v, float) and np.isnan(v))
                else format(v, fmt)
                if fmt
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bandwidths", type=int, nargs="+", default=[8, 16, 32, 48])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--nside", type=int, default=64, help="HEALPix nside of the model benchmarks")
    ap.add_argument("--rotations", type=int, default=5)
    ap.add_argument("--equivariance-max-b", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per measurement subprocess")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument(
        "--sections",
        nargs="+",
        default=["transforms", "layers", "models", "registry", "equivariance"],
        choices=["transforms", "layers", "models", "registry", "equivariance"],
        help="what to run; results are merged into an existing s2cnn.json",
    )
    ap.add_argument("--registry", nargs="+", default=["s2cnn_seg_tiny", "s2cnn_seg", "s2cnn_seg_paper"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "loadavg_start": os.getloadavg(),
        "mem_total_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
    }
    print(
        f"S2CNN benchmark: torch {env['torch']}, {env['cpu_count']} CPUs, {args.threads} threads, load {env['loadavg_start']}"
    )

    json_path = args.out / "s2cnn.json"
    result = json.loads(json_path.read_text()) if json_path.is_file() else {}
    if "env" in result:  # first-format file: one run's environment at the top level
        result.setdefault("runs", []).insert(0, result.pop("env"))

    def merge(section: str, rows: list[dict], key: tuple[str, ...]) -> list[dict]:
        old = {tuple(r.get(k) for k in key): r for r in result.get(section, [])}
        old.update({tuple(r.get(k) for k in key): r for r in rows})
        result[section] = sorted(old.values(), key=lambda r: tuple(str(r.get(k)).zfill(6) for k in key))
        return result[section]

    if "transforms" in args.sections:
        _section_transforms(args, merge)
    if "layers" in args.sections:
        _section_layers(args, merge)
    if "models" in args.sections:
        _section_models(args, merge)
    if "registry" in args.sections:
        _section_registry(args, merge)
    if "equivariance" in args.sections:
        result["equivariance"] = _section_equivariance(args)

    env["loadavg_end"] = os.getloadavg()
    env["total_s"] = time.perf_counter() - t_start
    result.setdefault("runs", []).append({**env, "sections": args.sections, "bandwidths": args.bandwidths})
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, default=float))
    print(f"results: {json_path} ({env['total_s']:.0f} s)")
    return 0


LAYER_COLS = [
    ("kind", "layer", ""),
    ("b", "b", "d"),
    ("params", "params", "d"),
    ("buffers_mb", "buffers MB", ".1f"),
    ("fwd_s", "fwd s", ".4f"),
    ("fwd_bwd_s", "fwd+bwd s", ".4f"),
    ("fwd_extra_mb", "fwd extra MB", ".0f"),
    ("fwd_bwd_extra_mb", "fwd+bwd extra MB", ".0f"),
    ("fwd_bwd_peak_mb", "peak RSS MB", ".0f"),
]


def _section_transforms(args, merge) -> None:
    print("\n## Transform matrices (float32 buffers at L = b)")
    transforms = merge("transforms", transform_table(args.bandwidths), ("b",))
    print(
        _fmt_table(
            transforms,
            [
                ("b", "b", "d"),
                ("S2Analysis_mb", "S2 analysis MB", ".2f"),
                ("SO3Analysis_mb", "SO(3) analysis MB", ".1f"),
                ("SO3Synthesis_mb", "SO(3) synthesis MB", ".1f"),
                ("so3_signal_mb_per_channel", "SO(3) signal MB/channel", ".2f"),
                ("wigner_build_s", "Wigner-d build s (float64)", ".2f"),
            ],
        )
    )


def _section_layers(args, merge) -> None:
    print("\n## Layers (batch 1, 12 channels, b_in = b_out = b)")
    layers = []
    for b in args.bandwidths:
        for kind in ("S2Convolution", "SO3Convolution", "SO3ToS2"):
            spec = {"kind": kind, "b": b, "threads": args.threads, "repeats": args.repeats if b <= 32 else 2}
            r = run_worker(spec, args.timeout)
            layers.append(r)
            print(
                f"  {kind} b={b}: "
                + (
                    r.get("error")
                    or f"fwd {r['fwd_s'] * 1e3:.1f} ms, fwd+bwd {r['fwd_bwd_s'] * 1e3:.1f} ms, peak {r['fwd_bwd_peak_mb']:.0f} MB"
                )
            )
    print(_fmt_table(merge("layers", layers, ("b", "kind")), LAYER_COLS))


def _section_models(args, merge) -> None:
    print(
        f"\n## Models (paper schedule scaled to b_in = b, features {FEATURES}, nside {args.nside}, batch 1)"
    )
    models = []
    for b in args.bandwidths:
        spec = {
            "kind": "model",
            "b": b,
            "nside": args.nside,
            "threads": args.threads,
            "repeats": args.repeats if b <= 16 else 2,
        }
        r = run_worker(spec, args.timeout * 2)
        r["schedule"] = list(scaled_schedule(b))
        models.append(r)
        print(
            f"  model b={b}: "
            + (
                r.get("error")
                or f"fwd {r['fwd_s']:.3f} s, fwd+bwd {r['fwd_bwd_s']:.3f} s, peak {r['fwd_bwd_peak_mb']:.0f} MB"
            )
        )
    model_cols = [("b", "b_in", "d"), ("schedule", "SO(3) bandwidths", "")] + LAYER_COLS[2:]
    print(_fmt_table(merge("models", models, ("b",)), model_cols))


def _section_registry(args, merge) -> None:
    print("\n## Registry variants at their default configuration (batch 1)")
    rows = []
    for name in args.registry:
        spec = {"kind": "registry", "name": name, "threads": args.threads, "repeats": 2}
        r = run_worker(spec, args.timeout * 2)
        rows.append(r)
        print(
            f"  {name}: "
            + (
                r.get("error")
                or f"fwd {r['fwd_s']:.3f} s, fwd+bwd {r['fwd_bwd_s']:.3f} s, peak {r['fwd_bwd_peak_mb']:.0f} MB"
            )
        )
    print(_fmt_table(merge("registry", rows, ("name",)), [("name", "variant", "")] + LAYER_COLS[2:]))


def _section_equivariance(args) -> dict:
    print("\n## Equivariance")
    eq_bw = [b for b in args.bandwidths if b <= args.equivariance_max_b]
    eq = equivariance(eq_bw, args.rotations)
    eq["model_quarter_turn"] = model_quarter_turn([b for b in eq_bw if b <= 16])
    names = [k for k in eq["rows"][0] if isinstance(eq["rows"][0][k], dict)] if eq["rows"] else []
    flat = []
    for r in eq["rows"]:
        for n in names:
            flat.append({"b": r["b"], "net": n, **r[n]})
    print(
        _fmt_table(
            flat,
            [
                ("b", "b", "d"),
                ("net", "network", ""),
                ("quarter_turn", "grid rotation (max rel)", ".1e"),
                ("median", f"random SO(3), median of {args.rotations} (rel L2)", ".1e"),
                ("max", "random SO(3), worst", ".1e"),
            ],
        )
    )
    for r in eq["model_quarter_turn"]:
        print(
            f"  full HEALPix model, quarter turn, b={r['b']} nside={r['nside']}: rel max error {r['rel_max_err']:.1e}"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    fig_path = args.out / "s2cnn_equivariance.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for n in names:
            bs = [r["b"] for r in eq["rows"]]
            med = np.array([r[n]["median"] for r in eq["rows"]])
            lo = np.array([r[n]["min"] for r in eq["rows"]])
            hi = np.array([r[n]["max"] for r in eq["rows"]])
            ax.errorbar(bs, med, yerr=[med - lo, hi - med], marker="o", capsize=3, label=n)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("bandwidth b")
        ax.set_ylabel("relative L2 error  ||N(Rf) - R N(f)|| / ||N(f)||")
        ax.set_title(f"S2CNN equivariance under random rotations ({args.rotations} per b)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(fig_path, dpi=120)
        print(f"\nfigure: {fig_path}")
    except ImportError:
        fig_path = None
        print("\nmatplotlib not installed: no figure")

    return eq


if __name__ == "__main__":
    sys.exit(main())
