"""S2CNN (Cohen et al., ICLR 2018): rotation-equivariant spherical CNNs, export-ready.

Transforms are real matrix products against precomputed DFT and Wigner-d matrices (no FFT ops,
no complex dtype), so the models run unchanged on CPU, GPU and onnxruntime. Models take and
return HEALPix ``(B, C, N)`` tensors like HEAL-SWIN. Importing this package registers the
variants ``s2cnn_seg_tiny``, ``s2cnn_seg``, ``s2cnn_seg_paper``, ``s2cnn_depth_tiny``,
``s2cnn_depth``.
"""

from .layers import S2Convolution, SO3Convolution, SO3Integrate, SO3ToS2, s2_integrate, so3_integrate
from .models import S2CNNDense
from .resample import DHToHealpix, HealpixToDH, dh_to_healpix_map, healpix_to_dh_map
from .so3 import (
    dh_alphas,
    dh_betas,
    dh_weights,
    s2_equatorial_grid,
    s2_near_identity_grid,
    so3_equatorial_grid,
    so3_near_identity_grid,
    wigner_d,
    wigner_d_grid,
)
from .transforms import S2Analysis, S2Synthesis, SO3Analysis, SO3Synthesis, transform_sizes

__all__ = [
    "DHToHealpix",
    "HealpixToDH",
    "S2Analysis",
    "S2CNNDense",
    "S2Convolution",
    "S2Synthesis",
    "SO3Analysis",
    "SO3Convolution",
    "SO3Integrate",
    "SO3Synthesis",
    "SO3ToS2",
    "dh_alphas",
    "dh_betas",
    "dh_to_healpix_map",
    "dh_weights",
    "healpix_to_dh_map",
    "s2_equatorial_grid",
    "s2_integrate",
    "s2_near_identity_grid",
    "so3_equatorial_grid",
    "so3_integrate",
    "so3_near_identity_grid",
    "transform_sizes",
    "wigner_d",
    "wigner_d_grid",
]
