"""Fisheye camera: a radially symmetric lens model, the principal point, and its exact inverse.

Camera frame is OpenCV's (x right, y down, z along the optical axis). A camera point (X, Y, Z)
maps to the pixel (origin at the centre of the top-left pixel)::

    chi = sqrt(X^2 + Y^2),  theta = atan2(chi, Z),  rho = rho(theta)   (the lens model, in pixels)
    u = rho X / chi + cx_offset + W/2 - 0.5
    v = rho Y / chi * aspect_ratio + cy_offset + H/2 - 0.5

WoodScape's ``radial_poly`` (rho = k1 theta + ... + k4 theta^4) is the default model; OpenCV fisheye
(Kannala-Brandt), UCM, EUCM, double sphere and Mei are in ``heal_swin.geometry.lens_models``. For
those, ``rho = f * r(theta)`` with ``f = fx``, ``aspect_ratio = fy / fx`` and
``cx_offset = cx - (W/2 - 0.5)`` (OpenCV's principal point, pixel centres at integers).

The extrinsics (quaternion scalar-last [qx, qy, qz, qw] + translation in metres) map camera
coordinates to the vehicle frame (ISO 8855: x forward, y left, z up).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, in_range, number, vector
from heal_swin.geometry.lens_models import LENS_MODELS, LensModel, RadialPoly, make_lens
from heal_swin.geometry.rotations import matrix_to_quaternion, quaternion_to_matrix

__all__ = ["CalibrationError", "FisheyeCamera", "matrix_to_quaternion", "quaternion_to_matrix"]

# SynWoodScape (CARLA) names the translation differently.
_TRANSLATION_KEYS = ("translation", "translation used in CARLA (CARLA reference)")
_PIXEL_FIELDS = ("cx_offset", "cy_offset", "aspect_ratio", "width", "height")


@dataclass(frozen=True)
class FisheyeCamera:
    """A fisheye camera: lens model, principal point, image size and extrinsics.

    Attributes:
        k: the lens model's parameters in the order of ``LENS_MODELS[model].PARAMS``; for the default
            ``radial_poly`` the coefficients k1..k4 (pixels per radian^i).
        cx_offset, cy_offset: principal point offset from the image centre, pixels.
        aspect_ratio: vertical / horizontal pixel scale.
        width, height: image size in pixels.
        quaternion: (4,) camera -> vehicle rotation, scalar-last, unit norm.
        translation: (3,) camera position in the vehicle frame, metres.
        name: camera name (``FV``, ``RV``, ``MVL``, ``MVR`` in WoodScape).
        source: where the calibration came from (used in error messages only).
        model: lens model name (keyword only): radial_poly, kannala_brandt, ucm, eucm, double_sphere, mei.
    """

    k: tuple[float, ...]
    cx_offset: float
    cy_offset: float
    aspect_ratio: float
    width: int
    height: int
    quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    name: str = ""
    source: str = field(default="<camera>", compare=False)
    model: str = field(default="radial_poly", kw_only=True)

    def __post_init__(self) -> None:
        # Ranges: see heal_swin.geometry.calibration (every bound is named in the error message).
        src = self.source
        lens = make_lens(self.model, self.k, src)
        size = {}
        for name in ("width", "height"):
            val = in_range(
                getattr(self, name), src, f"intrinsic.{name}", 1, _lim.MAX_IMAGE_SIDE, "an integer"
            )
            if not val.is_integer():
                raise CalibrationError(src, f"intrinsic.{name}", "a positive integer", getattr(self, name))
            size[name] = int(val)
        cx = in_range(self.cx_offset, src, "intrinsic.cx_offset", -size["width"], size["width"])
        cy = in_range(self.cy_offset, src, "intrinsic.cy_offset", -size["height"], size["height"])
        aspect = in_range(
            self.aspect_ratio, src, "intrinsic.aspect_ratio", _lim.MIN_ASPECT_RATIO, _lim.MAX_ASPECT_RATIO
        )
        q = np.asarray(vector(self.quaternion, 4, src, "extrinsic.quaternion"), dtype=np.float64)
        with np.errstate(over="ignore"):
            norm = float(np.linalg.norm(q))
        if not abs(norm - 1.0) <= 1e-2:
            raise CalibrationError(
                src, "extrinsic.quaternion", "a unit quaternion (norm 1)", f"norm {norm:.6g}"
            )
        t = vector(self.translation, 3, src, "extrinsic.translation")
        lim_t = _lim.MAX_TRANSLATION_M
        for i, c in enumerate(t):
            in_range(c, src, f"extrinsic.translation[{i}]", -lim_t, lim_t, "metres")
        if not isinstance(self.name, str) or len(self.name) > _lim.MAX_NAME_LENGTH:
            raise CalibrationError(
                src, "name", f"a string of at most {_lim.MAX_NAME_LENGTH} characters", self.name
            )
        object.__setattr__(self, "cx_offset", cx)
        object.__setattr__(self, "cy_offset", cy)
        object.__setattr__(self, "aspect_ratio", aspect)
        object.__setattr__(self, "width", size["width"])
        object.__setattr__(self, "height", size["height"])
        object.__setattr__(self, "k", lens.values)
        object.__setattr__(self, "quaternion", tuple(float(c) for c in q / norm))
        object.__setattr__(self, "translation", tuple(t))
        object.__setattr__(self, "_lens", lens)  # not a field: derived from (model, k)
        self._check_covers_image()

    def _check_covers_image(self) -> None:
        # rho must be increasing and defined over every radius the image needs, or unproject is ambiguous.
        lens, needed = self._lens, self._max_image_radius()
        rho_max, theta_max = lens.rho_max, math.degrees(lens.theta_max)
        if rho_max >= needed:
            return
        if isinstance(lens, RadialPoly):
            raise CalibrationError(
                self.source,
                "intrinsic.k1..k4",
                f"a polynomial increasing up to the image corner radius {needed:.1f} px",
                f"maximum {rho_max:.1f} px at theta {theta_max:.1f} deg",
            )
        what, why = (
            ("field of view covers", "field of view ends")
            if lens.limited_by_fov
            else ("rho(theta) increases up to", "rho(theta) stops increasing")
        )
        got = f"{why} at theta {theta_max:.1f} deg ({rho_max:.1f} px)"
        if lens.theta_max >= math.pi * (1 - 1e-12):
            got = f"theta reaches 180 deg at {rho_max:.1f} px"
        raise CalibrationError(
            self.source,
            lens.RANGE_FIELD,
            f"a {self.model} lens whose {what} the image corner radius {needed:.1f} px",
            got,
        )

    @property
    def lens(self) -> LensModel:
        """The lens model (radial profile rho(theta) in pixels, its range and inverse)."""
        return self._lens  # type: ignore[attr-defined]

    # -------------------------------------------------------------- loading
    @classmethod
    def from_focal(
        cls,
        model: str,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        distortion: tuple[float, ...] = (),
        **kw: Any,
    ) -> FisheyeCamera:
        """A camera from OpenCV-style intrinsics (pixels; cx, cy with pixel centres at integers).

        ``distortion`` are the model's parameters after ``f`` (e.g. k1..k4 for kannala_brandt, alpha
        for ucm, xi and alpha for double_sphere); ``kw`` the extrinsics, name and source.
        """
        src = kw.get("source", "<camera>")
        fx = in_range(fx, src, "fx", _lim.F_MIN, _lim.F_MAX, "a focal length (pixels)")
        fy = in_range(fy, src, "fy", _lim.F_MIN, _lim.F_MAX, "a focal length (pixels)")
        cx = number(cx, src, "cx") - (number(width, src, "width") / 2 - 0.5)
        cy = number(cy, src, "cy") - (number(height, src, "height") / 2 - 0.5)
        return cls((fx, *distortion), cx, cy, fy / fx, width, height, model=model, **kw)

    @property
    def principal_point(self) -> tuple[float, float]:
        """(cx, cy) in pixels, OpenCV's convention (the centre of the top-left pixel is (0, 0))."""
        return self.cx_offset + self.width / 2 - 0.5, self.cy_offset + self.height / 2 - 0.5

    @classmethod
    def from_json(cls, calib: str | Path | Mapping[str, Any]) -> FisheyeCamera:
        """Read a calibration (WoodScape, SynWoodScape or any lens model here) from a JSON file path or dict.

        Files are limited in size and nesting (``heal_swin.geometry.calibration``); every problem
        is a :class:`CalibrationError` naming the file and the field.
        """
        if isinstance(calib, Mapping):
            return cls.from_dict(calib)
        source = str(calib)
        limit = _lim.MAX_CALIBRATION_BYTES
        try:
            with open(calib, "rb") as f:
                data = f.read(limit + 1)  # never read a huge file whole
        except FileNotFoundError:
            raise CalibrationError(
                source, "<file>", "an existing calibration JSON file", "no such file"
            ) from None
        except OSError as e:
            raise CalibrationError(
                source, "<file>", "a readable file", e.strerror or type(e).__name__
            ) from None
        if len(data) > limit:
            raise CalibrationError(source, "<file>", f"at most {limit} bytes of JSON", "a larger file")
        return cls.from_json_text(data, source=source)

    @classmethod
    def from_json_text(cls, data: str | bytes, source: str = "<calibration>") -> FisheyeCamera:
        """Parse calibration JSON text (a file's or an upload's bytes) within the limits."""
        return cls.from_dict(_lim.parse_calibration_json(data, source), source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<calibration dict>") -> FisheyeCamera:
        """Build from the calibration schema: WoodScape's, with ``intrinsic.model`` any of ``LENS_MODELS``
        and that model's parameters as ``intrinsic`` fields (see ``to_dict``)."""
        if not isinstance(data, Mapping):
            raise CalibrationError(source, "<root>", "a JSON object", type(data).__name__)
        intr = _get(data, "intrinsic", Mapping, source, "an object")
        model = intr.get("model", None)
        if not isinstance(model, str) or model not in LENS_MODELS:
            expected = f"one of {', '.join(map(repr, LENS_MODELS))}"
            raise CalibrationError(source, "intrinsic.model", expected, "missing" if model is None else model)
        poly_order = intr.get("poly_order", 4) if model == "radial_poly" else 4
        if number(poly_order, source, "intrinsic.poly_order") != 4:
            raise CalibrationError(source, "intrinsic.poly_order", "4", intr["poly_order"])
        params = tuple(
            number(_req(intr, p, source, "intrinsic"), source, f"intrinsic.{p}")
            for p in LENS_MODELS[model].PARAMS
        )
        vals = {
            name: number(_req(intr, name, source, "intrinsic"), source, f"intrinsic.{name}")
            for name in _PIXEL_FIELDS
        }
        extr = _get(data, "extrinsic", Mapping, source, "an object")
        quat = vector(_req(extr, "quaternion", source, "extrinsic"), 4, source, "extrinsic.quaternion")
        tkey = next((key for key in _TRANSLATION_KEYS if key in extr), None)
        if tkey is None:
            raise CalibrationError(source, "extrinsic.translation", "a list of 3 numbers", "missing")
        trans = vector(extr[tkey], 3, source, f"extrinsic.{tkey}")
        return cls(
            k=params,
            **vals,
            quaternion=tuple(quat),
            translation=tuple(trans),
            name=data.get("name", ""),
            source=source,
            model=model,
        )

    def to_dict(self) -> dict[str, Any]:
        """The calibration schema (round-trips through ``from_dict``); WoodScape's for radial_poly."""
        intr: dict[str, Any] = {
            "aspect_ratio": self.aspect_ratio,
            "cx_offset": self.cx_offset,
            "cy_offset": self.cy_offset,
            "height": float(self.height),
            "width": float(self.width),
            **self.lens.as_dict(),
            "model": self.model,
        }
        if self.model == "radial_poly":
            intr["poly_order"] = 4
        return {
            "extrinsic": {"quaternion": list(self.quaternion), "translation": list(self.translation)},
            "intrinsic": dict(sorted(intr.items())),
            "name": self.name,
        }

    @property
    def intrinsics_key(self) -> str:
        """sha256 (hex, 16 chars) of everything that defines the pixel <-> ray mapping."""
        vals = (*self.k, self.cx_offset, self.cy_offset, self.aspect_ratio, self.width, self.height)
        text = repr(tuple(float(v) for v in vals))
        if self.model != "radial_poly":  # radial_poly keys are unchanged from before the other models
            text = f"{self.model}|{text}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    # ------------------------------------------------------------ geometry
    @property
    def theta_monotonic(self) -> float:
        """Largest incidence angle (radians, <= pi) up to which rho(theta) is strictly increasing and defined."""
        return self.lens.theta_max

    def _centred(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(pixels, dtype=np.float64)
        x = p[..., 0] - (self.cx_offset + self.width / 2 - 0.5)
        y = (p[..., 1] - (self.cy_offset + self.height / 2 - 0.5)) / self.aspect_ratio
        return x, y

    def _max_image_radius(self) -> float:
        # The outer edges of the corner pixels: the whole image must be invertible.
        w, h = self.width, self.height
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
        x, y = self._centred(corners)
        return float(np.hypot(x, y).max())

    @property
    def max_incidence_angle(self) -> float:
        """Largest angle (radians) between the optical axis and a ray seen by the image (its corners)."""
        return float(self.lens.theta_of_rho(np.array([self._max_image_radius()]))[0])

    def project(self, rays: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` (u, v) of camera-frame directions or points ``(..., 3)``.

        Rays beyond ``theta_monotonic`` still get a (meaningless, possibly non-finite) pixel; check with ``sees``.
        """
        r = np.asarray(rays, dtype=np.float64)
        if r.shape[-1] != 3:
            raise ValueError(f"rays: expected shape (..., 3), got {r.shape}")
        X, Y, Z = r[..., 0], r[..., 1], r[..., 2]
        chi = np.hypot(X, Y)
        theta = np.arctan2(chi, Z)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = self.lens.rho(theta)
            safe = np.where(chi > 0, chi, 1.0)
            scale = np.where(chi > 0, rho / safe, 0.0)
        u = scale * X + self.cx_offset + self.width / 2 - 0.5
        v = scale * Y * self.aspect_ratio + self.cy_offset + self.height / 2 - 0.5
        return np.stack([u, v], axis=-1)

    def sees(self, rays: np.ndarray) -> np.ndarray:
        """Boolean ``(...)``: the ray lands inside the image (pixel footprint) within the model's range."""
        r = np.asarray(rays, dtype=np.float64)
        theta = np.arctan2(np.hypot(r[..., 0], r[..., 1]), r[..., 2])
        uv = self.project(r)
        with np.errstate(invalid="ignore"):
            return (
                (theta < self.theta_monotonic)
                & (uv[..., 0] >= -0.5)
                & (uv[..., 0] < self.width - 0.5)
                & (uv[..., 1] >= -0.5)
                & (uv[..., 1] < self.height - 0.5)
            )

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        """Unit camera-frame rays ``(..., 3)`` of pixel coordinates ``(..., 2)``.

        Exact inverse of ``project`` (closed form or Newton to machine precision). Pixels whose
        radius is beyond the range of the lens model get NaN rays.
        """
        p = np.asarray(pixels, dtype=np.float64)
        if p.shape[-1] != 2:
            raise ValueError(f"pixels: expected shape (..., 2), got {p.shape}")
        x, y = self._centred(p)
        r = np.hypot(x, y)
        theta = self.lens.theta_of_rho(r)
        s = np.sin(theta)
        safe = np.where(r > 0, r, 1.0)
        return np.stack(
            [np.where(r > 0, s * x / safe, 0.0), np.where(r > 0, s * y / safe, 0.0), np.cos(theta)], axis=-1
        )

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) unit rays of every pixel centre of the image."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return self.unproject(np.stack([u, v], axis=-1))

    # ----------------------------------------------------------- extrinsics
    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) camera -> vehicle rotation matrix."""
        return quaternion_to_matrix(np.asarray(self.quaternion))

    def to_vehicle(self, points: np.ndarray, *, directions: bool = False) -> np.ndarray:
        """Camera-frame points ``(..., 3)`` (metres) to the vehicle frame; ``directions`` skips translation."""
        p = np.asarray(points, dtype=np.float64) @ self.rotation.T
        return p if directions else p + np.asarray(self.translation)

    def from_vehicle(self, points: np.ndarray, *, directions: bool = False) -> np.ndarray:
        """Vehicle-frame points ``(..., 3)`` to the camera frame; ``directions`` skips translation."""
        p = np.asarray(points, dtype=np.float64)
        if not directions:
            p = p - np.asarray(self.translation)
        return p @ self.rotation

    # -------------------------------------------------------------- resizing
    def scaled(self, width: int, height: int) -> FisheyeCamera:
        """The same lens for the image resized to ``width x height`` (e.g. with ``cv2.resize``).

        Pixel centres map as ``u' = (u + 0.5) * sx - 0.5``, so the lens's pixel parameters (all of
        radial_poly's k, the others' f) and cx scale with sx, cy with sy and the aspect ratio with sy / sx.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"scaled: expected a positive size, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        return FisheyeCamera(
            k=self.lens.scaled(sx),
            cx_offset=self.cx_offset * sx,
            cy_offset=self.cy_offset * sy,
            aspect_ratio=self.aspect_ratio * sy / sx,
            width=int(width),
            height=int(height),
            quaternion=self.quaternion,
            translation=self.translation,
            name=self.name,
            source=self.source,
            model=self.model,
        )


# --------------------------------------------------------------- validation
def _req(obj: Mapping[str, Any], key: str, source: str, parent: str) -> Any:
    if key not in obj:
        raise CalibrationError(source, f"{parent}.{key}", "a value", "missing")
    return obj[key]


def _get(obj: Mapping[str, Any], key: str, kind: type, source: str, expected: str) -> Any:
    if key not in obj:
        raise CalibrationError(source, key, expected, "missing")
    val = obj[key]
    if not isinstance(val, kind):
        raise CalibrationError(source, key, expected, type(val).__name__)
    return val
