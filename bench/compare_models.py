"""Train HEAL-SWIN, the flat Swin-UNet and S2CNN on the same synthetic split with the same budget.

    python bench/compare_models.py --data data/synthetic --epochs 20 [--out runs/compare]

Each model gets the same epochs, batch size, optimizer and schedule (its recipe in train/ with
those overrides); all are evaluated with the same protocol (sphere mIoU over valid pixels, and
fisheye mIoU inside the grid footprint). Prints a table, writes bench/results/compare.json and
replaces the "Model comparison" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "HEAL-SWIN tiny (sphere)": "quickstart.yaml",
    "Swin-UNet tiny (flat)": "synthetic_swin_unet.yaml",
    "S2CNN tiny (sphere)": "synthetic_s2cnn.yaml",
}
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    ap.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()

    from heal_swin.data.datasets import FisheyeDataset
    from heal_swin.train.config import load_config
    from heal_swin.train.evaluate import evaluate
    from heal_swin.train.inference import Predictor
    from heal_swin.train.pipeline import train

    rows = []
    for label, recipe in MODELS.items():
        name = Path(recipe).stem + "_cmp"
        overrides = [
            f"data.root={args.data}", f"data.batch_size={args.batch_size}", f"trainer.max_epochs={args.epochs}",
            f"trainer.out_dir={args.out}", f"trainer.name={name}", "trainer.progress_bar=false",
            f"optim.lr={args.lr}", "optim.schedule=cosine", "optim.optimizer=adamw",
        ]
        cfg = load_config(ROOT / "train" / recipe, overrides)
        run = cfg.run_dir
        if (run / "model.safetensors").exists():
            print(f"{label}: reusing {run}")
            summary = json.loads((run / "metrics.json").read_text())
        else:
            summary = train(cfg, resume=(run / "checkpoints" / "last.ckpt").exists())
        predictor = Predictor(run / "model.safetensors")
        ds = FisheyeDataset(args.data, spec="synthetic", split="val", view="flat", mean=None, std=None)
        t0 = time.perf_counter()
        result = evaluate(predictor, ds, progress=False)
        eval_s = time.perf_counter() - t0
        params = sum(p.numel() for p in predictor.model.parameters())
        rows.append({
            "model": label,
            "registry": predictor.model.model_name,
            "params": params,
            "input": predictor.grid.key if predictor.kind == "sphere" else f"flat {cfg.data.image_size}",
            "sphere_miou": result["sphere"]["miou"],
            "sphere_miou_no_void": result["sphere"]["miou_no_void"],
            "fisheye_miou": result["flat"]["miou"],
            "majority_baseline_sphere": result["sphere"]["majority_baseline_miou"],
            "train_s": summary.get("train_seconds"),
            "eval_ms_per_image": 1e3 * eval_s / max(result["samples"], 1),
            "epochs": args.epochs,
        })
    header = "| model | params | input | sphere mIoU | sphere mIoU (no void) | fisheye mIoU | majority baseline | train s | eval ms/img |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['input']} | {r['sphere_miou']:.3f} | {r['sphere_miou_no_void']:.3f} | "
            f"{r['fisheye_miou']:.3f} | {r['majority_baseline_sphere']:.3f} | {r['train_s'] or float('nan'):.0f} | {r['eval_ms_per_image']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    cmd = " ".join(["python", "bench/compare_models.py", *sys.argv[1:]])
    result = {"command": cmd, "machine": platform.platform(), "rows": rows}
    out = ROOT / "bench" / "results" / "compare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if not args.no_markdown:
        md = ROOT / "BENCHMARKS.md"
        text = md.read_text() if md.exists() else "# Benchmarks\n"
        section = (f"{BEGIN}\nSame synthetic split, {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr} with a cosine "
                   f"schedule for every model; validation split of `{args.data}`.\n\n`{cmd}`\n\n{table}\n{END}")
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
        else:
            text += f"\n## Model comparison (synthetic benchmark)\n\n{section}\n"
        md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
