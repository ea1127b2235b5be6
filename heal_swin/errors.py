"""The suite's input-error base class.

Every error caused by bad *input* (a calibration file, an image, a config, a dataset folder, an
HTTP request) derives from ``InputError``; its message names the file/field and expected vs got.
The CLI prints these as one line with exit code 2, and the service maps them to 4xx responses.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input to the suite; the message says what, where, expected vs got."""
