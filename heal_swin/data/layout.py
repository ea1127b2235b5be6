"""The WoodScape folder layout, shared by WoodScape, SynWoodScape and the synthetic benchmark.

One :class:`FisheyeDatasetSpec` per dataset says what differs (class table, depth, green strips);
one :func:`scan` finds the folders (including the nested names of the released zips), pairs the
files of each sample, applies the split and validates. Files that fail validation are *skipped
and listed* in ``DatasetIndex.skipped`` (path, reason), never dropped silently.

Parts: :mod:`~heal_swin.data.spec` (specs, folder names, records), :mod:`~heal_swin.data.readers`
(one sample's files), :mod:`~heal_swin.data.validation` (quick and full checks, headers through
:mod:`heal_swin.imageio`); their names are re-exported here. No torch (used by ``heal-swin data check``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

# The layout's parts, re-exported: callers import them from here.
from heal_swin.data.readers import (
    read_calibration,
    read_card,
    read_depth,
    read_image,
    read_label,
    read_raw_label,
)
from heal_swin.data.spec import (
    DEFAULT_DIRS,
    EXT,
    SYNTHETIC,
    WOODSCAPE,
    DatasetError,
    FisheyeDatasetSpec,
    SampleRecord,
    get_spec,
    synwoodscape_spec,
)
from heal_swin.data.validation import (
    Validate,
    check_png_complete,
    npy_shape,
    png_size,
    unknown_ids_reason,
    validate_sample,
)

__all__ = [
    "DEFAULT_DIRS",
    "SYNTHETIC",
    "WOODSCAPE",
    "DatasetError",
    "DatasetIndex",
    "FisheyeDatasetSpec",
    "SampleRecord",
    "check_png_complete",
    "detect_spec",
    "get_spec",
    "npy_shape",
    "png_size",
    "read_calibration",
    "read_card",
    "read_depth",
    "read_image",
    "read_label",
    "read_raw_label",
    "scan",
    "synwoodscape_spec",
    "unknown_ids_reason",
    "validate_sample",
]

_EXT = EXT  # the name data.check imports
SPLITS = ("train", "val", "test")
_NAME_RE = re.compile(r"^(\d+)_([A-Za-z]+)$")


def detect_spec(root: str | Path) -> FisheyeDatasetSpec:
    """Guess the spec of a root: a synthetic card -> synthetic; depth maps -> SynWoodScape; else WoodScape."""
    root = Path(root)
    if (root / "dataset_card.json").exists():
        return SYNTHETIC
    if _find_dir(root, DEFAULT_DIRS["depth"], ".npy") is not None:
        return synwoodscape_spec(None)
    return WOODSCAPE


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
