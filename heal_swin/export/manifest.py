"""Old import path of the manifest: it lives in :mod:`heal_swin.inference.manifest` (re-exported here)."""

from heal_swin.inference.manifest import *
from heal_swin.inference.manifest import __all__  # noqa: F401
