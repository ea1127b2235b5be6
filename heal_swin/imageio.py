"""PNG and JPEG headers without decoding: format, size, channels (the one header reader; no torch).

Used wherever a file or upload must be checked before it is decoded: the dataset scan
(``heal_swin.data.layout``: sizes against calibrations, truncation) and the service (reject
oversized or non-image uploads before OpenCV sees them)::

    head = image_header(data, "image")   # ImageHeader(format="png", width=1280, height=966, channels=3)

Errors derive from :class:`heal_swin.errors.InputError` and name the source: a file that is not a
PNG or JPEG raises :class:`UnsupportedImageError` (a service answers 415), a PNG/JPEG whose header
is broken raises :class:`ImageHeaderError` (422).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from heal_swin.errors import InputError

__all__ = [
    "JPEG_MAGIC",
    "PNG_MAGIC",
    "ImageHeader",
    "ImageHeaderError",
    "UnsupportedImageError",
    "image_format",
    "image_header",
    "png_complete",
    "read_image_header",
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> decoded channels (palette: 1 index)
_PNG_IEND = b"IEND\xaeB`\x82"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): not DHT C4, JPG C8, DAC CC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageHeaderError(InputError):
    """A PNG or JPEG whose header is missing, truncated or inconsistent."""


class UnsupportedImageError(ImageHeaderError):
    """Data that is neither PNG nor JPEG."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: ``format`` ``png`` or ``jpeg``, size in pixels, channels as decoded
    unchanged (PNG: 1 grey/palette, 2 grey+alpha, 3 RGB, 4 RGBA; JPEG: components), bit depth."""

    format: str
    width: int
    height: int
    channels: int
    bit_depth: int


def image_format(data: bytes) -> str | None:
    """``png``, ``jpeg`` or None, from the first bytes."""
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


def image_header(data: bytes, source: str = "image") -> ImageHeader:
    """The header of PNG/JPEG bytes (the whole file or its beginning); errors name ``source``."""
    kind = image_format(data)
    if kind is None:
        raise UnsupportedImageError(f"{source}: not a PNG or JPEG file (first bytes {bytes(data[:8])!r})")
    head = _png(data, source) if kind == "png" else _jpeg(data, source)
    if head.width <= 0 or head.height <= 0:
        raise ImageHeaderError(f"{source}: corrupt {kind.upper()} header (size {head.width}x{head.height})")
    return head


def _png(data: bytes, source: str) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageHeaderError(f"{source}: corrupt PNG header (no IHDR chunk)")
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != struct.unpack(">I", data[29:33])[0]:
        raise ImageHeaderError(f"{source}: corrupt PNG header (CRC mismatch)")
    if ctype not in _PNG_CHANNELS:
        raise ImageHeaderError(f"{source}: corrupt PNG header (colour type {ctype})")
    return ImageHeader("png", w, h, _PNG_CHANNELS[ctype], depth)


def _jpeg(data: bytes, source: str) -> ImageHeader:
    """Walk the marker segments to the first start-of-frame (its size and component count)."""
    i, n = 2, len(data)
    while i + 3 < n:
        if data[i] != 0xFF:
            i += 1  # entropy-coded bytes or padding between segments
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            break
        if marker in _SOF:
            if i + 10 > n:
                break
            depth, h, w, comps = data[i + 4], *struct.unpack(">HH", data[i + 5 : i + 9]), data[i + 9]
            return ImageHeader("jpeg", w, h, comps, depth)
        i += 2 + length
    raise ImageHeaderError(f"{source}: corrupt JPEG (no readable frame header)")


def read_image_header(path: str | Path, chunk: int = 1 << 16) -> ImageHeader:
    """The header of an image file; reads only as far as the header (JPEG: up to its frame header)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read(chunk)
        while True:
            try:
                return image_header(data, str(path))
            except UnsupportedImageError:
                raise
            except ImageHeaderError:
                more = f.read(len(data))  # a JPEG with large metadata segments: read further
                if not more:
                    raise
                data += more


def png_complete(path: str | Path) -> bool:
    """True if the file ends with PNG's IEND chunk (False for a truncated copy or download).

    One seek and a small read; a little trailing data after IEND is tolerated.
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1024))
        return _PNG_IEND in f.read()
