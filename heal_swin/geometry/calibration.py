"""The calibration file at the edge: size, nesting and value limits, and the field validators.

Everything that reads a calibration (``FisheyeCamera.from_json`` / ``from_dict``, the service's
uploads, ``heal-swin project``, ``heal-swin data check``) goes through here, so absurd but
well-typed input (integers too large for a float, kilometre-long literals, JSON nested a thousand
deep, coefficients of 1e300) is a :class:`CalibrationError` naming the source and the field, never
an exception from ``json`` or numpy.

Limits (a WoodScape calibration is ~600 bytes, nested 3 deep; the ranges are physically sensible
for any fisheye camera, with a wide margin):

=====================  ===========================================================
file / upload          at most ``MAX_CALIBRATION_BYTES`` (1 MiB) of UTF-8 JSON
nesting                at most ``MAX_JSON_DEPTH`` (32) levels of arrays/objects
width, height          integers 1 .. 16384 pixels
k1                     0 < k1 <= 1e6 (pixels per radian)
k2, k3, k4             abs(k_i) <= 1e6 (pixels per radian^i)
cx_offset, cy_offset   abs(offset) <= the image width (cx) / height (cy)
aspect_ratio           0.1 .. 10
model                  one of heal_swin.geometry.lens_models.LENS_MODELS (default radial_poly)
f                      0.01 <= f <= 1e6 (pixels; the other models' horizontal focal length)
kannala_brandt k1..k4  abs(k_i) <= 100 (dimensionless; also mei's k1, k2)
alpha                  0 .. 1 (ucm, eucm, double_sphere)
beta                   0 < beta <= 100 (eucm)
xi                     -1 .. 1 (double_sphere); 0 .. 10 (mei)
quaternion             4 finite numbers of norm 1 +- 0.01 (checked in ``FisheyeCamera``)
translation            abs(t_i) <= 10 km (camera position in the vehicle frame)
name                   a string of at most 256 characters
=====================  ===========================================================
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Any

import numpy as np

from heal_swin.errors import InputError

__all__ = [
    "DISTORTION_MAX",
    "EUCM_BETA_MAX",
    "F_MAX",
    "F_MIN",
    "K1_MAX",
    "K_MAX",
    "MAX_ASPECT_RATIO",
    "MAX_CALIBRATION_BYTES",
    "MAX_IMAGE_SIDE",
    "MAX_JSON_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_TRANSLATION_M",
    "MEI_XI_MAX",
    "MIN_ASPECT_RATIO",
    "CalibrationError",
    "describe",
    "parse_calibration_json",
]

MAX_CALIBRATION_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_IMAGE_SIDE = 16384
K1_MAX = 1e6
K_MAX = 1e6
MIN_ASPECT_RATIO, MAX_ASPECT_RATIO = 0.1, 10.0
MAX_TRANSLATION_M = 1e4
F_MIN, F_MAX = 0.01, 1e6
DISTORTION_MAX = 100.0
EUCM_BETA_MAX = 100.0
MEI_XI_MAX = 10.0
MAX_NAME_LENGTH = 256
# Integer literals longer than this are never a calibration value (and Python refuses to convert
# ones above 4300 digits anyway); they are kept as a placeholder so the field can be named.
_MAX_INT_DIGITS = 400

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 2, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CalibrationError(InputError):
    """An invalid calibration: names the source, the field, and what was expected vs got."""

    def __init__(self, source: str, field: str, expected: str, got: Any) -> None:
        self.source, self.field, self.expected, self.got = source, field, expected, got
        # One line whatever the input: control characters escaped, values abbreviated.
        src = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(source))
        super().__init__(f"{src}: field '{field}': expected {expected}, got {describe(got)}")


class _HugeInt:
    """Stands in for an integer literal too long to be a number of any calibration."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer literal of {self.digits} digits>"


