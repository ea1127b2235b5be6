"""``heal-swin train | evaluate | predict``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from heal_swin.errors import InputError

__all__ = ["add_train_commands"]


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train", help="train a model from a recipe", description="Train from a YAML recipe (see train/)."
    )
    t.add_argument("--config", type=Path, required=True, help="recipe YAML, e.g. train/quickstart.yaml")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=3 optim.lr=5e-4")
    t.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation report after training")
    t.add_argument(
        "--print-config",
        action="store_true",
        help="print the recipe as it would train (bases merged, overrides and defaults applied) and exit",
    )
    t.set_defaults(func=_train)

    e = sub.add_parser(
        "evaluate",
        help="evaluate a trained model on a dataset split",
        description="Evaluate a model file or run folder.",
    )
    ewhich = e.add_mutually_exclusive_group(required=True)
    ewhich.add_argument("--checkpoint", type=Path, help="run folder or model.safetensors")
    _add_ensemble_option(ewhich)
    e.add_argument("--data-root", type=Path, default=None, help="dataset root (default: the run's config)")
    e.add_argument(
        "--dataset",
        default=None,
        help="synthetic | woodscape | synwoodscape[-large|-large_plus_AD] (default: the model's)",
    )
    e.add_argument("--split", default="val")
    e.add_argument("--limit", type=int, default=None, help="evaluate the first N samples only")
    e.add_argument(
        "--report", type=Path, default=None, help="write a report folder (metrics, charts, overlays)"
    )
    _add_speed_options(e)
    e.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "predict", help="run a trained model on one fisheye image", description="Predict on one image."
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="run folder or model.safetensors")
    which.add_argument(
        "--model",
        metavar="NAME",
        help="a bundled model: demo (= demo_seg, segmentation) or demo_depth; trained on synthetic scenes only",
    )
    _add_ensemble_option(which)
    p.add_argument("image", type=Path)
    p.add_argument("--calib", type=Path, required=True, help="the image's calibration JSON")
    p.add_argument("--out", type=Path, required=True)
    _add_speed_options(p)
    p.set_defaults(func=_predict)


def _add_ensemble_option(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument(
        "--ensemble",
        metavar="CKPT1,CKPT2,...",
        type=lambda v: [Path(x) for x in v.split(",") if x],
        help="a deep ensemble: mean probabilities / log-depth of these run folders or model files, plus a per-pixel disagreement map",
    )


def _load_predictor(args: argparse.Namespace):
    """(predictor, first model file): a Predictor, or an EnsemblePredictor for ``--ensemble``."""
    from heal_swin.train.inference import Predictor

    speed = {"precision": args.precision, "compile": args.compile}
    paths = getattr(args, "ensemble", None)
    if paths:
        from heal_swin.train.ensemble import EnsemblePredictor

        files = [_model_file(p) for p in paths]
        return EnsemblePredictor(files, **speed), files[0]
    model_path = _model_file(args.checkpoint)
    return Predictor(model_path, **speed), model_path


def _save_uncertainty(out: Path, pred, predictor, bgr) -> None:
    """An ensemble's disagreement map: uncertainty.npy (fisheye, NaN outside), uncertainty_sphere.npy, uncertainty.png."""
    import numpy as np

    from heal_swin.geometry.views import colorize_scalar
    from heal_swin.io import save_image, save_npy

    u = getattr(pred, "uncertainty_flat", None)
    if u is None:
        return
    save_npy(out / "uncertainty.npy", u)
    save_npy(out / "uncertainty_sphere.npy", pred.uncertainty_sphere)
    ok = np.isfinite(u)
    colour = colorize_scalar(np.where(ok, u, 0).reshape(-1), ok.reshape(-1)).reshape(*u.shape, 3)
    save_image(out / "uncertainty.png", np.concatenate([bgr, colour], axis=1))
    what = (
        "fraction of members disagreeing with the ensemble class"
        if predictor.task == "segmentation"
        else "std of member log-depth"
    )
    print(
        f"uncertainty ({what}): mean {float(np.nanmean(u)):.4f}, max {float(np.nanmax(u)):.4f} -> {out}/uncertainty.png"
    )


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: bfloat16 autocast, ~2x faster on CPUs with AVX512_BF16/AMX (accuracy change: BENCHMARKS.md)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (inductor, frozen weights); compiles at the first image",
    )


