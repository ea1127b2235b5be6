"""Absurd but well-typed calibrations: every one is a one-line CalibrationError naming the file and
field (never an exception from json or numpy), ``heal-swin project`` exits 2 with one line, and a
hypothesis fuzz of the parser finds nothing else."""

from __future__ import annotations

import copy
import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heal_swin.cli import main
from heal_swin.errors import InputError
from heal_swin.geometry import calibration as lim
from heal_swin.geometry.calibration import first_positive_root
from heal_swin.geometry.camera import CalibrationError, FisheyeCamera
from tests.conftest import WOODSCAPE_FV


def _intr(**kw) -> dict:
    d = copy.deepcopy(WOODSCAPE_FV)
    d["intrinsic"].update(kw)
    return d


def _fails(tmp_path, text: str | bytes, field: str) -> CalibrationError:
    path = tmp_path / "bad calib.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CalibrationError) as info:
        FisheyeCamera.from_json(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: field '{field}': expected ") and "\n" not in msg and len(msg) < 600, msg
    assert info.value.field == field
    return info.value


BIG = "1" * 5000  # an integer literal Python refuses to convert (> 4300 digits)


@pytest.mark.parametrize(
    "text, field, words",
    [
        (json.dumps(_intr(k1=1)).replace(": 1,", f": {BIG},", 1), "intrinsic.k1", "5000 digits"),
        (json.dumps(_intr(k1=10**400)), "intrinsic.k1", "finite"),
        (json.dumps(_intr(width=10**300)), "intrinsic.width", "16384"),
        (json.dumps(_intr(height=0)), "intrinsic.height", "[1, 16384]"),
        (json.dumps(_intr(width=1280.5)), "intrinsic.width", "integer"),
        (json.dumps(_intr(k4=1e300)), "intrinsic.k4", "1e+06"),
        (json.dumps(_intr(k2=-1e7)), "intrinsic.k2", "1e+06"),
        (json.dumps(_intr(k1=2e6)), "intrinsic.k1", "positive"),
        (json.dumps(_intr(aspect_ratio=1e-5)), "intrinsic.aspect_ratio", "[0.1, 10]"),
        (json.dumps(_intr(cx_offset=1e12)), "intrinsic.cx_offset", "[-1280, 1280]"),
        (json.dumps(_intr(cy_offset=float("inf"))), "intrinsic.cy_offset", "finite"),
        (json.dumps(_intr(k3=[[[[[[1]]]]]])), "intrinsic.k3", "a number"),
        (json.dumps({**WOODSCAPE_FV, "name": "x" * 10_000}), "name", "256"),
        (
            json.dumps(
                {**WOODSCAPE_FV, "extrinsic": {"quaternion": [1e308, 1e308, 0, 0], "translation": [0, 0, 0]}}
            ),
            "extrinsic.quaternion",
            "norm",
        ),
        (
            json.dumps(
                {**WOODSCAPE_FV, "extrinsic": {"quaternion": [0, 0, 0, 1], "translation": [1e9, 0, 0]}}
            ),
            "extrinsic.translation[0]",
            "metres",
        ),
        ("[" * 100_000 + "]" * 100_000, "<file>", "nested at most 32"),
        ('{"a": ' * 40 + "1" + "}" * 40, "<file>", "nested at most 32"),
        (json.dumps({**WOODSCAPE_FV, "pad": " " * (2 << 20)}), "<file>", "1048576 bytes"),
        (b"\x89PNG\r\n\x1a\n\x00\xff binary", "<file>", "UTF-8"),
        ("", "<file>", "valid JSON"),
        ("null", "<root>", "object"),
    ],
)
def test_absurd_values_are_named(tmp_path, text, field, words):
    e = _fails(tmp_path, text, field)
    assert words in str(e), str(e)
    assert isinstance(e, InputError)


def test_quoted_brackets_do_not_count_as_nesting_and_bom_is_accepted(tmp_path):
    d = copy.deepcopy(WOODSCAPE_FV)
    d["name"] = "[" * 100  # inside a string: not nesting
    path = tmp_path / "ok.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(d).encode())
    assert FisheyeCamera.from_json(path).name == "[" * 100
    assert lim.json_depth('{"a": [1, {"b": "]]]]"}]}') == 3


def test_python_callers_get_the_same_errors():
    with pytest.raises(CalibrationError, match="intrinsic.k1.*digits"):
        FisheyeCamera.from_dict(_intr(k1=10**5000))  # repr() of this int would raise ValueError
    with pytest.raises(CalibrationError, match="intrinsic.k1..k4"):
        FisheyeCamera(k=(1.0, 2.0), cx_offset=0, cy_offset=0, aspect_ratio=1, width=10, height=10)
    cam = FisheyeCamera(
        k=np.array([300.0, 0, 0, 0]),
        cx_offset=np.float32(1),
        cy_offset=0,
        aspect_ratio=1,
        width=np.int64(640),
        height=480,
    )
    assert cam.k == (300.0, 0.0, 0.0, 0.0) and cam.width == 640 and type(cam.width) is int


@pytest.mark.parametrize("k4", [1e-320, 5e-324, -5e-324, 1e-300, 1e6, -1e6])
def test_monotonicity_check_cannot_raise(k4):
    # A subnormal leading coefficient overflows np.roots' companion matrix.
    try:
        cam = FisheyeCamera.from_dict(_intr(k4=k4))
    except CalibrationError as e:
        assert e.field == "intrinsic.k1..k4" and "increasing" in e.expected
    else:
        assert 0 < cam.theta_monotonic <= math.pi and math.isfinite(cam.max_incidence_angle)


def test_root_fallback_agrees_with_np_roots():
    c = (339.749, 2 * -31.988, 3 * 48.275, 4 * -40.0)  # the k4 = -40 lens turns back at ~1.4 rad
    exact = first_positive_root(c, math.pi)
    assert exact < math.pi
    assert lim._sign_scan_root(list(c), math.pi) == pytest.approx(exact, abs=1e-12)
    assert first_positive_root((1.0, -1.0, 0.0, 1e-320), 10.0) == pytest.approx(1.0, abs=1e-12)
    assert first_positive_root((1.0, 0.0, 0.0, 0.0), math.pi) == math.pi


def test_root_with_a_negligible_leading_coefficient() -> None:
    """np.roots loses the small roots when the leading coefficient is ~1e-157 of the others
    (Hypothesis found it: Mei with k2 = -2e-157 got a NaN field of view); the answer stays exact."""
    k2 = -2.0469644569541987e-157
    assert first_positive_root((1.0, 0.0, -3.0, 0.0, 5 * k2), 1e8) == pytest.approx(
        1 / math.sqrt(3), rel=1e-12
    )
    calib = _model_calib("mei", f=1.0, xi=0.0, k1=-1.0, k2=k2)
    _check_clean(lambda: FisheyeCamera.from_dict(calib))
    # s_d = s (1 - s^2) turns at s = 1/sqrt(3), i.e. theta = atan(1/sqrt(3)) = 30 deg with xi = 0:
    # far short of the image corner at f = 1, so the calibration is refused, naming that angle.
    with pytest.raises(CalibrationError, match=r"stops increasing at theta 30\.0 deg"):
        FisheyeCamera.from_dict(calib)


def test_project_cli_absurd_calibration_is_one_line_exit_2(tmp_path, capsys):
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.zeros((966, 1280, 3), np.uint8))
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(_intr(k4=1e300)))
    rc = main(["project", str(img), "--calib", str(calib), "--nside", "8", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("heal-swin project: error: ") and str(calib) in err and "intrinsic.k4" in err
    calib.write_text("[" * 5000)
    assert main(["project", str(img), "--calib", str(calib), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------- fuzz
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from([0, -1, 1e308, -1e-320, 16384, 16385, 10**400, "radial_poly", 4]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


def _paths(d, prefix=()):
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _paths(v, (*prefix, i))


_FIELDS = list(_paths(WOODSCAPE_FV)) + [
    ("intrinsic", "extra"),
    ("extrinsic", "translation used in CARLA (CARLA reference)"),
]


def _check_clean(make):
    try:
        cam = make()
    except CalibrationError as e:
        assert "\n" not in str(e) and len(str(e)) < 1000
        return
    # A camera that was accepted works: the centre pixel round-trips, the corners are invertible.
    assert 1 <= cam.width <= lim.MAX_IMAGE_SIDE and 1 <= cam.height <= lim.MAX_IMAGE_SIDE
    ray = cam.unproject(
        np.array([[cam.width / 2 - 0.5 + cam.cx_offset, cam.height / 2 - 0.5 + cam.cy_offset]])
    )
    assert np.all(np.isfinite(ray)) and np.all(np.isfinite(cam.project(ray)))
    assert math.isfinite(cam.max_incidence_angle)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(_FIELDS), value=_json_values, drop=st.booleans())
def test_fuzz_any_json_value_in_any_field(field, value, drop):
    d = copy.deepcopy(WOODSCAPE_FV)
    if not field:
        d = value
    else:
        parent = d
        for key in field[:-1]:
            parent = parent[key]
        if drop and isinstance(parent, dict):
            parent.pop(field[-1], None)
        else:
            parent[field[-1]] = value
    _check_clean(lambda: FisheyeCamera.from_dict(d))
    try:
        text = json.dumps(d)
    except ValueError:  # an int json cannot write (> 4300 digits)
        return
    _check_clean(lambda: FisheyeCamera.from_json_text(text, "fuzz.json"))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_any_text(text):
    _check_clean(lambda: FisheyeCamera.from_json_text(text, "fuzz.json"))


@settings(max_examples=200, deadline=None)
@given(
    k=st.tuples(*[st.floats(-1e6, 1e6, allow_subnormal=True)] * 4),
    size=st.tuples(st.integers(1, 16384), st.integers(1, 16384)),
    aspect=st.floats(0.1, 10),
)
def test_fuzz_in_range_intrinsics(k, size, aspect):
    _check_clean(
        lambda: FisheyeCamera.from_dict(
            _intr(k1=k[0], k2=k[1], k3=k[2], k4=k[3], width=size[0], height=size[1], aspect_ratio=aspect)
        )
    )


# ------------------------------------------- the other lens models' fields
def _model_calib(model: str, **params) -> dict:
    d = copy.deepcopy(WOODSCAPE_FV)
    keep = {k: d["intrinsic"][k] for k in ("aspect_ratio", "cx_offset", "cy_offset", "width", "height")}
    d["intrinsic"] = {**keep, "model": model, **params}
    return d


_MODEL_TEMPLATES = {
    "kannala_brandt": {"f": 340.0, "k1": 0.01, "k2": -0.002, "k3": 0.001, "k4": -0.0001},
    "ucm": {"f": 280.0, "alpha": 0.55},
    "eucm": {"f": 280.0, "alpha": 0.55, "beta": 1.05},
    "double_sphere": {"f": 280.0, "xi": -0.1, "alpha": 0.55},
    "mei": {"f": 500.0, "xi": 0.9, "k1": -0.05, "k2": 0.01},
}
_MODEL_FIELDS = [(m, p) for m, t in _MODEL_TEMPLATES.items() for p in (*t, "model")]


def test_model_templates_are_valid():
    for model, params in _MODEL_TEMPLATES.items():
        assert FisheyeCamera.from_dict(_model_calib(model, **params)).model == model


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(_MODEL_FIELDS),
    value=_json_values | st.sampled_from(list(_MODEL_TEMPLATES)),
    drop=st.booleans(),
)
def test_fuzz_any_json_value_in_any_lens_field(field, value, drop):
    model, key = field
    d = _model_calib(model, **_MODEL_TEMPLATES[model])
    if drop:
        d["intrinsic"].pop(key)
    else:
        d["intrinsic"][key] = value
    _check_clean(lambda: FisheyeCamera.from_dict(d))
    try:
        text = json.dumps(d)
    except ValueError:
        return
    _check_clean(lambda: FisheyeCamera.from_json_text(text, "fuzz.json"))


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(list(_MODEL_TEMPLATES)),
    f=st.floats(-10, 1e6, allow_subnormal=True),
    p=st.tuples(*[st.floats(-200, 200, allow_subnormal=True)] * 4),
    size=st.tuples(st.integers(1, 16384), st.integers(1, 16384)),
    aspect=st.floats(0.1, 10),
)
def test_fuzz_in_range_lens_parameters(model, f, p, size, aspect):
    names = [n for n in _MODEL_TEMPLATES[model] if n != "f"]
    params = {"f": f, **{n: v for n, v in zip(names, p)}}
    _check_clean(
        lambda: FisheyeCamera.from_dict(
            {
                **_model_calib(model, **params),
                "intrinsic": {
                    **_model_calib(model, **params)["intrinsic"],
                    "width": size[0],
                    "height": size[1],
                    "aspect_ratio": aspect,
                },
            }
        )
    )
