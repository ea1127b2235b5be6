"""Old import path of the pre/post-processing: it lives in :mod:`heal_swin.inference.processing`."""

from heal_swin.inference.processing import *
from heal_swin.inference.processing import _PROJECTORS, __all__  # noqa: F401
