"""``heal-swin export``: a model file -> ONNX model folder (see ``heal_swin.export.exporter``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_export_commands"]


def add_export_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model file to ONNX (+ manifest model.json) with parity checks",
        description=(
            "Export a heal-swin model file (safetensors, from training) as one model of a Triton model repository: "
            "OUT/1/model.onnx (dynamic batch), OUT/config.pbtxt (Triton, onnxruntime_onnx) and OUT/model.json "
            "(our manifest); with --int8 also OUT/2/model.onnx. Runs onnx.checker and compares onnxruntime with "
            "torch on random and real inputs (rtol/atol); exits 1 and writes nothing if they differ. OUT is "
            "REPO/<name>/, served by `heal-swin serve --model-repository REPO` or by Triton."
        ),
    )
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="model file (.safetensors written by save_model)"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="model folder to write, e.g. models/heal_swin_seg/"
    )
    p.add_argument("--name", default=None, help="model name in the repository (default: the folder's name)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write version 2, OUT/2/model.onnx (dynamic int8 quantisation), and its accuracy change",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=8,
        help="config.pbtxt max_batch_size for Triton's dynamic batching (default 8)",
    )
    p.add_argument(
        "--val-data",
        type=Path,
        default=None,
        help="validation folder (WoodScape layout) for the real-input parity check and the int8 accuracy; "
        "default: rendered synthetic scenes",
    )
    p.add_argument("--val-samples", type=int, default=8, help="validation frames to use (default 8)")
    p.add_argument("--rtol", type=float, default=1e-3, help="parity relative tolerance (default 1e-3)")
    p.add_argument("--atol", type=float, default=1e-4, help="parity absolute tolerance (default 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parity inputs")
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="CALIB.json|NAME",
        help="also write an end-to-end model for this camera (a calibration file or a camera registered as "
        "REPO/cameras/NAME.json): REPO/<name>_<camera>/, uint8 BGR frames (B, H, W, 3) in, the class mask "
        "(uint8, 255 outside the grid) or depth (float32 metres) per fisheye pixel out, the projection baked "
        "into the graph; checked against the Python pipeline. Repeat for several cameras. Sphere models only",
    )
    p.add_argument(
        "--triton-backend",
        choices=("onnxruntime", "python"),
        default="onnxruntime",
        help="Triton backend of the end-to-end models' config.pbtxt: onnxruntime (platform onnxruntime_onnx, "
        "NGC Triton images) or python (1/model.py runs the ONNX with onnxruntime: pytriton's tritonserver)",
    )
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from heal_swin.export.end_to_end import EndToEndParityError, export_end_to_end, resolve_camera
    from heal_swin.export.exporter import export_checkpoint
    from heal_swin.export.onnx_export import ParityError

    cameras = [
        resolve_camera(spec, args.out.parent) for spec in args.camera
    ]  # a bad camera fails before the export
    try:
        m = export_checkpoint(
            args.checkpoint,
            args.out,
            name=args.name,
            opset=args.opset,
            int8=args.int8,
            val_data=args.val_data,
            val_samples=args.val_samples,
            rtol=args.rtol,
            atol=args.atol,
            seed=args.seed,
            max_batch_size=args.max_batch_size,
            log=lambda s: print(f"  {s}", flush=True),
        )
    except ParityError as e:
        print(f"heal-swin export: error: parity check FAILED, nothing written: {e}", file=sys.stderr)
        return 1
    if cameras and m.input_kind != "sphere":
        print(f"heal-swin export: error: --camera: {m.model_name} is a flat model; the projection is baked in only "
              f"around sphere models ({args.out} written without end-to-end models)", file=sys.stderr)  # fmt: skip
        return 2
    p = m.parity
    print(
        f"{args.checkpoint} -> {args.out}/1/model.onnx  ({m.model_name}, {m.task}, opset {m.opset}, sha256 {m.onnx_sha256[:12]}...)\n"
        f"  parity  random max abs {p['random']['max_abs']:.2e}, real max abs {p['real']['max_abs']:.2e} "
        f"(rtol {p['rtol']}, atol {p['atol']})"
    )
    if m.int8:
        v = m.int8["validation"]
        key = "delta_miou" if m.task == "segmentation" else "delta_abs_rel"
        print(
            f"  int8    {args.out}/{m.int8['version']}/{m.int8['onnx_file']}: {key} {v.get(key)}, on {v['source']}"
        )
    for camera, cam_name in cameras:
        try:
            e = export_end_to_end(args.out, camera, cam_name, backend=args.triton_backend, max_batch_size=args.max_batch_size,
                                  seed=args.seed, log=lambda s: print(f"  {s}", flush=True))  # fmt: skip
        except EndToEndParityError as err:
            print(
                f"heal-swin export: error: end-to-end parity check FAILED, {cam_name} not written: {err}",
                file=sys.stderr,
            )
            return 1
        r = e.parity["results"]
        key = "agreement" if m.task == "segmentation" else "max_rel"
        print(f"  camera  {cam_name} -> {args.out.parent / e.name}/1/model.onnx (end to end, {args.triton_backend}; "
              f"vs the Python pipeline {key} {', '.join(f'{x[key]:.6g}' for x in r)})")  # fmt: skip
    return 0
