"""Geometry: fisheye cameras, the HEALPix grid and the sampling maps between them (numpy + healpy + OpenCV, no torch)."""

from heal_swin.geometry.camera import CalibrationError, FisheyeCamera
from heal_swin.geometry.healpix import DEFAULT_BASE_PIXELS, GridError, HealpixGrid, face_coordinates
from heal_swin.geometry.projector import ImageSizeError, SphereProjector

__all__ = [
    "DEFAULT_BASE_PIXELS",
    "CalibrationError",
    "FisheyeCamera",
    "GridError",
    "HealpixGrid",
    "ImageSizeError",
    "SphereProjector",
    "face_coordinates",
]
