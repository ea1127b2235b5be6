"""Validation of one sample without decoding (quick) or with (full); problems name the file (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.data.readers import read_calibration, read_depth, read_image, read_raw_label
from heal_swin.data.spec import EXT, DatasetError, FisheyeDatasetSpec, SampleRecord
from heal_swin.geometry.camera import CalibrationError
from heal_swin.imageio import ImageHeaderError, png_complete, read_image_header

__all__ = ["Validate", "check_png_complete", "npy_shape", "png_size", "unknown_ids_reason", "validate_sample"]

Validate = Literal["none", "quick", "full"]


def _expected(dirs: dict[str, Path | None], kind: str, name: str) -> str:
    d = dirs.get(kind)
    return str(d / f"{name}{EXT[kind]}") if d is not None else f"<{kind} folder missing>/{name}{EXT[kind]}"


def png_size(path: str | Path) -> tuple[int, int, int]:
    """(width, height, channels) from a PNG header; raises DatasetError naming the file if not a PNG."""
    try:
        head = read_image_header(path)
    except ImageHeaderError as e:
        raise DatasetError(str(e)) from None
    if head.format != "png":
        raise DatasetError(f"{path}: not a PNG file ({head.format.upper()} data)")
    return head.width, head.height, head.channels


def check_png_complete(path: str | Path) -> None:
    """DatasetError if the PNG does not end with its IEND chunk (a truncated copy or download).

    So that quick validation (what training uses) catches truncation instead of a decode error
    mid-epoch.
    """
    if not png_complete(path):
        raise DatasetError(f"{path}: truncated PNG (the file does not end with an IEND chunk)")


def npy_shape(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)  # header + size check, no data read
        shape, dtype = tuple(arr.shape), arr.dtype
        del arr
    except Exception as e:  # noqa: BLE001 - any failure is a corrupt or truncated file
        raise DatasetError(f"{path}: not a valid .npy file ({type(e).__name__}: {e})") from None
    return shape, dtype


def validate_sample(
    rec: SampleRecord,
    spec: FisheyeDatasetSpec,
    dirs: dict[str, Path | None],
    level: Validate = "quick",
    require_labels: bool = True,
) -> list[tuple[str, str]]:
    """Problems of one sample as ``(path, reason)``; empty when usable."""
    if level == "none":
        return []
    problems: list[tuple[str, str]] = []
    try:
        w, h, _ = png_size(rec.image)
        check_png_complete(rec.image)
    except (DatasetError, OSError) as e:
        return [(rec.image, _reason(e, rec.image))]
    if rec.calibration is None:
        problems.append(
            (_expected(dirs, "calibration", rec.name), f"missing calibration for image {rec.image}")
        )
    else:
        try:
            cam = read_calibration(rec.calibration)
            if cam.image_size != (w, h):
                problems.append(
                    (
                        rec.calibration,
                        f"calibration size {cam.width}x{cam.height} != image size {w}x{h} ({rec.image})",
                    )
                )
        except CalibrationError as e:
            problems.append((rec.calibration, f"invalid calibration: {e}"))
    if rec.label is None:
        if require_labels:
            problems.append((_expected(dirs, "label", rec.name), f"missing label for image {rec.image}"))
    else:
        try:
            lw, lh, _ = png_size(rec.label)
            if (lw, lh) != (w, h):
                problems.append((rec.label, f"label size {lw}x{lh} != image size {w}x{h} ({rec.image})"))
            else:
                check_png_complete(rec.label)
        except (DatasetError, OSError) as e:
            problems.append((rec.label, _reason(e, rec.label)))
    if spec.depth:
        if rec.depth is None:
            problems.append((_expected(dirs, "depth", rec.name), f"missing depth map for image {rec.image}"))
        else:
            try:
                shape, _ = npy_shape(rec.depth)
                if shape != (h, w):
                    problems.append((rec.depth, f"depth shape {shape} != image size (H, W) = {(h, w)}"))
            except (DatasetError, OSError) as e:
                problems.append((rec.depth, _reason(e, rec.depth)))
    if level == "full" and not problems:
        for path, fn in ((rec.image, read_image), (rec.label, None), (rec.depth, None)):
            if path is None:
                continue
            try:
                if fn is read_image:
                    read_image(path)
                elif path == rec.label:
                    raw = read_raw_label(path)
                    unknown = np.setdiff1d(np.unique(raw), spec.classes.known_raw_ids)
                    if unknown.size and spec.classes.unknown_label_ids != "ignore":
                        problems.append((path, unknown_ids_reason(unknown.tolist(), spec)))
                else:
                    read_depth(path, spec)
            except (DatasetError, OSError) as e:
                problems.append((path, _reason(e, path)))
    return problems


def unknown_ids_reason(ids: list[int], spec: FisheyeDatasetSpec) -> str:
    """What label ids outside the class table are and what training does with them."""
    known = int(spec.classes.known_raw_ids.max())
    return (
        f"unknown label ids {ids} (known: 0..{known}); training would silently ignore these pixels "
        f'(label {IGNORE_INDEX}): fix the labels, or set "unknown_label_ids": "ignore" in the dataset card'
    )


def _reason(e: Exception, path: str) -> str:
    """The reason only: DatasetError messages start with the path, which is reported alongside."""
    msg = str(e)
    return msg[len(path) + 2 :] if msg.startswith(f"{path}: ") else msg
