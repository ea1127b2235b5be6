"""WoodScape fisheye camera: the radial-polynomial model and its exact inverse.

Camera frame is OpenCV's (x right, y down, z along the optical axis). A camera point (X, Y, Z)
maps to the pixel (origin at the centre of the top-left pixel)::

    chi = sqrt(X^2 + Y^2),  theta = atan2(chi, Z),  rho = k1 theta + k2 theta^2 + k3 theta^3 + k4 theta^4
    u = rho X / chi + cx_offset + W/2 - 0.5
    v = rho Y / chi * aspect_ratio + cy_offset + H/2 - 0.5

The extrinsics (quaternion scalar-last [qx, qy, qz, qw] + translation in metres) map camera
coordinates to the vehicle frame (ISO 8855: x forward, y left, z up).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, first_positive_root, in_range, number, vector

__all__ = ["FisheyeCamera", "CalibrationError", "quaternion_to_matrix", "matrix_to_quaternion"]

# SynWoodScape (CARLA) names the translation differently.
_TRANSLATION_KEYS = ("translation", "translation used in CARLA (CARLA reference)")
_INTRINSIC_NUMBERS = ("k1", "k2", "k3", "k4", "cx_offset", "cy_offset", "aspect_ratio", "width", "height")


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion given scalar-last ``[qx, qy, qz, qw]``."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Scalar-last unit quaternion ``[qx, qy, qz, qw]`` (qw >= 0) of a (3, 3) rotation matrix."""
    r = np.asarray(r, dtype=np.float64)
    # Shepperd's method: pick the largest diagonal term for numerical stability.
    tr = np.trace(r)
    cand = np.array([tr, r[0, 0], r[1, 1], r[2, 2]])
    i = int(np.argmax(cand))
    if i == 0:
        s = 2.0 * math.sqrt(1.0 + tr)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    elif i == 1:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif i == 2:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s]
    q = np.asarray(q)
    return q if q[3] >= 0 else -q


