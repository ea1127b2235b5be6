"""The service's error kinds, their HTTP statuses and the JSON error body ``{"error": ...}``.

Every :class:`~heal_swin.errors.InputError` maps to a 4xx (or 503 while warming up / when busy);
anything else is a bug, answered by the last-resort handler as a JSON 500 on a connection that
stays usable (:mod:`heal_swin.serve.middleware`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from heal_swin.errors import InputError
from heal_swin.imageio import UnsupportedImageError
from heal_swin.serve.repository import InvalidNameError, NotFoundError
from heal_swin.serve.schemas import ErrorResponse

__all__ = [
    "ERROR_RESPONSES",
    "BadRequestError",
    "BusyError",
    "NotReadyError",
    "PayloadTooLargeError",
    "UnsupportedImageError",
    "WrongTaskError",
    "error_response",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("heal_swin.serve")


class PayloadTooLargeError(InputError):
    """A request body, decoded image or tensor above the configured limits (413)."""


class NotReadyError(InputError):
    """The model is still loading / warming up (503)."""


class BusyError(InputError):
    """Every model-run slot is taken and the queue is full (503 with Retry-After)."""


class BadRequestError(InputError):
    """A malformed request the schema cannot describe: a wrong tensor datatype, a bad binary layout (400)."""


class WrongTaskError(InputError):
    """A model asked for a task it does not do, or a format it cannot give (422)."""


_STATUS: tuple[tuple[type, int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedImageError, 415),  # heal_swin.imageio's: neither PNG nor JPEG
    (NotFoundError, 404),
    (InvalidNameError, 400),
    (BadRequestError, 400),
    (NotReadyError, 503),
    (BusyError, 503),
    (InputError, 422),  # CalibrationError, ImageSizeError, ImageReadError, WrongTaskError, ...
)
RETRY_AFTER_S = 1  # what a 503 tells the client to wait


def status_of(e: InputError) -> int:
    return next(code for cls, code in _STATUS if isinstance(e, cls))


def error_response(
    status: int, message: str, detail: list | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S), **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid name or malformed request"},
    404: {"model": ErrorResponse, "description": "Unknown model or camera"},
    408: {"model": ErrorResponse, "description": "Request body not received in time"},
    413: {"model": ErrorResponse, "description": "Upload, image or tensor too large"},
    415: {"model": ErrorResponse, "description": "Not a PNG/JPEG image"},
    422: {"model": ErrorResponse, "description": "Invalid input (calibration, image size, fields)"},
    503: {
        "model": ErrorResponse,
        "description": "Not ready (warming up) or busy (queue full; see Retry-After)",
    },
}


def install_error_handlers(app: FastAPI, count_error: Any) -> None:
    """JSON error bodies for our errors, FastAPI's validation errors and Starlette's HTTP errors.

    ``count_error(kind)`` records the error in the metrics.
    """

    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError) -> JSONResponse:
        count_error(type(e).__name__)
        return error_response(status_of(e), str(e))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        parts = []
        for err in errs[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        count_error("validation")
        detail = [
            {
                "loc": list(map(str, err.get("loc", ()))),
                "msg": str(err.get("msg")),
                "type": str(err.get("type")),
            }
            for err in errs[:20]
        ]
        return error_response(422, "invalid request: " + "; ".join(parts), detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), headers=dict(e.headers or {}))
