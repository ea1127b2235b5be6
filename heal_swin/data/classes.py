"""Class tables of the supported datasets: ids, names, colours (BGR) and class merges.

No torch here: the synthetic generator and ``heal-swin data check`` use these tables too.

A :class:`ClassTable` is the label space a model sees. Raw label ids stored in a dataset's
``gtLabels`` PNGs are mapped to it with a lookup table (``lut``): identity for WoodScape, a merge
for SynWoodScape's ``large`` / ``large_plus_AD`` variants. Raw ids the table does not know map to
``IGNORE_INDEX`` in training (their pixels carry no supervision). ``heal-swin data check`` reports
them as errors unless the table (or the root's ``dataset_card.json``) says
``unknown_label_ids: "ignore"``, in which case they are a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SYNWOODSCAPE_CLASSES",
    "SYNWOODSCAPE_MERGES",
    "UNKNOWN_LABEL_POLICIES",
    "WOODSCAPE_CLASSES",
    "ClassTable",
    "synwoodscape_table",
]

#: Label value of pixels that carry no supervision (outside the image / the grid, unknown ids).
IGNORE_INDEX: int = 255
#: Values of ``ClassTable.unknown_label_ids`` / the dataset card field of that name.
UNKNOWN_LABEL_POLICIES: tuple[str, ...] = ("error", "ignore")
#: Input normalisation of RGB images scaled to [0, 1] (ImageNet statistics).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClassTable:
    """A label space.

    Attributes:
        name: short identifier (``woodscape``, ``synwoodscape``, ``synwoodscape-large``, ...).
        names: class names, index = class id.
        colors_bgr: one (B, G, R) colour per class (for ``rgbLabels`` and visualisation).
        raw_to_class: raw id in the label files -> class id. Raw ids that are not keys are unknown.
        raw_names: names of the raw ids (for reports); defaults to ``names``.
        unknown_label_ids: what raw ids outside ``raw_to_class`` are: ``"error"`` (the default: a
            label file containing one is a problem in ``heal-swin data check``) or ``"ignore"``
            (expected, e.g. a "don't care" id; a warning). Training maps them to ``IGNORE_INDEX``
            either way.
    """

    name: str
    names: tuple[str, ...]
    colors_bgr: tuple[tuple[int, int, int], ...]
    raw_to_class: Mapping[int, int] = field(default_factory=dict)
    raw_names: tuple[str, ...] = ()
    unknown_label_ids: str = "error"

    def __post_init__(self) -> None:
        if self.unknown_label_ids not in UNKNOWN_LABEL_POLICIES:
            raise ValueError(
                f"{self.name}: unknown_label_ids: expected 'error' or 'ignore', got {self.unknown_label_ids!r}"
            )
        if len(self.colors_bgr) != len(self.names):
            raise ValueError(f"{self.name}: {len(self.names)} names but {len(self.colors_bgr)} colours")
        if not self.raw_to_class:
            object.__setattr__(self, "raw_to_class", {i: i for i in range(len(self.names))})
        if not self.raw_names:
            object.__setattr__(self, "raw_names", self.names)
        bad = {k: v for k, v in self.raw_to_class.items() if not 0 <= v < len(self.names)}
        if bad:
            raise ValueError(f"{self.name}: merge targets out of range: {bad}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def known_raw_ids(self) -> np.ndarray:
        return np.array(sorted(self.raw_to_class), dtype=np.int64)

    def lut(self, unknown: int = IGNORE_INDEX) -> np.ndarray:
        """(256,) uint8 lookup table raw id -> class id (``unknown`` for ids not in the table)."""
        table = np.full(256, unknown, dtype=np.uint8)
        for raw, cls in self.raw_to_class.items():
            table[raw] = cls
        return table

    def map_labels(self, raw: np.ndarray) -> np.ndarray:
        """Raw uint8 label image -> class ids (uint8, unknown ids -> ``IGNORE_INDEX``)."""
        return self.lut()[np.asarray(raw, dtype=np.uint8)]

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) class ids -> (H, W, 3) uint8 BGR image (ignored/unknown pixels black)."""
        import cv2

        pal = np.zeros((1, 256, 3), dtype=np.uint8)
        pal[0, : self.num_classes] = np.asarray(self.colors_bgr, dtype=np.uint8)
        lab = np.ascontiguousarray(labels, dtype=np.uint8)
        return cv2.LUT(cv2.merge([lab, lab, lab]), pal)

    def to_card(self) -> dict:
        """The class table as a plain dict (what the dataset cards in ``data/`` contain)."""
        return {
            "name": self.name,
            "classes": [
                {"id": i, "name": n, "color_bgr": list(c)}
                for i, (n, c) in enumerate(zip(self.names, self.colors_bgr))
            ],
        }


