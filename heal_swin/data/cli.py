"""The ``heal-swin data`` command group: ``data synth`` and ``data check``.

Wire into the main CLI with::

    from heal_swin.data.cli import add_data_commands, run_data_command
    add_data_commands(subparsers)          # subparsers = parser.add_subparsers(dest="command")
    ...
    if args.command == "data":
        return run_data_command(args)

No torch is imported on these paths.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["add_data_commands", "main", "run_data_command"]


def add_data_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data synth`` and ``data check`` on an argparse subparsers object."""
    data = subparsers.add_parser(
        "data", help="generate and check datasets", description="Datasets: synthesise, check."
    )
    sub = data.add_subparsers(dest="data_command", metavar="{synth,check}")
    sub.required = True

    s = sub.add_parser(
        "synth",
        help="render the synthetic fisheye benchmark in WoodScape's layout",
        description="Render procedural street scenes through four WoodScape-style fisheye cameras (FV, RV, MVL, MVR). "
        "Deterministic for a seed; re-running skips complete scenes.",
    )
    s.add_argument("--out", default="data/synthetic", help="output root (default: data/synthetic)")
    s.add_argument(
        "--scenes",
        type=int,
        default=200,
        help="number of scenes; each gives one image per camera (default 200)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--width", type=int, default=1280, help="image width (default 1280, WoodScape's)")
    s.add_argument("--height", type=int, default=966, help="image height (default 966)")
    s.add_argument("--cameras", default="FV,RV,MVL,MVR", help="comma-separated subset of FV,RV,MVL,MVR")
    s.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes (default: min(4, CPUs))"
    )
    s.add_argument(
        "--overwrite", action="store_true", help="re-render every scene (also allows changing settings)"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument(
        "--png-compression",
        type=int,
        default=1,
        choices=range(10),
        metavar="0-9",
        help="PNG zlib level (default 1)",
    )

    c = sub.add_parser(
        "check",
        help="validate a dataset root and print a summary",
        description="Validate a WoodScape-layout root (WoodScape, SynWoodScape, synthetic): every problem names the file. "
        "Warnings (stray or orphan files, unknown label ids the dataset card declares ignored) are listed too. "
        "Exit status 1 when problems were found (warnings do not count), 2 when the root cannot be checked.",
    )
    c.add_argument("root")
    c.add_argument(
        "--dataset",
        default="auto",
        help="auto | woodscape | synthetic | synwoodscape | synwoodscape-large | synwoodscape-large_plus_AD",
    )
    c.add_argument("--cameras", default=None, help="comma-separated subset of cameras to check")
    c.add_argument("--quick", action="store_true", help="headers and sizes only (do not decode every file)")
    c.add_argument("--no-histogram", action="store_true", help="skip the class histogram")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    return data


def run_data_command(args: argparse.Namespace) -> int:
    """Run a parsed ``data`` command; returns the process exit code."""
    cmd = getattr(args, "data_command", None)
    if cmd == "synth":
        return _synth(args)
    if cmd == "check":
        return _check(args)
    print(f"heal-swin data: unknown command {cmd!r} (expected synth or check)", file=sys.stderr)
    return 2


def _synth(args: argparse.Namespace) -> int:
    from heal_swin.data.synthetic import SynthConfig, generate, iter_cameras

    try:
        cameras = iter_cameras(args.cameras)
        if args.scenes < 1 or args.width < 16 or args.height < 16:
            raise ValueError(
                f"expected --scenes >= 1 and an image of at least 16x16, got {args.scenes}, {args.width}x{args.height}"
            )
        cfg = SynthConfig(
            scenes=args.scenes, seed=args.seed, width=args.width, height=args.height, cameras=cameras,
            png_compression=args.png_compression,
        )  # fmt: skip
        summary = generate(
            args.out,
            cfg,
            workers=max(1, args.workers),
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except ValueError as e:
        print(f"heal-swin data synth: {e}", file=sys.stderr)
        return 2
    rate = summary["images_per_second"]
    print(
        f"wrote {summary['images']} images ({summary['rendered_scenes']} scenes rendered, {summary['skipped_scenes']} skipped) "
        f"to {summary['root']}" + (f" at {rate:.2f} images/s" if rate else "")
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from heal_swin.data.check import check_dataset
    from heal_swin.data.layout import DatasetError

    cams = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    try:
        report = check_dataset(args.root, args.dataset, cameras=cams, level="quick" if args.quick else "full",
                               histogram=not args.no_histogram)  # fmt: skip
    except DatasetError as e:
        print(f"heal-swin data check: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m heal_swin.data.cli data synth ...``) until the main CLI wires it."""
    parser = argparse.ArgumentParser(prog="heal-swin")
    add_data_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run_data_command(args)


if __name__ == "__main__":
    sys.exit(main())