def _model_file(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise InputError(f"{path}: no model file (train first, or pass a model.safetensors)")
    return path


def _train(args: argparse.Namespace) -> int:
    from heal_swin.train.config import load_config
    from heal_swin.train.pipeline import format_metrics, train

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        import yaml

        from heal_swin.train.config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    _check_train_precision(cfg)
    summary = train(cfg, resume=args.resume)
    if not summary:  # a non-zero DDP rank
        return 0
    task = cfg.data.task
    print(
        f"\n== {cfg.trainer.name}: {cfg.model.name} on {cfg.data.dataset} ({task}), {summary['epochs']} epochs, "
        f"{summary['steps']} steps, {summary['train_seconds']:.0f} s =="
    )
    print(format_metrics(summary, task))
    if task == "segmentation":
        print(
            f"\n{cfg.data.view} mIoU {summary['miou']:.3f} vs majority-class baseline {summary['majority_baseline_miou']:.3f}"
        )
    print(f"model: {cfg.run_dir / 'model.safetensors'}")
    if cfg.data.surround:  # the per-image evaluation does not apply to vehicle-sphere models
        print("surround model: evaluate per camera and on the sphere with bench/compare_surround.py")
    elif not args.no_eval:
        args_eval = argparse.Namespace(
            checkpoint=cfg.run_dir,
            data_root=None,
            dataset=None,
            split=cfg.data.val_split,
            limit=cfg.data.limit_val,
            report=cfg.run_dir / "report",
            precision="fp32",
            compile=False,
        )
        _evaluate(args_eval)
    return 0


def _check_train_precision(cfg) -> None:
    """A bf16 recipe on a CPU without bf16 support is a one-line error, not a slow emulation."""
    from heal_swin.train.acceleration import bf16_supported
    from heal_swin.train.config import ConfigError

    t = cfg.trainer
    on_cpu = t.accelerator == "cpu" or (
        t.accelerator == "auto" and not __import__("torch").cuda.is_available()
    )
    if "bf16" in str(t.precision) and on_cpu and not bf16_supported("cpu"):
        raise ConfigError(
            f"trainer.precision: {t.precision!r} needs a CPU with AVX512_BF16 or AMX; this one has neither; use 32-true"
        )


def _evaluate(args: argparse.Namespace) -> int:
    import yaml

    from heal_swin.data.datasets import FisheyeDataset
    from heal_swin.train.evaluate import evaluate, write_report

    predictor, model_path = _load_predictor(args)
    if predictor.meta.get("surround"):
        raise InputError(
            f"{model_path}: a surround (vehicle-sphere) model takes the four frames of a rig; evaluate it with bench/compare_surround.py"
        )
    run_cfg = model_path.parent / "config.yaml"
    cfg = yaml.safe_load(run_cfg.read_text()) if run_cfg.exists() else {}
    root = args.data_root or (Path(cfg["data"]["root"]) if cfg else None)
    if root is None:
        raise InputError(f"{model_path}: no run config beside it; pass --data-root")
    spec = args.dataset or predictor.meta.get("dataset", "auto")
    image_size = (cfg.get("data", {}) or {}).get("image_size") if cfg else None
    ds = FisheyeDataset(
        root,
        spec=spec,
        split=args.split,
        view="flat",
        size=tuple(image_size) if image_size else None,
        mean=None,
        std=None,
    )
    if len(ds) == 0:
        raise InputError(f"{root}: no samples in split {args.split!r}")
    result = evaluate(predictor, ds, limit=args.limit)
    if args.report:
        write_report(result, predictor, args.report)
    result.pop("_samples", None)
    if result["task"] == "segmentation":
        s, f = result["sphere"], result["flat"]
        print(f"\nevaluation on {root} [{args.split}], {result['samples']} images")
        print(f"{'':24s} {'sphere':>8s} {'fisheye':>8s}")
        for key in ("miou", "miou_no_void", "pixel_accuracy", "majority_baseline_miou"):
            print(f"{key:24s} {s[key]:8.4f} {f[key]:8.4f}")
    else:
        print(json.dumps({k: result[k] for k in ("sphere", "flat", "chamfer_m")}, indent=2))
    if "uncertainty" in result:
        _print_uncertainty(result)
    if args.report:
        print(f"report: {args.report}/summary.md")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from heal_swin.geometry import FisheyeCamera
    from heal_swin.geometry.projector import ImageSizeError
    from heal_swin.geometry.views import colorize_scalar, sphere_view
    from heal_swin.io import read_image, save_image, save_npy
    from heal_swin.train.inference import Predictor

    if args.model is not None:
        from heal_swin.inference.demo import DEMO_WARNING, demo_model_file

        model_file = demo_model_file(args.model)
        print(f"note: {DEMO_WARNING}", file=sys.stderr)
        predictor = Predictor(model_file, precision=args.precision, compile=args.compile)
    else:
        predictor, model_file = _load_predictor(args)
    camera = FisheyeCamera.from_json(args.calib)
    bgr = read_image(args.image, cv2.IMREAD_COLOR)
    if (bgr.shape[1], bgr.shape[0]) != camera.image_size:
        raise ImageSizeError(
            f"{args.image}: size {bgr.shape[1]}x{bgr.shape[0]} does not match the calibration {args.calib} ({camera.width}x{camera.height})"
        )
    pred = predictor(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), camera)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_npy(out / "sphere.npy", pred.sphere)
    save_npy(out / "valid.npy", pred.sphere_valid)
    if predictor.task == "segmentation":
        colour = predictor.colourise(pred.flat)
        overlay = np.where(pred.flat_valid[..., None], (0.5 * bgr + 0.5 * colour).astype(np.uint8), bgr)
        save_image(out / "mask.png", pred.flat)
        save_image(out / "overlay.png", overlay)
        pic = predictor.colourise(np.where(pred.sphere_valid, pred.sphere, 255))
    else:
        save_npy(out / "depth.npy", pred.flat)
        mm = np.where(np.isfinite(pred.flat), np.clip(pred.flat * 1000, 0, 65535), 0).astype(np.uint16)
        save_image(out / "depth_mm.png", mm)
        colour = colorize_scalar(np.log(pred.flat.reshape(-1)), pred.flat_valid.reshape(-1)).reshape(
            *pred.flat.shape, 3
        )
        save_image(out / "overlay.png", np.concatenate([bgr, colour], axis=1))
        pic = colorize_scalar(np.log(pred.sphere), pred.sphere_valid)
    _save_uncertainty(out, pred, predictor, bgr)
    save_image(out / "sphere_mollweide.png", sphere_view(pic, predictor.grid, "mollweide", width=1024))
    print(f"{args.image} -> {out}/ ({predictor.task}, {predictor.info()['model']}, {predictor.grid.key})")
    return 0


def _print_uncertainty(result: dict) -> None:
    u = result["uncertainty"]
    print(
        f"ensemble uncertainty (sphere): mean {u['mean_uncertainty_correct']:.4f} on {u['pixels_correct']} correct pixels, "
        f"{u['mean_uncertainty_wrong']:.4f} on {u['pixels_wrong']} wrong pixels"
    )
