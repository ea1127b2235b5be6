"""``heal-swin data check ROOT``: validate a dataset root and summarise it (no torch).

Every problem names the file: missing calibration, label/image size mismatch, unknown label ids,
corrupt PNG/NPY, calibration that does not parse or does not match its image, split entries
without an image. The summary lists images per camera, calibrations found (and how many distinct
intrinsics), the class histogram (pixels per class) and the depth statistics when present.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heal_swin.data.layout import (
    SPLITS,
    FisheyeDatasetSpec,
    find_split_file,
    read_calibration,
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
        if self.problems:
            lines.append(f"PROBLEMS ({len(self.problems)}):")
            for p, why in self.problems[:max_problems]:
                lines.append(f"  {p}: {why}")
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        else:
            lines.append("no problems found")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**self.__dict__, "problems": [list(p) for p in self.problems], "ok": self.ok}


def check_dataset(
    root: str | Path,
    spec: str | FisheyeDatasetSpec | None = "auto",
    cameras: Sequence[str] | None = None,
    level: str = "full",
    histogram: bool = True,
) -> CheckReport:
    """Validate every sample of ``root`` (``level`` ``quick`` or ``full``) and summarise it."""
    idx = scan(root, spec, split="all", cameras=cameras, validate=level, on_error="skip")
    root = Path(root)
    report = CheckReport(
        root=str(root), spec=idx.spec.name, dirs={k: str(v) if v else None for k, v in idx.dirs.items()}
    )
    report.problems = list(idx.skipped)
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
        report.class_pixels = {n: cls.get(n, 0) for n in table.names} | {
            k: v for k, v in cls.items() if k not in table.names
        }
        if dtot:
            report.depth = {"valid_fraction": dn / dtot, "mean": dsum / max(dn, 1), "max": dmax}
    return report
