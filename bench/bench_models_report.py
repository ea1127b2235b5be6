"""Markdown tables of bench/bench_models.py's results, and the merge of a partial run into the results file.

    python bench/bench_models_report.py [bench/results/models.json]   # as bench_models.py --report

Kept apart from the measuring script: this side needs neither torch nor a worktree, only the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# The results file: bench_models.py writes it, merge_previous reads the previous run back from it.
OUT = Path(__file__).resolve().parents[1] / "bench" / "results" / "models.json"


def merge_previous(
    result: dict[str, Any], sections: set[str], quick: bool, out: Path = OUT
) -> dict[str, Any]:
    """Keep what a partial run (``--sections``) did not measure from the results file it replaces.

    Each section records the command, date and load average of the run that measured it
    (``result["runs"]``), so a merged file still says where every table came from.
    """
    ran = set(sections) - ({"memory", "onnx"} if quick else set())
    stamp = {k: result[k] for k in ("load_start", "load_end")} | {
        k: result["meta"][k] for k in ("command", "date")
    }
    previous = json.loads(out.read_text()) if out.is_file() else {}
    runs = dict(previous.get("runs", {}))
    runs.update({name: stamp for name in ran})
    result["runs"] = runs

    def is_compiled(row: dict[str, Any]) -> bool:
        return row["variant"].startswith("compiled")

    keep = []
    if "forward" not in ran:
        keep += [x for x in previous.get("forward", []) if not is_compiled(x)]
    if "compile" not in ran:
        keep += [x for x in previous.get("forward", []) if is_compiled(x)]
    result["forward"] = keep + result["forward"]
    for key, name in (("peaks_gflops", "peaks"), ("train", "train"), ("memory", "memory"), ("onnx", "onnx")):
        if name not in ran and previous.get(key):
            result[key] = previous[key]
    return result


def report(r: dict[str, Any]) -> str:
    """Markdown tables of a result dict (also used to rebuild the tables from the JSON)."""
    peaks = {int(k): v for k, v in r.get("peaks_gflops", {}).items()}
    lines = [f"load average at start {r['load_start'][0]:.2f}, at end {r['load_end'][0]:.2f}", ""]
    for name, run in sorted(r.get("runs", {}).items()):  # merged partial runs: where each table came from
        lines.insert(
            -1,
            f"- {name}: `{run['command']}` ({run['date']}), load average "
            f"{run['load_start'][0]:.2f} -> {run['load_end'][0]:.2f}",
        )
    if peaks:
        lines += ["| threads | sgemm GFLOP/s | bf16 GFLOP/s | int8 GOP/s |", "|---|---|---|---|"]
        lines += [
            f"| {t} | {p['fp32']:.0f} | {p['bf16']:.0f} | {p['int8']:.0f} |" for t, p in sorted(peaks.items())
        ]
        lines.append("")
    for title, rows in (
        ("forward (batch 1, eval, no_grad)", r["forward"]),
        ("training step (fwd + bwd + AdamW)", r["train"]),
    ):
        if not rows:
            continue
        lines += [
            f"**{title}**",
            "",
            "| model | nside | batch | threads | variant | median ms | min ms | vs baseline | % of peak |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        # Counted once per configuration, on the current code; training: forward + backward products.
        flops = {(x["model"], x["nside"], x["threads"]): x["flops"] for x in rows if "flops" in x}
        for x in rows:
            b = next(y for y in rows if y["variant"] == "baseline fp32" and y["group"] == x["group"])
            f = flops.get((x["model"], x["nside"], x["threads"]))
            peak = peaks.get(x["threads"], {}).get("bf16" if "bf16" in x["variant"] else "fp32")
            pct = f"{100 * f / x['median_s'] / 1e9 / peak:.0f} %" if f and peak else "-"
            extra = f" (compile {x['compile_s']} s)" if "compile_s" in x else ""
            lines.append(
                f"| {x['model']} | {x['nside']} | {x['batch']} | {x['threads']} | {x['variant']}{extra} | "
                f"{1e3 * x['median_s']:.0f} | {1e3 * x['min_s']:.0f} | {b['median_s'] / x['median_s']:.2f}x | {pct} |"
            )
        lines.append("")
    if r.get("memory"):
        lines += [
            "| tree | paper nside 256 | RSS built MiB | peak MiB | over the model MiB | step s |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m['tree']} | {m['mode']} | {m['built_mib']:.0f} | {m['peak_mib']:.0f} | {m['over_model_mib']:.0f} | {m['step_s']:.1f} |"
            if "error" not in m
            else f"| {m['tree']} | {m['mode']} | {m['error']} | - | - | - |"
            for m in r["memory"]
        ]
        lines.append("")
    if r.get("onnx"):
        lines += [
            "| paper nside | threads | eager fp32 ms | ORT fp32 ms | ORT int8 ms | ORT fp32 vs eager | int8 vs eager | int8 argmax agreement |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in r["onnx"]:
            t = o["median_s"]
            lines.append(
                f"| {o['nside']} | {o['threads']} | {1e3 * t['eager_fp32']:.0f} | {1e3 * t['ort_fp32']:.0f} | {1e3 * t['ort_int8']:.0f} | "
                f"{t['eager_fp32'] / t['ort_fp32']:.2f}x | {t['eager_fp32'] / t['ort_int8']:.2f}x | {100 * o['accuracy']['ort_int8']['argmax_agree']:.1f} % |"
            )
    return "\n".join(lines)


def main() -> None:
    """Print the tables of a results file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="?", default=OUT, help="default: %(default)s")
    print(report(json.loads(ap.parse_args().results.read_text())))


if __name__ == "__main__":
    main()
