"""``heal-swin data check ROOT``: validate a dataset root and summarise it (no torch).

Every problem names the file: missing calibration, label/image size mismatch, unknown label ids,
corrupt or truncated PNG/NPY, calibration that does not parse or does not match its image, split
entries without an image. Warnings (not problems: the exit status stays 0) name stray files in
the layout folders (names that are not ``NNNNN_CAM.<ext>``, other file types, sub-folders;
dot-files are not reported) and orphans (a label, depth map or calibration without an image),
and unknown label ids where the dataset card declares ``"unknown_label_ids": "ignore"``. The
summary lists images per camera, calibrations found (and how many distinct intrinsics), the
class histogram (pixels per class) and the depth statistics when present.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heal_swin.data.classes import IGNORE_INDEX, UNKNOWN_LABEL_POLICIES
from heal_swin.data.layout import (
    _EXT,
    _NAME_RE,
    SPLITS,
    DatasetError,
    DatasetIndex,
    FisheyeDatasetSpec,
    detect_spec,
    find_split_file,
    get_spec,
    read_calibration,
    read_card,
    read_depth,
    read_raw_label,
    scan,
)

__all__ = ["CheckReport", "check_dataset"]


@dataclass
class CheckReport:
    root: str
    spec: str
    dirs: dict[str, str | None]
    images: int = 0
    usable: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)
    calibrations: int = 0
    distinct_intrinsics: int = 0
    class_pixels: dict[str, int] = field(default_factory=dict)
    depth: dict[str, float] | None = None
    splits: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, max_problems: int = 50) -> str:
        lines = [f"dataset {self.root} ({self.spec})"]
        for k, v in self.dirs.items():
            lines.append(f"  {k:<12} {v if v else '-- not found'}")
        lines.append(f"images: {self.images} found, {self.usable} usable")
        lines.append(
            "per camera: " + (", ".join(f"{c or '?'} {n}" for c, n in self.per_camera.items()) or "none")
        )
        lines.append(
            f"calibrations: {self.calibrations} found, {self.distinct_intrinsics} distinct intrinsics"
        )
        for k, v in self.splits.items():
            lines.append(f"split {k}: {v}")
        if self.class_pixels:
            total = max(sum(self.class_pixels.values()), 1)
            lines.append("class histogram (pixels of usable samples):")
            for name, n in self.class_pixels.items():
                lines.append(f"  {name:<24} {n:>14,d}  {100 * n / total:6.2f} %")
        if self.depth:
            d = self.depth
            lines.append(
                f"depth: valid {100 * d['valid_fraction']:.1f} %, mean {d['mean']:.2f} m, max {d['max']:.1f} m"
            )
        lines += _listing("PROBLEMS", self.problems, max_problems) or ["no problems found"]
        lines += _listing("WARNINGS", self.warnings, max_problems)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            **self.__dict__,
            "problems": [list(p) for p in self.problems],
            "warnings": [list(w) for w in self.warnings],
            "ok": self.ok,
        }


def check_dataset(
    root: str | Path,
    spec: str | FisheyeDatasetSpec | None = "auto",
    cameras: Sequence[str] | None = None,
    level: str = "full",
    histogram: bool = True,
) -> CheckReport:
    """Validate every sample of ``root`` (``level`` ``quick`` or ``full``) and summarise it."""
    root = Path(root)
    if root.is_dir():
        spec = detect_spec(root) if spec is None or spec == "auto" else get_spec(spec)
        spec = _with_card_policy(root, spec)
    idx = scan(root, spec, split="all", cameras=cameras, validate=level, on_error="skip")
    report = CheckReport(
        root=str(root), spec=idx.spec.name, dirs={k: str(v) if v else None for k, v in idx.dirs.items()}
    )
    report.problems = list(idx.skipped)
    report.warnings = stray_files(idx, cameras)
    img_dir = idx.dirs["image"]
    report.images = sum(
        1 for p in img_dir.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")
    )
    report.usable = len(idx.samples)
    report.per_camera = idx.per_camera()
    calib_dir = idx.dirs.get("calibration")
    report.calibrations = sum(1 for p in calib_dir.glob("*.json")) if calib_dir else 0
    keys = set()
    for s in idx.samples:
        keys.add(read_calibration(s.calibration).intrinsics_key)
    report.distinct_intrinsics = len(keys)
    for sp in SPLITS:
        f = find_split_file(root, sp)
        report.splits[sp] = f"{f}" if f else "no file (a seeded split is used)"
    if histogram and idx.samples:

        def stats(s):
            hist = (
                np.bincount(read_raw_label(s.label).ravel(), minlength=256)
                if s.label
                else np.zeros(256, np.int64)
            )
            if s.depth and idx.spec.depth:
                d = read_depth(s.depth, idx.spec)
                fin = d[np.isfinite(d)]
                return hist, (float(fin.sum()), fin.size, d.size, float(fin.max(initial=0)))
            return hist, (0.0, 0, 0, 0.0)

        raw = np.zeros(256, np.int64)
        dsum, dn, dmax, dtot = 0.0, 0, 0.0, 0
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
            for hist, (s_, n_, t_, m_) in pool.map(stats, idx.samples):
                raw += hist
                dsum, dn, dtot, dmax = dsum + s_, dn + n_, dtot + t_, max(dmax, m_)
        table = idx.spec.classes
        cls = Counter()
        for rid in np.nonzero(raw)[0]:
            c = table.raw_to_class.get(int(rid))
            cls[table.names[c] if c is not None else f"unknown id {rid}"] += int(raw[rid])
        unknown = [int(r) for r in np.nonzero(raw)[0] if int(r) not in table.raw_to_class]
        if unknown and table.unknown_label_ids == "ignore":  # declared in the card: say so, once
            report.warnings.append((str(idx.dirs["label"]), (
                f"unknown label ids {unknown} in {int(raw[unknown].sum()):,} pixels: training ignores them "
                f"(label {IGNORE_INDEX}), as the dataset card's unknown_label_ids: ignore declares"
            )))  # fmt: skip
        report.class_pixels = {n: cls.get(n, 0) for n in table.names} | {
            k: v for k, v in cls.items() if k not in table.names
        }
        if dtot:
            report.depth = {"valid_fraction": dn / dtot, "mean": dsum / max(dn, 1), "max": dmax}
    return report


def _with_card_policy(root: Path, spec: FisheyeDatasetSpec) -> FisheyeDatasetSpec:
    """The spec with the root card's ``unknown_label_ids`` (``dataset_card.json``), if it has one."""
    card = read_card(root)
    if not card or "unknown_label_ids" not in card:
        return spec
    policy = card["unknown_label_ids"]
    if policy not in UNKNOWN_LABEL_POLICIES:
        raise DatasetError(
            f"{root / 'dataset_card.json'}: field 'unknown_label_ids': expected 'error' or 'ignore', got {policy!r}"
        )
    return dataclasses.replace(spec, classes=dataclasses.replace(spec.classes, unknown_label_ids=policy))


