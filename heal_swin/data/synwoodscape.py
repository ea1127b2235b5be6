"""SynWoodScape (CARLA): 25 classes, the HEAL-SWIN merged variants, depth with 1000 = sky.

Same layout as WoodScape (:mod:`heal_swin.data.layout`), plus ``depth_maps/raw_data/*.npy``
(float32 metres; the value 1000 marks sky and is converted to ``inf`` at load time, see
:func:`heal_swin.data.layout.read_depth`). Calibrations name the translation
``"translation used in CARLA (CARLA reference)"``, which :class:`FisheyeCamera` reads.

Variants (``synwoodscape_spec(variant)`` / dataset name ``synwoodscape-<variant>``):

- ``None`` / ``all``: the 25 raw classes;
- ``large``: void, building, road line, road, sidewalk, four-wheeler vehicle, sky, ego-vehicle;
- ``large_plus_AD``: those plus pedestrian, traffic sign, traffic light, two-wheeler vehicle.

Every raw class not named in a variant maps to void (0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heal_swin.data.classes import SYNWOODSCAPE_CLASSES, SYNWOODSCAPE_MERGES, synwoodscape_table
from heal_swin.data.layout import DatasetIndex, scan, synwoodscape_spec

__all__ = [
    "CARLA_TRANSLATION_KEY",
    "SKY_DEPTH",
    "SYNWOODSCAPE_CLASSES",
    "SYNWOODSCAPE_MERGES",
    "scan_synwoodscape",
    "synwoodscape_spec",
    "synwoodscape_table",
]

SKY_DEPTH = 1000.0
CARLA_TRANSLATION_KEY = "translation used in CARLA (CARLA reference)"


def scan_synwoodscape(
    root: str | Path, variant: str | None = None, split: str = "all", **kwargs: Any
) -> DatasetIndex:
    """Index a SynWoodScape root (see :func:`heal_swin.data.layout.scan` for the arguments)."""
    return scan(root, synwoodscape_spec(variant), split=split, **kwargs)
