"""heal-swin: spherical vision for fisheye cameras."""

__version__ = "0.1.0"