def stray_files(idx: DatasetIndex, cameras: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Warnings ``(path, why)`` for files in the layout folders that no sample uses.

    Stray: a name that is not ``NNNNN_CAM`` + the folder's extension, or a sub-folder. Orphan: a
    well-named label, depth map or calibration whose image does not exist. With ``cameras``, orphans
    of other cameras are not reported (they are not part of this check).
    """
    dirs = {k: d for k, d in idx.dirs.items() if d is not None}
    if "depth" in dirs and not idx.spec.depth:
        del dirs["depth"]  # not part of this dataset's layout
    img_dir = dirs["image"]
    images = {p.stem for p in img_dir.iterdir() if p.suffix.lower() == ".png"}
    layout_dirs = {d.resolve() for d in dirs.values()}
    want = {c.upper() for c in cameras} if cameras else None
    out: list[tuple[str, str]] = []
    for kind, d in dirs.items():
        ext = _EXT[kind]
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir():
                if p.resolve() not in layout_dirs:
                    out.append((str(p), f"stray folder in the {kind} folder (not read)"))
                continue
            if p.suffix.lower() != ext:
                out.append((str(p), f"stray file: the {kind} folder holds NNNNN_CAM{ext} files (not read)"))
                continue
            m = _NAME_RE.match(p.stem)
            if kind == "image":
                if not m:
                    out.append(
                        (str(p), f"stray name: expected NNNNN_CAM{ext} (loaded without a camera name)")
                    )
            elif p.stem in images:
                continue  # the file of an image (a badly named image is reported once, above)
            elif not m:
                out.append((str(p), f"stray name: expected NNNNN_CAM{ext} (not read)"))
            elif want is None or m.group(2).upper() in want:
                out.append((str(p), f"orphan {kind}: no image {img_dir / (p.stem + '.png')}"))
    return out


def _listing(title: str, items: list, limit: int) -> list[str]:
    """``TITLE (n):`` and the first ``limit`` ``path: why`` lines; nothing when ``items`` is empty."""
    if not items:
        return []
    lines = [f"{title} ({len(items)}):", *(f"  {p}: {why}" for p, why in items[:limit])]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return lines
