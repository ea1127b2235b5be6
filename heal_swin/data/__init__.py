"""Datasets: WoodScape, SynWoodScape and the synthetic fisheye benchmark, flat or on the HEALPix sphere.

Modules: ``classes`` (class tables, IGNORE_INDEX, normalisation), ``layout`` (the shared WoodScape
folder layout: specs, scan, validation, readers), ``woodscape`` / ``synwoodscape`` (what is each
dataset's own), ``synthetic`` (the renderer), ``check`` (``heal-swin data check``), ``cli``;
torch only in ``datasets`` (FisheyeDataset) and ``transforms`` users. Importing this package does
not import torch: ``FisheyeDataset`` is loaded on first access.
"""

from heal_swin.data.classes import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, WOODSCAPE_CLASSES, ClassTable
from heal_swin.data.layout import (
    SYNTHETIC,
    WOODSCAPE,
    DatasetError,
    FisheyeDatasetSpec,
    get_spec,
    scan,
    synwoodscape_spec,
)

__all__ = [
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SYNTHETIC",
    "WOODSCAPE",
    "WOODSCAPE_CLASSES",
    "ClassTable",
    "DatasetError",
    "FisheyeDataset",
    "FisheyeDatasetSpec",
    "get_spec",
    "scan",
    "synwoodscape_spec",
]


def __getattr__(name: str):
    if name == "FisheyeDataset":
        from heal_swin.data.datasets import FisheyeDataset

        return FisheyeDataset
    raise AttributeError(f"module 'heal_swin.data' has no attribute {name!r}")
