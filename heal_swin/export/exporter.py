"""Model file -> model folder of a Triton model repository (:mod:`heal_swin.inference.triton`).

``OUT/config.pbtxt`` (Triton, platform onnxruntime_onnx), ``OUT/model.json`` (our manifest),
``OUT/1/model.onnx`` (fp32) and, with ``int8=True``, ``OUT/2/model.onnx`` (int8).

``export_checkpoint`` loads a model file written by ``save_model``, exports it with a dynamic batch
dimension, runs ``onnx.checker`` (full check), compares onnxruntime with torch on random inputs
(batch 1 and 3) and on real frames (the bundled demo frame and validation frames), optionally
quantises to int8 and measures the accuracy change, and only then puts the folder in place.

Everything is written to a hidden staging folder beside ``out`` (``.<name>.export-*``, which the
service's repository scan skips), so a failed export leaves nothing behind. Re-exporting over an
existing folder swaps the two folders atomically: on Linux with one ``renameat2(RENAME_EXCHANGE)``
(a reader sees the old folder or the new one, never none); where that is unavailable, the old
folder is renamed aside, the new one renamed in and the old one deleted (two renames apart).
Files in the old folder that are not model files are carried over into the new one.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.errors import InputError
from heal_swin.inference.manifest import (
    FORMAT,
    FP32_VERSION,
    INT8_NAME,
    INT8_VERSION,
    MANIFEST_NAME,
    ONNX_NAME,
    Manifest,
    save_manifest,
    sha256_file,
)
from heal_swin.inference.triton import CONFIG_NAME, model_config_text

__all__ = ["NAME_RE", "ExportInputError", "commit_folder", "export_checkpoint"]

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SINGLE_FILE_LIMIT = 1_800_000_000  # protobuf's 2 GB limit: bigger models keep external data


class ExportInputError(InputError):
    """A model file or an export option that cannot be exported as asked."""


def _default_classes(n: int) -> tuple[list[str], list[list[int]]]:
    from heal_swin.data.classes import WOODSCAPE_CLASSES

    if n == len(WOODSCAPE_CLASSES.names):
        return list(WOODSCAPE_CLASSES.names), [list(map(int, c)) for c in WOODSCAPE_CLASSES.colors_bgr]
    rng = np.random.default_rng(0)
    cols = rng.integers(40, 256, size=(n, 3)).tolist()
    return [f"class_{i}" for i in range(n)], cols


def _check_colours(colours: Any, n: int, src: str) -> list[list[int]]:
    try:
        out = [[int(v) for v in c] for c in colours]
    except (TypeError, ValueError):
        raise ExportInputError(
            f"{src}: metadata 'class_colours': expected {n} BGR triples, got {colours!r}"
        ) from None
    if len(out) != n or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in out):
        raise ExportInputError(
            f"{src}: metadata 'class_colours': expected {n} BGR triples of 0..255, got {colours!r}"
        )
    return out


def _opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0))


def _consolidate(path: Path) -> tuple[Path, Path | None]:
    """Fold external data into the .onnx file when it fits in one protobuf; returns (onnx, data or None)."""
    import onnx

    data = Path(str(path) + ".data")
    if not data.exists():
        return path, None
    if path.stat().st_size + data.stat().st_size > _SINGLE_FILE_LIMIT:
        return path, data
    model = onnx.load(str(path), load_external_data=True)
    data.unlink()
    onnx.save_model(model, str(path), save_as_external_data=False)
    return path, None


# Ours in a model folder, never carried over: the current layout's and the old one's (model.onnx beside model.json).
_MODEL_FILES = (ONNX_NAME, ONNX_NAME + ".data", INT8_NAME, MANIFEST_NAME, CONFIG_NAME)


def _is_model_file(name: str) -> bool:
    return name in _MODEL_FILES or name.isdigit()  # numeric folders are model versions


def _target(out: Path) -> Path:
    """The folder to write: ``out`` itself, or what it links to (the link stays)."""
    target = out.resolve() if out.is_symlink() else out
    if target.exists() and not target.is_dir():
        raise ExportInputError(f"--out {out}: expected a folder, got an existing file")
    return target


def _stage(out: Path) -> Path:
    """A new hidden staging folder beside the target; an ExportInputError if that place is not writable."""
    target = _target(out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.export-"))
    except OSError as e:
        raise ExportInputError(
            f"--out {out}: cannot write there ({e.strerror or type(e).__name__})"
        ) from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2`` RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no libc symbol (old glibc, musl)
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):  # kernel/filesystem cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def commit_folder(staged: Path, out: Path) -> None:
    """Put the finished ``staged`` folder at ``out`` (see the module docstring); ``staged`` is consumed."""
    target = _target(out)
    old_mode = None
    if target.is_dir():
        old_mode = stat.S_IMODE(target.stat().st_mode)
        for f in target.iterdir():  # carry over what is not ours (notes, a README, ...)
            if _is_model_file(f.name) or f.name.startswith(".export-") or (staged / f.name).exists():
                continue
            if f.is_dir() and not f.is_symlink():
                shutil.copytree(f, staged / f.name, symlinks=True)
            else:
                shutil.copy2(f, staged / f.name, follow_symlinks=False)
    # mkdtemp makes 0700; the folder must be readable like any other (a non-root service reads it).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staged, old_mode if old_mode is not None else 0o777 & ~umask)
    try:
        if old_mode is None:
            os.rename(staged, target)
        elif _exchange(staged, target):
            shutil.rmtree(staged, ignore_errors=True)  # now holds the old model
        else:
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.rename(target, aside / "old")
            try:
                os.rename(staged, target)
            except OSError:
                os.rename(aside / "old", target)  # put the old model back
                raise
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(staged, ignore_errors=True)
        raise ExportInputError(
            f"--out {out}: cannot replace the folder ({e.strerror or type(e).__name__})"
        ) from None


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    opset: int | None = None,
    int8: bool = False,
    val_data: str | Path | None = None,
    val_samples: int = 8,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    seed: int = 0,
    max_batch_size: int = 8,
    log: Callable[[str], None] = lambda s: None,
) -> Manifest:
    """Export one model file into the model folder ``out`` (see the module docstring).

    Raises :class:`ExportInputError` for a bad model file/options and
    :class:`heal_swin.export.onnx_export.ParityError` when onnxruntime differs from torch.
    """
    import onnx
    import onnxruntime
    import torch

    import heal_swin
    from heal_swin.export.onnx_export import check_parity, export_onnx
    from heal_swin.inference import processing as pl
    from heal_swin.inference.demo import demo_paths
    from heal_swin.models.checkpoint import load_model, read_model_metadata

    checkpoint, out = Path(checkpoint), Path(out)
    name = name or out.resolve().name
    if not NAME_RE.match(name) or name in (".", "..", "cameras"):
        raise ExportInputError(
            f"--name: expected letters, digits, '_', '.', '-' (not 'cameras'), got {name!r}"
        )
    if val_samples < 1:
        raise ExportInputError(f"--val-samples: expected a positive integer, got {val_samples}")
    if max_batch_size < 1:
        raise ExportInputError(f"--max-batch-size: expected a positive integer, got {max_batch_size}")
    _stage(out).rmdir()  # fail now, not after the export, if OUT's place is not writable
    header = read_model_metadata(checkpoint)
    model, meta = load_model(checkpoint)
    src = str(checkpoint)
    kind = getattr(model, "input_kind", None)
    if kind not in ("sphere", "flat"):
        raise ExportInputError(f"{src}: model {header['model_name']!r} has no input_kind 'sphere'/'flat'")
    in_chans = int(getattr(model, "in_chans", 3))
    if in_chans != 3:
        raise ExportInputError(f"{src}: the service feeds RGB images: expected in_chans 3, got {in_chans}")
    if kind == "sphere":
        grid = model.grid
        spatial: tuple[int, ...] = (grid.npix,)
    else:
        spatial = tuple(int(v) for v in model.img_size)
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, *spatial, generator=gen)
    with torch.no_grad():
        out_chans = int(model(example[:1]).shape[1])
    cfg = header["model_config"]
    task = meta.get("task") or cfg.get("task") or getattr(model, "task", "segmentation")
    if task not in ("segmentation", "depth"):
        raise ExportInputError(f"{src}: metadata 'task': expected 'segmentation' or 'depth', got {task!r}")
    class_names: list[str] = []
    class_colours: list[list[int]] = []
    depth = None
    if task == "segmentation":
        names_default, colours_default = _default_classes(out_chans)
        class_names = [str(n) for n in meta.get("class_names", names_default)]
        if len(class_names) != out_chans:
            raise ExportInputError(
                f"{src}: metadata 'class_names': expected {out_chans} names, got {len(class_names)}"
            )
        class_colours = _check_colours(meta.get("class_colours", colours_default), out_chans, src)
    else:
        missing = [k for k in ("depth_log_mean", "depth_log_std") if k not in meta]
        if missing:
            raise ExportInputError(
                f"{src}: a depth model needs metadata {missing} (metres = exp(z * std + mean))"
            )
        depth = {"log_mean": float(meta["depth_log_mean"]), "log_std": float(meta["depth_log_std"])}
    # The model file records its normalisation; an older file without it gets its variant's.
    mean = [float(v) for v in meta.get("mean", model.default_cfg["mean"])]
    std = [float(v) for v in meta.get("std", model.default_cfg["std"])]

    tmp = _stage(out)
    try:
        log(f"exporting {header['model_name']} ({kind}, {task}, input {[-1, 3, *spatial]}) ...")
        (tmp / str(FP32_VERSION)).mkdir()
        onnx_path = export_onnx(
            model, example, tmp / str(FP32_VERSION) / ONNX_NAME, dynamic_batch=True, opset=opset
        )
        onnx_path, data_path = _consolidate(onnx_path)
        onnx.checker.check_model(str(onnx_path), full_check=True)
        log("onnx.checker: ok")

        rand = [torch.randn(1, 3, *spatial, generator=gen), torch.randn(3, 3, *spatial, generator=gen)]
        parity_random = check_parity(model, onnx_path, rand, rtol=rtol, atol=atol)
        log(
            f"parity (random, batch 1 and 3): max abs {parity_random['max_abs']:.3g}, max rel {parity_random['max_rel']:.3g}"
        )

        partial = Manifest(
            name=name,
            model_name=header["model_name"],
            task=task,
            input_kind=kind,
            in_chans=3,
            out_chans=out_chans,
            input_shape=[-1, 3, *spatial],
            output_shape=[-1, out_chans, *spatial],
            onnx_sha256="0" * 64,
            opset=1,
            nside=grid.nside if kind == "sphere" else None,
            base_pixels=list(grid.base_pixels) if kind == "sphere" else None,
            resample=meta.get("resample", "bilinear"),
            img_size=list(spatial) if kind == "flat" else None,
            class_names=class_names,
            class_colours=class_colours,
            normalisation={"colour_order": "RGB", "scale": 1 / 255, "mean": mean, "std": std},
            depth=depth,
        )
        # Real frames: the bundled demo frame, then validation frames (a folder, or rendered synthetic scenes).
        from heal_swin.geometry import FisheyeCamera
        from heal_swin.io import read_image

        demo_img, demo_cal = demo_paths()
        if demo_img.is_file() and demo_cal.is_file():
            frames = [(FisheyeCamera.from_json(demo_cal), read_image(demo_img, 1), None, None)]
            demo_source = "bundled demo frame"
        else:  # an install without the package data: render the same kind of frame
            from heal_swin.data.frames import render_frames

            frames = [tuple(render_frames(1, seed=7)[0][:2]) + (None, None)]
            demo_source = "rendered synthetic demo frame"
        val_frames, val_source = [], None
        if val_data is not None:
            from heal_swin.export.quantize import validation_frames_from_folder

            val_frames, val_source = validation_frames_from_folder(val_data, val_samples)
        elif int8:
            from heal_swin.data.frames import render_frames

            size = (384, 290) if kind == "flat" or grid.nside <= 64 else (640, 483)
            val_frames = render_frames(val_samples, size, seed=1000 + seed)
            val_source = f"synthetic street scenes (heal_swin.data.synthetic, FV camera {size[0]}x{size[1]}, {val_samples} frames, seed {1000 + seed})"
        real_frames = frames + val_frames[:2]
        real_inputs = [
            torch.from_numpy(pl.model_input(img, partial, cam)[None]) for cam, img, _, _ in real_frames
        ]
        parity_real = check_parity(model, onnx_path, real_inputs, rtol=rtol, atol=atol)
        log(
            f"parity (real, {len(real_inputs)} frames): max abs {parity_real['max_abs']:.3g}, max rel {parity_real['max_rel']:.3g}"
        )

        int8_info = None
        if int8:
            from heal_swin.export.quantize import compare_on_frames, quantize_int8

            (tmp / str(INT8_VERSION)).mkdir()
            q_path = quantize_int8(onnx_path, tmp / str(INT8_VERSION) / ONNX_NAME)
            onnx.checker.check_model(str(q_path), full_check=True)
            validation = compare_on_frames(partial, onnx_path, q_path, val_frames, val_source)
            int8_info = {
                "version": INT8_VERSION,
                "onnx_file": ONNX_NAME,
                "onnx_sha256": sha256_file(q_path),
                "method": "onnxruntime.quantization.quantize_dynamic, weights QInt8 per output channel (7-bit range), activations dynamic uint8",
                "validation": validation,
            }
            log(f"int8: {json.dumps(validation)}")

        manifest = Manifest(
            **{
                **partial.to_dict(),
                "onnx_sha256": sha256_file(onnx_path),
                "opset": _opset_of(onnx_path),
                "onnx_data_file": data_path.name if data_path else None,
                "onnx_data_sha256": sha256_file(data_path) if data_path else None,
                "parity": {
                    "rtol": rtol,
                    "atol": atol,
                    "random": {**parity_random, "count": 2, "batches": [1, 3], "seed": seed},
                    "real": {
                        **parity_real,
                        "count": len(real_inputs),
                        "source": demo_source
                        + (f" + {len(real_frames) - 1} of {val_source}" if len(real_frames) > 1 else ""),
                    },
                },
                "int8": int8_info,
                "model_versions": {
                    str(FP32_VERSION): "fp32",
                    **({str(INT8_VERSION): "int8"} if int8_info else {}),
                },
                "model_config": header["model_config"],
                "dataset": meta.get("dataset"),
                "metadata": meta,
                "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": {
                    "heal_swin": getattr(heal_swin, "__version__", "?"),
                    "torch": torch.__version__,
                    "onnx": onnx.__version__,
                    "onnxruntime": onnxruntime.__version__,
                },
                "format": FORMAT,
            }
        )
        save_manifest(tmp / MANIFEST_NAME, manifest)
        (tmp / CONFIG_NAME).write_text(model_config_text(manifest, max_batch_size=max_batch_size))
        for f in [tmp / CONFIG_NAME, *tmp.glob("[0-9]*/*")]:
            f.chmod(0o644)  # readable by a non-root service or Triton
        for d in tmp.glob("[0-9]*"):
            d.chmod(0o755)
        commit_folder(tmp, out)
        files = sorted(
            str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
        )
        log(f"wrote {out}/ ({', '.join(files)})")
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