# ------------------------------------------------------------------ WoodScape
# Official mapping (valeoai/WoodScape), colours are BGR.
WOODSCAPE_CLASSES = ClassTable(
    name="woodscape",
    names=(
        "void",
        "road",
        "lanemarks",
        "curb",
        "person",
        "rider",
        "vehicles",
        "bicycle",
        "motorcycle",
        "traffic_sign",
    ),
    colors_bgr=(
        (0, 0, 0),
        (255, 0, 255),
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 255),
        (255, 255, 0),
        (0, 255, 255),
        (128, 128, 255),
        (0, 128, 128),
    ),
)

# --------------------------------------------------------------- SynWoodScape
_SYN_NAMES = (
    "unlabeled", "building", "fence", "other", "pedestrian", "pole", "road line", "road", "sidewalk",
    "vegetation", "four-wheeler vehicle", "wall", "traffic sign", "sky", "ground", "bridge", "rail track",
    "guard rail", "traffic light", "water", "terrain", "two-wheeler vehicle", "static", "dynamic", "ego-vehicle",
)  # fmt: skip
# Colours: the CARLA/Cityscapes palette by class name (given RGB, stored here as BGR). The colours of
# "two-wheeler vehicle" (Cityscapes "bicycle") and "ego-vehicle" are our choice. Not verified against
# SynWoodScape's own rgbLabels: the loader never reads colours, only the single-channel ids.
_SYN_RGB = (
    (0, 0, 0), (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60), (153, 153, 153), (157, 234, 50),
    (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0), (70, 130, 180),
    (81, 0, 81), (150, 100, 100), (230, 150, 140), (180, 165, 180), (250, 170, 30), (45, 60, 150),
    (145, 170, 100), (119, 11, 32), (110, 190, 160), (170, 120, 50), (255, 255, 255),
)  # fmt: skip
SYNWOODSCAPE_CLASSES = ClassTable(
    name="synwoodscape", names=_SYN_NAMES, colors_bgr=tuple((b, g, r) for r, g, b in _SYN_RGB)
)

#: The merged label sets of the HEAL-SWIN paper: target class list, in order; every raw class
#: whose name is not listed maps to the first one (void).
SYNWOODSCAPE_MERGES: dict[str, tuple[str, ...]] = {
    "large": ("void", "building", "road line", "road", "sidewalk", "four-wheeler vehicle", "sky", "ego-vehicle"),
    "large_plus_AD": (
        "void", "building", "road line", "road", "sidewalk", "four-wheeler vehicle", "sky", "ego-vehicle",
        "pedestrian", "traffic sign", "traffic light", "two-wheeler vehicle",
    ),
}  # fmt: skip


def synwoodscape_table(variant: str | None = None) -> ClassTable:
    """SynWoodScape's 25 classes (``variant`` None / ``"all"``) or a merged variant of ``SYNWOODSCAPE_MERGES``."""
    if variant in (None, "all", "full", "synwoodscape"):
        return SYNWOODSCAPE_CLASSES
    if variant not in SYNWOODSCAPE_MERGES:
        raise ValueError(
            f"SynWoodScape variant: expected one of all, {', '.join(SYNWOODSCAPE_MERGES)}; got {variant!r}"
        )
    targets = SYNWOODSCAPE_MERGES[variant]
    index = {n: i for i, n in enumerate(targets)}
    raw_to_class = {raw: index.get(n, 0) for raw, n in enumerate(_SYN_NAMES)}
    syn_col = dict(zip(_SYN_NAMES, SYNWOODSCAPE_CLASSES.colors_bgr))
    colors = tuple(syn_col.get(n, (0, 0, 0)) for n in targets)
    return ClassTable(
        name=f"synwoodscape-{variant}",
        names=targets,
        colors_bgr=colors,
        raw_to_class=raw_to_class,
        raw_names=_SYN_NAMES,
    )


def table_from_card(card: Mapping) -> ClassTable:
    """A ClassTable from a dataset card's ``classes`` list (``{id, name, color_bgr}`` entries)."""
    entries = sorted(card["classes"], key=lambda e: int(e["id"]))
    ids = [int(e["id"]) for e in entries]
    if ids != list(range(len(ids))):
        raise ValueError(f"dataset card: class ids must be 0..{len(ids) - 1}, got {ids}")
    return ClassTable(
        name=str(card.get("name", "card")),
        names=tuple(str(e["name"]) for e in entries),
        colors_bgr=tuple(tuple(int(c) for c in e["color_bgr"]) for e in entries),
        unknown_label_ids=card.get("unknown_label_ids", "error"),
    )


def _names(seq: Sequence[str]) -> str:  # pragma: no cover - debugging helper
    return ", ".join(f"{i}:{n}" for i, n in enumerate(seq))