def describe(value: Any) -> str:
    """A short, single-line repr of any value (huge ints, deep or long containers included)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # repr() of a big int is slow and fails above 4300 digits: give its size instead.
        return f"<integer of ~{int(value.bit_length() * math.log10(2)) + 1} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still reported
        text = f"<{type(value).__name__}>"
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= 200 else text[:197] + "..."


def _parse_int(text: str) -> int | _HugeInt:
    return int(text) if len(text) <= _MAX_INT_DIGITS else _HugeInt(len(text))


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON ``text`` (brackets inside strings not counted)."""
    stripped = _STRING.sub('""', text)
    b = np.frombuffer(stripped.encode("utf-8", "surrogatepass"), np.uint8)
    step = np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def parse_calibration_json(data: str | bytes, source: str) -> Any:
    """Parse calibration JSON text within the size and depth limits (any failure: CalibrationError)."""
    size = len(data)
    if isinstance(data, str) and size <= MAX_CALIBRATION_BYTES:  # a str's UTF-8 is at least len() bytes
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_CALIBRATION_BYTES:
        raise CalibrationError(
            source, "<file>", f"at most {MAX_CALIBRATION_BYTES} bytes of JSON", f"{size} bytes"
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CalibrationError(source, "<file>", "UTF-8 JSON text", "binary data") from None
    else:
        text = data.removeprefix("\ufeff")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CalibrationError(
            source, "<file>", f"JSON nested at most {MAX_JSON_DEPTH} deep", f"depth {depth}"
        )
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise CalibrationError(source, "<file>", "valid JSON", f"{e.msg} at line {e.lineno}") from None
    except (ValueError, RecursionError) as e:  # e.g. an unmatched surrogate; depth is checked above
        raise CalibrationError(source, "<file>", "valid JSON", f"{type(e).__name__}: {e}") from None


# --------------------------------------------------------------- fields
def number(val: Any, source: str, field: str) -> float:
    """A JSON number (not a bool; numpy scalars accepted from Python callers) that is a finite float."""
    if isinstance(val, np.number):
        val = val.item()
    if isinstance(val, _HugeInt):
        raise CalibrationError(source, field, "a finite number", val)
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise CalibrationError(source, field, "a number", val)
    if isinstance(val, int) and abs(val) > 1e308:  # float(val) would raise OverflowError
        raise CalibrationError(source, field, "a finite number", val)
    out = float(val)
    if not math.isfinite(out):
        raise CalibrationError(source, field, "a finite number", val)
    return out


def in_range(val: Any, source: str, field: str, lo: float, hi: float, what: str = "a number") -> float:
    """``number`` within ``[lo, hi]`` (the bounds are named in the message)."""
    out = number(val, source, field)
    if not lo <= out <= hi:
        raise CalibrationError(source, field, f"{what} in [{lo:g}, {hi:g}]", val)
    return out


def vector(val: Any, n: int, source: str, field: str) -> list[float]:
    """A list of ``n`` finite numbers (a tuple or 1-D array from Python callers)."""
    if isinstance(val, np.ndarray) and val.ndim == 1:
        val = list(val)
    if not isinstance(val, (list, tuple)) or len(val) != n:
        raise CalibrationError(source, field, f"a list of {n} numbers", val)
    return [number(c, source, f"{field}[{i}]") for i, c in enumerate(val)]


def first_positive_root(coeffs: tuple[float, ...], upper: float) -> float:
    """Smallest root in ``(0, upper]`` of the polynomial ``coeffs`` (lowest order first), or ``upper``.

    For finite coefficients this never raises: ``np.roots`` first (exact, and what cameras have
    always used), and when its companion matrix overflows (a tiny leading coefficient) a sign
    scan of the polynomial on a fine grid refined by bisection.
    """
    c = [float(v) for v in coeffs]
    if not any(c[1:]):
        return upper
    try:
        with np.errstate(all="ignore"):
            roots = np.roots(c[::-1])
            # A leading coefficient tiny next to the others (k2 = -2e-157) makes the companion
            # matrix lose the small roots (returned as 0 or as far-off complex pairs): keep the
            # answer only when every root found is one (a small residual against the terms' size).
            powers = np.abs(roots)[:, None] ** np.arange(len(c))
            terms = np.abs(np.asarray(c)) * powers
            residual = np.abs(np.polyval(c[::-1], roots))
            trusted = np.all(np.isfinite(terms)) and np.all(residual <= 1e-6 * terms.sum(1))
        if np.all(np.isfinite(roots)) and trusted:
            real = roots[np.abs(roots.imag) < 1e-12].real
            pos = real[real > 0]
            return float(min(pos.min(), upper)) if pos.size else upper
    except (np.linalg.LinAlgError, ValueError):
        pass
    return _sign_scan_root(c, upper)


def _sign_scan_root(c: list[float], upper: float) -> float:
    def f(t: np.ndarray | float) -> np.ndarray:
        out = np.zeros_like(np.asarray(t, dtype=np.float64))
        for coef in reversed(c):
            out = out * t + coef
        return out

    with np.errstate(all="ignore"):
        t = np.linspace(0.0, upper, 4097)
        v = f(t)
        sign0 = np.sign(v[0]) or 1.0
        crossed = np.nonzero(~(np.sign(v[1:]) == sign0))[0]
        if not crossed.size:
            return upper
        lo, hi = float(t[crossed[0]]), float(t[crossed[0] + 1])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.sign(f(mid)) == sign0:
                lo = mid
            else:
                hi = mid
        return hi
