"""Atomic file output: write to a temporary file beside the target, then ``os.replace``.

A reader (or a resumed run) never sees a half-written file, whatever kills the writer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from heal_swin.errors import InputError

__all__ = [
    "ImageReadError",
    "atomic_open",
    "atomic_write_bytes",
    "read_image",
    "save_image",
    "save_json",
    "save_npy",
]


class ImageReadError(InputError):
    """An image file that is missing, corrupt or in an unsupported format."""


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would (e.g. a
        # non-root service container must be able to read exported models).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def save_json(path: str | Path, obj: Any) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write an image with OpenCV (BGR channel order), format from the suffix."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", np.asarray(image))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an image of shape {np.shape(image)}")
    atomic_write_bytes(path, buf.tobytes())


def read_image(path: str | Path, flags: int | None = None) -> np.ndarray:
    """Read an image with OpenCV (unchanged depth/channels by default); a clear error if unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if flags is None else flags) if data.size else None
    if img is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    return img