@dataclass(frozen=True)
class FisheyeCamera:
    """A WoodScape ``radial_poly`` fisheye camera.

    Attributes:
        k: (4,) polynomial coefficients k1..k4 (pixels per radian^i).
        cx_offset, cy_offset: principal point offset from the image centre, pixels.
        aspect_ratio: vertical / horizontal pixel scale.
        width, height: image size in pixels.
        quaternion: (4,) camera -> vehicle rotation, scalar-last, unit norm.
        translation: (3,) camera position in the vehicle frame, metres.
        name: camera name (``FV``, ``RV``, ``MVL``, ``MVR`` in WoodScape).
        source: where the calibration came from (used in error messages only).
    """

    k: tuple[float, float, float, float]
    cx_offset: float
    cy_offset: float
    aspect_ratio: float
    width: int
    height: int
    quaternion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    name: str = ""
    source: str = field(default="<camera>", compare=False)

    def __post_init__(self) -> None:
        # Ranges: see heal_swin.geometry.calibration (every bound is named in the error message).
        src = self.source
        ks = list(self.k) if isinstance(self.k, np.ndarray) and self.k.ndim == 1 else self.k
        if not isinstance(ks, (list, tuple)) or len(ks) != 4:
            raise CalibrationError(src, "intrinsic.k1..k4", "4 coefficients", self.k)
        k = (
            in_range(ks[0], src, "intrinsic.k1", 0.0, _lim.K1_MAX, "a positive number (pixels per radian)"),
            *(in_range(c, src, f"intrinsic.k{i + 2}", -_lim.K_MAX, _lim.K_MAX) for i, c in enumerate(ks[1:])),
        )
        if k[0] <= 0:
            raise CalibrationError(src, "intrinsic.k1", "a positive number (pixels per radian)", k[0])
        size = {}
        for name in ("width", "height"):
            val = in_range(getattr(self, name), src, f"intrinsic.{name}", 1, _lim.MAX_IMAGE_SIDE, "an integer")
            if not val.is_integer():
                raise CalibrationError(src, f"intrinsic.{name}", "a positive integer", getattr(self, name))
            size[name] = int(val)
        cx = in_range(self.cx_offset, src, "intrinsic.cx_offset", -size["width"], size["width"])
        cy = in_range(self.cy_offset, src, "intrinsic.cy_offset", -size["height"], size["height"])
        aspect = in_range(self.aspect_ratio, src, "intrinsic.aspect_ratio", _lim.MIN_ASPECT_RATIO, _lim.MAX_ASPECT_RATIO)
        q = np.asarray(vector(self.quaternion, 4, src, "extrinsic.quaternion"), dtype=np.float64)
        with np.errstate(over="ignore"):
            norm = float(np.linalg.norm(q))
        if not abs(norm - 1.0) <= 1e-2:
            raise CalibrationError(src, "extrinsic.quaternion", "a unit quaternion (norm 1)", f"norm {norm:.6g}")
        t = vector(self.translation, 3, src, "extrinsic.translation")
        lim_t = _lim.MAX_TRANSLATION_M
        for i, c in enumerate(t):
            in_range(c, src, f"extrinsic.translation[{i}]", -lim_t, lim_t, "metres")
        if not isinstance(self.name, str) or len(self.name) > _lim.MAX_NAME_LENGTH:
            raise CalibrationError(src, "name", f"a string of at most {_lim.MAX_NAME_LENGTH} characters", self.name)
        object.__setattr__(self, "cx_offset", cx)
        object.__setattr__(self, "cy_offset", cy)
        object.__setattr__(self, "aspect_ratio", aspect)
        object.__setattr__(self, "width", size["width"])
        object.__setattr__(self, "height", size["height"])
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "quaternion", tuple(float(c) for c in q / norm))
        object.__setattr__(self, "translation", tuple(t))
        # The polynomial must be increasing over every radius the image needs, or unproject is ambiguous.
        theta_mono = self.theta_monotonic
        rho_needed = self._max_image_radius()
        if self._rho(theta_mono) < rho_needed:
            raise CalibrationError(
                src,
                "intrinsic.k1..k4",
                f"a polynomial increasing up to the image corner radius {rho_needed:.1f} px",
                f"maximum {self._rho(theta_mono):.1f} px at theta {math.degrees(theta_mono):.1f} deg",
            )

    # -------------------------------------------------------------- loading
    @classmethod
    def from_json(cls, calib: str | Path | Mapping[str, Any]) -> "FisheyeCamera":
        """Read a WoodScape (or SynWoodScape) calibration from a JSON file path or a parsed dict.

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
            raise CalibrationError(source, "<file>", "an existing calibration JSON file", "no such file") from None
        except OSError as e:
            raise CalibrationError(source, "<file>", "a readable file", e.strerror or type(e).__name__) from None
        if len(data) > limit:
            raise CalibrationError(source, "<file>", f"at most {limit} bytes of JSON", "a larger file")
        return cls.from_json_text(data, source=source)

    @classmethod
    def from_json_text(cls, data: str | bytes, source: str = "<calibration>") -> "FisheyeCamera":
        """Parse calibration JSON text (a file's or an upload's bytes) within the limits."""
        return cls.from_dict(_lim.parse_calibration_json(data, source), source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<calibration dict>") -> "FisheyeCamera":
        """Build from the WoodScape calibration schema (see module docstring)."""
        if not isinstance(data, Mapping):
            raise CalibrationError(source, "<root>", "a JSON object", type(data).__name__)
        intr = _get(data, "intrinsic", Mapping, source, "an object")
        model = intr.get("model", None)
        if model is None:
            raise CalibrationError(source, "intrinsic.model", "'radial_poly'", "missing")
        if model != "radial_poly":
            raise CalibrationError(source, "intrinsic.model", "'radial_poly'", model)
        if "poly_order" in intr and number(intr["poly_order"], source, "intrinsic.poly_order") != 4:
            raise CalibrationError(source, "intrinsic.poly_order", "4", intr["poly_order"])
        vals = {name: number(_req(intr, name, source, "intrinsic"), source, f"intrinsic.{name}") for name in _INTRINSIC_NUMBERS}
        extr = _get(data, "extrinsic", Mapping, source, "an object")
        quat = vector(_req(extr, "quaternion", source, "extrinsic"), 4, source, "extrinsic.quaternion")
        tkey = next((key for key in _TRANSLATION_KEYS if key in extr), None)
        if tkey is None:
            raise CalibrationError(source, "extrinsic.translation", "a list of 3 numbers", "missing")
        trans = vector(extr[tkey], 3, source, f"extrinsic.{tkey}")
        name = data.get("name", "")
        return cls(
            k=(vals["k1"], vals["k2"], vals["k3"], vals["k4"]),
            cx_offset=vals["cx_offset"],
            cy_offset=vals["cy_offset"],
            aspect_ratio=vals["aspect_ratio"],
            width=vals["width"],
            height=vals["height"],
            quaternion=tuple(quat),
            translation=tuple(trans),
            name=name,
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The WoodScape calibration schema (round-trips through ``from_dict``)."""
        return {
            "extrinsic": {"quaternion": list(self.quaternion), "translation": list(self.translation)},
            "intrinsic": {
                "aspect_ratio": self.aspect_ratio,
                "cx_offset": self.cx_offset,
                "cy_offset": self.cy_offset,
                "height": float(self.height),
                "width": float(self.width),
                "k1": self.k[0],
                "k2": self.k[1],
                "k3": self.k[2],
                "k4": self.k[3],
                "model": "radial_poly",
                "poly_order": 4,
            },
            "name": self.name,
        }

    @property
    def intrinsics_key(self) -> str:
        """sha256 (hex, 16 chars) of everything that defines the pixel <-> ray mapping."""
        vals = (*self.k, self.cx_offset, self.cy_offset, self.aspect_ratio, self.width, self.height)
        return hashlib.sha256(repr(tuple(float(v) for v in vals)).encode()).hexdigest()[:16]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    # ------------------------------------------------------------ geometry
    def _rho(self, theta: np.ndarray | float) -> np.ndarray:
        k1, k2, k3, k4 = self.k
        return theta * (k1 + theta * (k2 + theta * (k3 + theta * k4)))

    def _drho(self, theta: np.ndarray | float) -> np.ndarray:
        k1, k2, k3, k4 = self.k
        return k1 + theta * (2 * k2 + theta * (3 * k3 + theta * 4 * k4))

    @property
    def theta_monotonic(self) -> float:
        """Largest incidence angle (radians, <= pi) up to which rho(theta) is strictly increasing."""
        k1, k2, k3, k4 = self.k
        # First positive root of rho'(theta), a cubic; computed once per camera, not per pixel.
        return first_positive_root((k1, 2 * k2, 3 * k3, 4 * k4), math.pi)

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
        return float(self._theta_of_radius(np.array([self._max_image_radius()]))[0])

    def project(self, rays: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` (u, v) of camera-frame directions or points ``(..., 3)``.

        Rays beyond ``theta_monotonic`` still get a (meaningless) pixel; check with ``sees``.
        """
        r = np.asarray(rays, dtype=np.float64)
        if r.shape[-1] != 3:
            raise ValueError(f"rays: expected shape (..., 3), got {r.shape}")
        X, Y, Z = r[..., 0], r[..., 1], r[..., 2]
        chi = np.hypot(X, Y)
        theta = np.arctan2(chi, Z)
        rho = self._rho(theta)
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
        return (
            (theta <= self.theta_monotonic)
            & (uv[..., 0] >= -0.5)
            & (uv[..., 0] < self.width - 0.5)
            & (uv[..., 1] >= -0.5)
            & (uv[..., 1] < self.height - 0.5)
        )

    def _theta_of_radius(self, rho: np.ndarray) -> np.ndarray:
        """Solve rho(theta) = rho exactly on [0, theta_monotonic]; NaN beyond the monotonic range.

        Vectorised Newton, started from a coarse sampling of the (monotonic) polynomial so that two
        or three steps reach machine precision; any element left unconverged is finished by
        bracketed Newton/bisection. The result is the root itself, not a table value.
        """
        rho = np.asarray(rho, dtype=np.float64)
        hi_theta = self.theta_monotonic
        samples = np.linspace(0.0, hi_theta, 257)
        theta = np.interp(rho, self._rho(samples), samples)
        for _ in range(8):
            step = (self._rho(theta) - rho) / self._drho(theta)
            theta = np.clip(theta - step, 0.0, hi_theta)
            if not np.max(np.abs(step), initial=0.0) > 1e-12:  # also stops on NaN input
                break
        residual = np.abs(self._rho(theta) - rho)
        slow = ~(residual <= 1e-9 * np.maximum(1.0, rho))
        if np.any(slow):
            theta[slow] = self._bracketed_solve(rho[slow], hi_theta)
        beyond = rho > self._rho(hi_theta) * (1 + 1e-12)
        return np.where(beyond, np.nan, theta)

    def _bracketed_solve(self, rho: np.ndarray, hi_theta: float) -> np.ndarray:
        lo = np.zeros_like(rho)
        hi = np.full_like(rho, hi_theta)
        theta = np.clip(rho / self.k[0], 0.0, hi_theta)
        for _ in range(200):
            f = self._rho(theta) - rho
            lo = np.where(f <= 0, theta, lo)
            hi = np.where(f >= 0, theta, hi)
            d = self._drho(theta)
            new = theta - f / np.where(d > 0, d, np.inf)
            new = np.where((new >= lo) & (new <= hi), new, 0.5 * (lo + hi))
            converged = np.all(np.abs(new - theta) <= 1e-15 * np.maximum(1.0, theta)) or np.all(hi - lo <= 1e-15)
            theta = new
            if converged:
                break
        return theta

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        """Unit camera-frame rays ``(..., 3)`` of pixel coordinates ``(..., 2)``.

        Exact inverse of ``project`` (Newton to machine precision). Pixels whose radius is beyond
        the monotonic range of the polynomial get NaN rays.
        """
        p = np.asarray(pixels, dtype=np.float64)
        if p.shape[-1] != 2:
            raise ValueError(f"pixels: expected shape (..., 2), got {p.shape}")
        x, y = self._centred(p)
        r = np.hypot(x, y)
        theta = self._theta_of_radius(r)
        s = np.sin(theta)
        safe = np.where(r > 0, r, 1.0)
        return np.stack([np.where(r > 0, s * x / safe, 0.0), np.where(r > 0, s * y / safe, 0.0), np.cos(theta)], axis=-1)

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
    def scaled(self, width: int, height: int) -> "FisheyeCamera":
        """The same lens for the image resized to ``width x height`` (e.g. with ``cv2.resize``).

        Pixel centres map as ``u' = (u + 0.5) * sx - 0.5``, so k and cx scale with sx, cy with sy and
        the aspect ratio with sy / sx.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"scaled: expected a positive size, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        return FisheyeCamera(
            k=tuple(c * sx for c in self.k),
            cx_offset=self.cx_offset * sx,
            cy_offset=self.cy_offset * sy,
            aspect_ratio=self.aspect_ratio * sy / sx,
            width=int(width),
            height=int(height),
            quaternion=self.quaternion,
            translation=self.translation,
            name=self.name,
            source=self.source,
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
