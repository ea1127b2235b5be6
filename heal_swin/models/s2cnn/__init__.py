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
    "S2Analysis",
    "S2Synthesis",
    "SO3Analysis",
    "SO3Synthesis",
    "transform_sizes",
    "S2Convolution",
    "SO3Convolution",
    "SO3ToS2",
    "SO3Integrate",
    "so3_integrate",
    "s2_integrate",
    "HealpixToDH",
    "DHToHealpix",
    "healpix_to_dh_map",
    "dh_to_healpix_map",
    "S2CNNDense",
    "dh_betas",
    "dh_alphas",
    "dh_weights",
    "wigner_d",
    "wigner_d_grid",
    "s2_near_identity_grid",
    "s2_equatorial_grid",
    "so3_near_identity_grid",
    "so3_equatorial_grid",
]
