"""What one dataset in the WoodScape layout looks like: specs, folder names, sample records (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from heal_swin.data.classes import WOODSCAPE_CLASSES, ClassTable, synwoodscape_table

__all__ = [
    "DEFAULT_DIRS",
    "EXT",
    "SYNTHETIC",
    "WOODSCAPE",
    "DatasetError",
    "FisheyeDatasetSpec",
    "SampleRecord",
    "get_spec",
    "synwoodscape_spec",
]

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
EXT = {"image": ".png", "label": ".png", "rgb_label": ".png", "depth": ".npy", "calibration": ".json"}


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


@dataclass(frozen=True)
class SampleRecord:
    """Paths of one sample (strings: cheap to pickle into DataLoader workers)."""

    name: str  # NNNNN_CAM
    camera: str
    image: str
    label: str | None = None
    depth: str | None = None
    calibration: str | None = None
