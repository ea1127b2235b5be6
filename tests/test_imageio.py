"""The one PNG/JPEG header reader against what OpenCV decodes, and its errors."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from heal_swin.imageio import (
    ImageHeaderError,
    UnsupportedImageError,
    image_format,
    image_header,
    png_complete,
    read_image_header,
)

RNG = np.random.default_rng(0)
IMAGES = {
    "grey": RNG.integers(0, 256, (37, 53), dtype=np.uint8),
    "bgr": RNG.integers(0, 256, (41, 29, 3), dtype=np.uint8),
    "bgra": RNG.integers(0, 256, (8, 300, 4), dtype=np.uint8),
    "grey16": RNG.integers(0, 65536, (19, 23), dtype=np.uint16),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_png_header_matches_the_decoded_image(name):
    img = IMAGES[name]
    data = cv2.imencode(".png", img)[1].tobytes()
    head = image_header(data)
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (head.format, head.height, head.width) == ("png", *dec.shape[:2])
    assert head.channels == (dec.shape[2] if dec.ndim == 3 else 1)
    assert head.bit_depth == 8 * dec.dtype.itemsize


@pytest.mark.parametrize("name", ["grey", "bgr"])
@pytest.mark.parametrize("progressive", [0, 1])
def test_jpeg_header_matches_the_decoded_image(name, progressive):
    img = IMAGES[name]
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])[1].tobytes()
    head = image_header(data)
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (head.format, head.height, head.width, head.bit_depth) == ("jpeg", *dec.shape[:2], 8)
    assert head.channels == (dec.shape[2] if dec.ndim == 3 else 1)


def test_jpeg_frame_header_after_large_metadata(tmp_path):
    data = cv2.imencode(".jpg", IMAGES["bgr"])[1].tobytes()
    app = b"\xff\xe1" + struct.pack(">H", 65535) + bytes(65533)  # a maximal APP1 segment, twice
    big = data[:2] + app + app + data[2:]
    assert cv2.imdecode(np.frombuffer(big, np.uint8), cv2.IMREAD_COLOR).shape == (41, 29, 3)
    path = tmp_path / "big.jpg"
    path.write_bytes(big)
    head = read_image_header(path, chunk=4096)  # reads further than the first chunk
    assert (head.width, head.height) == (29, 41)


def test_errors_name_the_source_and_kind(tmp_path):
    png = cv2.imencode(".png", IMAGES["bgr"])[1].tobytes()
    assert image_format(png) == "png" and image_format(b"GIF89a") is None
    with pytest.raises(UnsupportedImageError, match=r"upload: not a PNG or JPEG file \(first bytes b'GIF89a"):
        image_header(b"GIF89a....", "upload")
    bad_crc = png[:29] + bytes(4) + png[33:]
    with pytest.raises(ImageHeaderError, match="a.png: corrupt PNG header \\(CRC mismatch\\)"):
        image_header(bad_crc, "a.png")
    with pytest.raises(ImageHeaderError, match="no IHDR"):
        image_header(png[:20])
    zero = bytearray(png)
    zero[16:20] = bytes(4)
    zero[29:33] = struct.pack(">I", zlib.crc32(bytes(zero[12:29])) & 0xFFFFFFFF)
    with pytest.raises(ImageHeaderError, match="size 0x41"):
        image_header(bytes(zero))
    jpg = cv2.imencode(".jpg", IMAGES["grey"])[1].tobytes()
    with pytest.raises(ImageHeaderError, match="corrupt JPEG"):
        image_header(jpg[:10])
    path = tmp_path / "t.jpg"
    path.write_bytes(jpg[:10])
    with pytest.raises(ImageHeaderError, match=str(path)):
        read_image_header(path)


def test_png_complete(tmp_path):
    png = cv2.imencode(".png", IMAGES["grey"])[1].tobytes()
    whole, cut = tmp_path / "whole.png", tmp_path / "cut.png"
    whole.write_bytes(png + b"trailing")
    cut.write_bytes(png[:-20])
    assert png_complete(whole) and not png_complete(cut)
