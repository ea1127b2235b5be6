"""The WoodScape folder layout, shared by WoodScape, SynWoodScape and the synthetic benchmark.

One :class:`FisheyeDatasetSpec` per dataset says what differs (class table, depth, green strips);
one :func:`scan` finds the folders (including the nested names of the released zips), pairs the
files of each sample, applies the split and validates. Files that fail validation are *skipped
and listed* in ``DatasetIndex.skipped`` (path, reason), never dropped silently.

No torch here (used by ``heal-swin data check``).
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from heal_swin.data.classes import IGNORE_INDEX, WOODSCAPE_CLASSES, ClassTable, synwoodscape_table
from heal_swin.geometry.camera import CalibrationError, FisheyeCamera

__all__ = [
    "SYNTHETIC",
    "WOODSCAPE",
    "DatasetError",
    "DatasetIndex",
    "FisheyeDatasetSpec",
    "SampleRecord",
    "check_png_complete",
    "detect_spec",
    "get_spec",
    "png_size",
    "read_calibration",
    "read_depth",
    "read_image",
    "read_label",
    "scan",
    "synwoodscape_spec",
    "validate_sample",
]

Validate = Literal["none", "quick", "full"]
SPLITS = ("train", "val", "test")
_NAME_RE = re.compile(r"^(\d+)_([A-Za-z]+)$")

# Candidate folders (relative to the root), first match wins. The released zips nest one level.
DEFAULT_DIRS: dict[str, tuple[str, ...]] = {
    "image": ("rgb_images", "rgb_images/rgb_images"),
    "label": (
        "semantic_annotations/gtLabels",
        "semantic_annotations/semantic_annotations/gtLabels",
        "gtLabels",
    ),
    "rgb_label": (
        "semantic_annotations/rgbLabels",
        "semantic_annotations/semantic_annotations/rgbLabels",
        "rgbLabels",
    ),
    "depth": ("depth_maps/raw_data", "depth_maps/depth_maps/raw_data", "depth_maps"),
    "calibration": (
        "calibration",
        "calibration/calibration",
        "calibration_data/calibration",
        "calibration_data",
    ),
}
_EXT = {"image": ".png", "label": ".png", "rgb_label": ".png", "depth": ".npy", "calibration": ".json"}


class DatasetError(ValueError):
    """A dataset root or sample that cannot be used; the message names the file."""


@dataclass(frozen=True)
class FisheyeDatasetSpec:
    """What one dataset in the WoodScape layout looks like.

    Attributes:
        name: ``woodscape``, ``synwoodscape[-variant]`` or ``synthetic``.
        classes: label space (with the raw-id -> class merge).
        depth: whether ``depth_maps/raw_data/*.npy`` exist (metres along the ray).
        depth_sky: a raw depth value meaning "sky" (SynWoodScape: 1000), converted to ``inf``.
        green_strips: rows at the top and bottom of every image that are not scene (WoodScape: 3).
        dirs: candidate folders per file kind.
    """

    name: str
    classes: ClassTable
    depth: bool = False
    depth_sky: float | None = None
    green_strips: int = 0
    dirs: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_DIRS))


WOODSCAPE = FisheyeDatasetSpec("woodscape", WOODSCAPE_CLASSES, depth=False, green_strips=3)
SYNTHETIC = FisheyeDatasetSpec("synthetic", WOODSCAPE_CLASSES, depth=True)


def synwoodscape_spec(variant: str | None = None) -> FisheyeDatasetSpec:
    """SynWoodScape with its 25 classes (``variant`` None) or a merged set (``large``, ``large_plus_AD``)."""
    table = synwoodscape_table(variant)
    return FisheyeDatasetSpec(table.name, table, depth=True, depth_sky=1000.0)


def get_spec(name: str | FisheyeDatasetSpec) -> FisheyeDatasetSpec:
    """``woodscape``, ``synthetic``, ``synwoodscape``, ``synwoodscape-large``, ``synwoodscape-large_plus_AD``."""
    if isinstance(name, FisheyeDatasetSpec):
        return name
    key = name.strip()
    if key.lower() == "woodscape":
        return WOODSCAPE
    if key.lower() == "synthetic":
        return SYNTHETIC
    if key.lower().startswith("synwoodscape"):
        variant = key[len("synwoodscape") :].lstrip("-_:") or None
        return synwoodscape_spec(variant)
    raise DatasetError(
        f"dataset: expected woodscape, synthetic, synwoodscape[-large|-large_plus_AD], got {name!r}"
    )


def detect_spec(root: str | Path) -> FisheyeDatasetSpec:
    """Guess the spec of a root: a synthetic card -> synthetic; depth maps -> SynWoodScape; else WoodScape."""
    root = Path(root)
    if (root / "dataset_card.json").exists():
        return SYNTHETIC
    if _find_dir(root, DEFAULT_DIRS["depth"], ".npy") is not None:
        return synwoodscape_spec(None)
    return WOODSCAPE


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class SampleRecord:
    """Paths of one sample (strings: cheap to pickle into DataLoader workers)."""

    name: str  # NNNNN_CAM
    camera: str
    image: str
    label: str | None = None
    depth: str | None = None
    calibration: str | None = None


@dataclass
class DatasetIndex:
    root: Path
    spec: FisheyeDatasetSpec
    samples: list[SampleRecord]
    skipped: list[tuple[str, str]]
    dirs: dict[str, Path | None]
    split: str
    split_source: str  # "file <path>" | "seeded" | "all"

    def per_camera(self) -> dict[str, int]:
        return dict(sorted(Counter(s.camera for s in self.samples).items()))

    def format_skipped(self, limit: int = 20) -> str:
        lines = [f"  {p}: {why}" for p, why in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def _find_dir(root: Path, candidates: Iterable[str], ext: str) -> Path | None:
    for rel in candidates:
        d = root / rel
        if d.is_dir() and any(p.suffix.lower() == ext for p in d.iterdir()):
            return d
    return None


def find_dirs(root: Path, spec: FisheyeDatasetSpec) -> dict[str, Path | None]:
    return {kind: _find_dir(root, cands, _EXT[kind]) for kind, cands in spec.dirs.items()}


def _split_entries(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(Path(line.split()[0]).stem if "." in Path(line).name else Path(line).name)
    return out


def find_split_file(root: Path, split: str) -> Path | None:
    for cand in (root / f"{split}.txt", root / "splits" / f"{split}.txt"):
        if cand.is_file():
            return cand
    return None


def seeded_split(
    names: Sequence[str], seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, set[str]]:
    """Split sample names by frame number (all cameras of a frame together), seeded and stable."""
    frames = sorted({_frame(n) for n in names})
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5917])).permutation(len(frames))
    n = len(frames)
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = n - n_val - n_test
    parts = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
    out = {}
    for k, idx in parts.items():
        fs = {frames[i] for i in idx}
        out[k] = {nm for nm in names if _frame(nm) in fs}
    return out


def _frame(name: str) -> str:
    m = _NAME_RE.match(name)
    return m.group(1) if m else name


def _camera_of(name: str) -> str:
    m = _NAME_RE.match(name)
    return m.group(2).upper() if m else ""


def scan(
    root: str | Path,
    spec: FisheyeDatasetSpec | str | None = None,
    split: str = "all",
    cameras: Sequence[str] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    require_labels: bool = True,
    validate: Validate = "quick",
    on_error: Literal["skip", "raise"] = "skip",
) -> DatasetIndex:
    """Index a dataset root.

    Args:
        split: ``all``, ``train``, ``val`` or ``test``. Uses ``ROOT/{split}.txt`` (or ``ROOT/splits/``)
            when present (WoodScape/OmniDet files: one name per line, with or without extension),
            otherwise a seeded split by frame number.
        cameras: keep only these camera names (FV, RV, MVL, MVR).
        require_labels: samples without a label file are problems (skipped or raised).
        validate: ``none``; ``quick`` (files exist, PNG/NPY headers, sizes agree, calibration parses and
            matches the image size); ``full`` (also decodes every file and checks label ids).
        on_error: ``skip`` lists bad samples in ``DatasetIndex.skipped``; ``raise`` raises DatasetError.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory")
    spec = detect_spec(root) if spec is None or spec == "auto" else get_spec(spec)
    dirs = find_dirs(root, spec)
    if dirs["image"] is None:
        tried = ", ".join(str(root / c) for c in spec.dirs["image"])
        raise DatasetError(f"{root}: no images found (looked for *.png in {tried})")
    images = sorted(
        p for p in dirs["image"].iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")
    )
    names = [p.stem for p in images]
    by_name = dict(zip(names, images))
    skipped: list[tuple[str, str]] = []

    if split == "all":
        chosen, source = names, "all"
    elif split in SPLITS:
        f = find_split_file(root, split)
        if f is not None:
            listed = _split_entries(f)
            missing = [n for n in listed if n not in by_name]
            skipped += [
                (str(dirs["image"] / f"{n}.png"), f"listed in {f.name} but the image does not exist")
                for n in missing
            ]
            chosen, source = [n for n in listed if n in by_name], f"file {f}"
        else:
            others = [find_split_file(root, o) for o in SPLITS if o != split]
            others = [o for o in others if o is not None]
            if others:  # mixing official files with a seeded split would leak samples between splits
                raise DatasetError(
                    f"{root}: split '{split}' requested but there is no {split}.txt (found {', '.join(o.name for o in others)}); "
                    "add the file or use split='all'"
                )
            chosen, source = sorted(seeded_split(names, seed, fractions)[split]), f"seeded (seed {seed})"
    else:
        raise DatasetError(f"split: expected all, train, val or test, got {split!r}")
    if cameras:
        want = {c.upper() for c in cameras}
        chosen = [n for n in chosen if _camera_of(n) in want]

    records = [
        SampleRecord(
            name=n,
            camera=_camera_of(n),
            image=str(by_name[n]),
            label=_path_if(dirs["label"], n, ".png"),
            depth=_path_if(dirs["depth"], n, ".npy") if spec.depth else None,
            calibration=_path_if(dirs["calibration"], n, ".json"),
        )
        for n in chosen
    ]
    # Validation is I/O and OpenCV decoding (both release the GIL): a few threads, order preserved.
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        results = list(pool.map(lambda r: validate_sample(r, spec, dirs, validate, require_labels), records))
    samples = []
    for rec, problems in zip(records, results):
        if problems:
            if on_error == "raise":
                raise DatasetError("; ".join(f"{p}: {why}" for p, why in problems))
            skipped += problems
            continue
        samples.append(rec)
    return DatasetIndex(root, spec, samples, skipped, dirs, split, source)


def _path_if(d: Path | None, name: str, ext: str) -> str | None:
    if d is None:
        return None
    p = d / f"{name}{ext}"
    return str(p) if p.exists() else None


def _expected(dirs: dict[str, Path | None], kind: str, name: str) -> str:
    d = dirs.get(kind)
    return str(d / f"{name}{_EXT[kind]}") if d is not None else f"<{kind} folder missing>/{name}{_EXT[kind]}"


# --------------------------------------------------------------- validation
def png_size(path: str | Path) -> tuple[int, int, int]:
    """(width, height, channels) from a PNG header; raises DatasetError naming the file if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG file (bad signature or header)")
    w, h, _depth, ctype = struct.unpack(">IIBB", head[16:26])
    if zlib.crc32(head[12:29]) & 0xFFFFFFFF != struct.unpack(">I", head[29:33])[0]:
        raise DatasetError(f"{path}: corrupt PNG header (CRC mismatch)")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype, 0)
    return w, h, channels


def check_png_complete(path: str | Path) -> None:
    """DatasetError if the PNG does not end with its IEND chunk (a truncated copy or download).

    One seek and a small read, so quick validation (what training uses) catches truncation
    instead of a decode error mid-epoch. A little trailing data after IEND is tolerated.
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1024))
        tail = f.read()
    if b"IEND\xaeB`\x82" not in tail:
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
        f"(label {IGNORE_INDEX}): fix the labels, or set \"unknown_label_ids\": \"ignore\" in the dataset card"
    )


def _reason(e: Exception, path: str) -> str:
    """The reason only: DatasetError messages start with the path, which is reported alongside."""
    msg = str(e)
    return msg[len(path) + 2 :] if msg.startswith(f"{path}: ") else msg


# ------------------------------------------------------------------ readers
def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 **RGB** image."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_raw_label(path: str | Path) -> np.ndarray:
    """(H, W) uint8 raw label ids.

    Label PNGs are single-channel ids. A 3-channel file with equal channels uses the first; one with
    different channels is read as CARLA's raw encoding (id in the red channel).
    """
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DatasetError(f"{path}: cannot decode label image (corrupt or not an image)")
    if lab.ndim == 3:
        same = np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 0], lab[..., 2])
        lab = np.ascontiguousarray(lab[..., 0] if same else lab[..., 2])
    if lab.dtype != np.uint8:
        if lab.max(initial=0) > 255:
            raise DatasetError(f"{path}: label ids above 255 (dtype {lab.dtype})")
        lab = lab.astype(np.uint8)
    return lab


def read_label(path: str | Path, classes: ClassTable) -> np.ndarray:
    """(H, W) uint8 class ids of ``classes`` (unknown raw ids -> IGNORE_INDEX)."""
    return classes.map_labels(read_raw_label(path))


def read_depth(path: str | Path, spec: FisheyeDatasetSpec) -> np.ndarray:
    """(H, W) float32 metres along the ray; sky / invalid -> ``inf`` (SynWoodScape's 1000 converted)."""
    try:
        d = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: cannot read depth .npy ({e})") from None
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise DatasetError(f"{path}: depth must be (H, W), got shape {d.shape}")
    d = d.astype(np.float32, copy=True)
    bad = ~np.isfinite(d) | (d <= 0)
    if spec.depth_sky is not None:
        bad |= d >= spec.depth_sky
    d[bad] = np.inf
    return d


def read_calibration(path: str | Path) -> FisheyeCamera:
    return FisheyeCamera.from_json(path)


def read_card(root: str | Path) -> dict | None:
    p = Path(root) / "dataset_card.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None
