"""Reporting for bench/compare_models.py: mean ± std over seeds, the markdown tables, the lr-sweep
table, the validation-curve and incidence-angle plots, and the BENCHMARKS.md section."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from compare_protocol import BASE_EPOCHS, DEFAULT_LR, best_val, group_key, min_seed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (task, nside, family, model)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((*group_key(r), r.get("lr", DEFAULT_LR)), []).append(r)
    out = []
    for (task, nside, family, model, lr), rs in groups.items():
        keys = [
            k
            for k in rs[0]
            if k.startswith(("sphere_", "fisheye_", "chamfer"))
            and not k.endswith("incidence")
            and not k.startswith("per_class")
        ]
        agg = {
            "task": task,
            "nside": nside,
            "family": family,
            "model": model,
            "lr": lr,
            "params": rs[0]["params"],
            "seeds": len(rs),
            "flattened": f"{sum(r['flattened'] for r in rs)}/{len(rs)}",
            "flat_hw": rs[0]["flat_hw"],
        }
        for k in keys:
            v = np.array([r[k] for r in rs], dtype=np.float64)
            agg[k] = [float(np.nanmean(v)), float(np.nanstd(v))]
        for dom in ("sphere", "fisheye"):
            main_key = "miou" if task == "segmentation" else "abs_rel"
            bins = [b["bin"] for b in rs[0][f"{dom}_by_incidence"]]
            vals = np.array(
                [
                    [b[main_key] if b[main_key] is not None else np.nan for b in r[f"{dom}_by_incidence"]]
                    for r in rs
                ]
            )
            agg[f"{dom}_by_incidence"] = {
                b: [float(np.nanmean(vals[:, i])), float(np.nanstd(vals[:, i]))] for i, b in enumerate(bins)
            }
        out.append(agg)
    # Table order: nside, block family (S2CNN's "-" last), model, then its variants (_rot, _e36)
    return sorted(
        out,
        key=lambda a: (a["task"] != "segmentation", a["nside"], a["family"] == "-", a["family"], a["model"]),
    )


def sweep_table(rows: list[dict[str, Any]], picked: dict[tuple, float]) -> str:
    """Per swept model: every lr's first-seed run, its best validation score and test score."""
    lines = []
    swept = [
        g
        for g in picked
        if len({r["lr"] for r in rows if group_key(r) == g and r["seed"] == min_seed(rows, g)}) > 1
    ]
    if not swept:
        return ""
    lines += [
        "lr sweep (first seed; the lr with the best validation score trains the other seeds):",
        "",
        "| task | nside | blocks | model | lr | best val | test (sphere) | picked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in swept:
        seed = min_seed(rows, g)
        for r in sorted((r for r in rows if group_key(r) == g and r["seed"] == seed), key=lambda r: -r["lr"]):
            seg = r["task"] == "segmentation"
            test = r["sphere_miou"] if seg else r["sphere_abs_rel"]
            lines.append(
                f"| {r['task']} | {r['nside']} | {r['family']} | {r['model']} | {r['lr']:g} | "
                f"{abs(best_val(r)):.3f} ({'mIoU' if seg else 'AbsRel'}) | {test:.3f} | "
                f"{'yes' if r['lr'] == picked[g] else ''} |"
            )
    return "\n".join(lines + [""])


def table(agg: list[dict[str, Any]]) -> str:
    lines = []
    for task in dict.fromkeys(a["task"] for a in agg):
        seg = task == "segmentation"
        keys = (
            ["sphere_miou", "fisheye_miou", "sphere_miou_no_void"]
            if seg
            else ["sphere_abs_rel", "sphere_delta1", "fisheye_abs_rel", "chamfer_m"]
        )
        lines += [
            f"**{task}**",
            "",
            "| nside | blocks | model | lr | params | input | seeds | " + " | ".join(keys) + " | flattened |",
            "|---" * (8 + len(keys)) + "|",
        ]
        for a in (a for a in agg if a["task"] == task):
            inp = (
                f"flat {a['flat_hw'][1]}x{a['flat_hw'][0]}" if a["flat_hw"] else f"sphere nside {a['nside']}"
            )
            cells = [f"{a[k][0]:.3f} ± {a[k][1]:.3f}" for k in keys]
            lines.append(
                f"| {a['nside']} | {a['family']} | {a['model']} | {a['lr']:g} | {a['params']:,} | {inp} | {a['seeds']} | "
                + " | ".join(cells)
                + f" | {a['flattened']} |"
            )
        main_key = "miou" if seg else "abs_rel"
        lines += ["", f"{task}, {main_key} by incidence angle (sphere / fisheye):", ""]
        bins = list(agg[0]["sphere_by_incidence"])
        lines += ["| nside | blocks | model | " + " | ".join(bins) + " |", "|---" * (3 + len(bins)) + "|"]
        for a in (a for a in agg if a["task"] == task):
            cells = [
                f"{a['sphere_by_incidence'][b][0]:.3f} / {a['fisheye_by_incidence'][b][0]:.3f}" for b in bins
            ]
            lines.append(f"| {a['nside']} | {a['family']} | {a['model']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]], agg: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per (task, nside); per model the mean validation curve over seeds, min-max shaded.
    panels = list(dict.fromkeys((r["task"], r["nside"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (task, nside) in zip(axes[0], panels):
        groups: dict[tuple, list[list[float]]] = {}
        for r in rows:
            if (r["task"], r["nside"]) == (task, nside) and r["curve"]:
                groups.setdefault((r["family"], r["model"]), []).append(r["curve"])
        for (family, model), curves in groups.items():
            n = min(len(c) for c in curves)
            c = np.array([c[:n] for c in curves])
            epochs = np.arange(1, n + 1)
            (line,) = ax.plot(epochs, c.mean(0), label=f"{family} {model} ({len(curves)})")
            ax.fill_between(epochs, c.min(0), c.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(f"{task}, nside {nside}", fontsize=9)
        ax.set_xlabel("epoch"), ax.set_ylabel("val mIoU" if task == "segmentation" else "val AbsRel")
        ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(RESULTS / "compare_curves.png", dpi=110), plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for a in agg:
        bins = list(a["sphere_by_incidence"])
        ax.errorbar(
            range(len(bins)),
            [a["sphere_by_incidence"][b][0] for b in bins],
            [a["sphere_by_incidence"][b][1] for b in bins],
            label=f"{a['task'][:3]} n{a['nside']} {a['family']} {a['model']}",
            capsize=3,
            marker="o",
        )
        ax.set_xticks(range(len(bins)), bins)
    ax.set_xlabel("incidence angle"), ax.set_ylabel("sphere score"), ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(RESULTS / "compare_incidence.png", dpi=110), plt.close(fig)


def write_markdown(rows: list[dict[str, Any]], args: argparse.Namespace, text: str, sweep_text: str) -> None:
    """Replace the "Model comparison" section of BENCHMARKS.md (or append it)."""
    md = ROOT / "BENCHMARKS.md"
    body = md.read_text()
    commands = "\n".join(f"`{c}`  " for c in dict.fromkeys(r["command"] for r in rows))
    section = (
        f"{BEGIN}\n{commands}\n\n{BASE_EPOCHS} epochs (a model named _e<n>: n), batch {args.batch_size}, AdamW (lr per row: the "
        f"table's lr column; swept rows below), weight decay "
        f"{args.weight_decay}, {args.warmup} warm-up steps + cosine, precision {args.precision}, on `{args.data.name}`; "
        f"test split; mean ± std over seeds {sorted({r['seed'] for r in rows})} (the table's seeds column: how many each row has). Curves: bench/results/compare_curves.png; by incidence: "
        f"bench/results/compare_incidence.png.\n\n{text}\n{sweep_text}{END}"
    )
    if BEGIN in body and END in body:
        body = body[: body.index(BEGIN)] + section + body[body.index(END) + len(END) :]
    else:
        body += f"\n## Model comparison (synthetic benchmark)\n\n{section}\n"
    md.write_text(body)
