"""The HTTP inference service: ``create_app(config)`` (FastAPI + onnxruntime; no torch).

Endpoints:
    POST /v1/segment, /v1/depth        fisheye image + calibration -> mask / overlay / depth / HEALPix JSON
    GET  /v1/models                    models, registered cameras and defaults (the demo page uses it)
    GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}][/ready]
    POST /v2/models/{name}[/versions/{v}]/infer   Open Inference Protocol (KServe v2) JSON tensors
                                       on the raw model (heal_swin.serve.v2; default: the highest version)
    GET  /metrics                      Prometheus text format
    GET  /                             demo page; /docs, /openapi.json

Bad input never produces a 500: every ``InputError`` maps to a 4xx JSON ``{"error": ...}``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from heal_swin.errors import InputError
from heal_swin.geometry import CalibrationError, FisheyeCamera, ImageSizeError
from heal_swin.inference import processing as pl
from heal_swin.io import ImageReadError
from heal_swin.serve.batching import MicroBatcher
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from heal_swin.serve.repository import InvalidNameError, ModelEntry, ModelRepository, NotFoundError
from heal_swin.serve.runtime import ModelRuntime
from heal_swin.serve.schemas import (
    ErrorResponse,
    LiveResponse,
    ModelList,
    ModelSummary,
    ReadyResponse,
    ServerMetadata,
)
from heal_swin.serve.v2 import add_model_routes

__all__ = ["NotReadyError", "PayloadTooLargeError", "UnsupportedImageError", "app_from_env", "create_app"]

log = logging.getLogger("heal_swin.serve")
STATIC_DIR = Path(__file__).resolve().parent / "static"


class UnsupportedImageError(ImageReadError):
    """An upload that is not a PNG or JPEG image (415)."""


class PayloadTooLargeError(InputError):
    """A request body or decoded image above the configured limits (413)."""


class NotReadyError(InputError):
    """The model is still loading / warming up (503)."""


class WrongTaskError(InputError):
    """A model asked for a task it does not do, or a format it cannot give (422)."""


_STATUS: tuple[tuple[type, int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedImageError, 415),
    (NotFoundError, 404),
    (InvalidNameError, 400),
    (NotReadyError, 503),
    (InputError, 422),  # CalibrationError, ImageSizeError, ImageReadError, WrongTaskError, ...
)


def _status_of(e: InputError) -> int:
    return next(code for cls, code in _STATUS if isinstance(e, cls))


def _error(status: int, message: str, detail: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


_ERRORS = {
    400: {"model": ErrorResponse, "description": "Invalid name or malformed request"},
    404: {"model": ErrorResponse, "description": "Unknown model or camera"},
    413: {"model": ErrorResponse, "description": "Upload or image too large"},
    415: {"model": ErrorResponse, "description": "Not a PNG/JPEG image"},
    422: {"model": ErrorResponse, "description": "Invalid input (calibration, image size, fields)"},
    503: {"model": ErrorResponse, "description": "Not ready (warming up)"},
}


# ------------------------------------------------------------------ images
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def image_header_size(data: bytes) -> tuple[str, int, int] | None:
    """(kind, width, height) from a PNG/JPEG header without decoding; None if not found."""
    if data.startswith(_PNG_MAGIC):
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    if data.startswith(_JPEG_MAGIC):
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return "jpeg", int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            if length < 2:
                return None
            i += 2 + length
        return None
    return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """PNG/JPEG bytes -> (H, W, 3) uint8 BGR; 415 if not PNG/JPEG, 413 if too many pixels, 422 if corrupt."""
    if not data:
        raise ImageReadError("image: empty upload")
    if not (data.startswith(_PNG_MAGIC) or data.startswith(_JPEG_MAGIC)):
        raise UnsupportedImageError(f"image: unsupported type (expected PNG or JPEG), first bytes {data[:8]!r}")
    head = image_header_size(data)
    if head is None:
        raise ImageReadError(f"image: corrupt {'PNG' if data.startswith(_PNG_MAGIC) else 'JPEG'} (no readable header)")
    kind, w, h = head
    if w <= 0 or h <= 0:
        raise ImageReadError(f"image: corrupt {kind.upper()} header (size {w}x{h})")
    if w * h > max_pixels:
        raise PayloadTooLargeError(f"image: {w}x{h} = {w * h} pixels, above the limit of {max_pixels}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(f"image: corrupt {kind.upper()} ({w}x{h} header, data not decodable)")
    return img


# Responses favour encoding time over size: libpng's adaptive row filters cost more CPU than the
# model's post-processing (1280x966 mask: 35 ms -> 15 ms with no filter + RLE, measured), and class
# masks are long runs that RLE compresses well anyway.
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
]


def encode_png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, _PNG_PARAMS)
    if not ok:  # pragma: no cover - our arrays are always encodable
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


# ------------------------------------------------------------------- state
@dataclass
class _Prepared:
    image: np.ndarray
    camera: FisheyeCamera | None
    x: np.ndarray


class ServiceState:
    """Repository, sessions, batchers, caches and metrics of one app."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.repo = ModelRepository(config.model_repository, precision=config.preferred_precision)
        self.metrics = Metrics()
        threads = config.session_threads
        self.runtimes: dict[str, ModelRuntime] = {
            name: ModelRuntime(entry, threads, config.inter_op_threads) for name, entry in self.repo.models.items()
        }
        max_batch = config.max_batch_size if config.batching else 1
        # Every version has a session; the default one's is shared with self.runtimes.
        self.version_runtimes: dict[tuple[str, int], ModelRuntime] = {}
        for name, versions in self.repo.versions.items():
            for v, e in versions.items():
                same = e is self.repo.models[name]
                self.version_runtimes[name, v] = self.runtimes[name] if same else ModelRuntime(e, threads, config.inter_op_threads)
        self.batchers: dict[str, MicroBatcher] = {
            name: MicroBatcher(
                rt.run,
                max_batch=max_batch,
                max_wait_ms=config.max_wait_ms,
                on_batch=lambda size, sec, n=name: self.metrics.observe_batch(n, size, sec),
                name=name,
                concurrent_batches=config.concurrent_batches,
                concurrency=config.concurrent_batches,
            )
            for name, rt in self.runtimes.items()
        }
        self.version_batchers: dict[tuple[str, int], MicroBatcher] = {
            key: self.batchers[key[0]] if rt is self.runtimes[key[0]] else MicroBatcher(rt.run, max_batch=1, name=f"{key[0]}/{key[1]}")
            for key, rt in self.version_runtimes.items()
        }
        self.cameras = pl.LRU(max(8, config.projector_cache_size * 4))
        pl._PROJECTORS.maxsize = max(pl._PROJECTORS.maxsize, config.projector_cache_size * max(1, len(self.runtimes)))
        # The geometry's map LRU holds forward + backward maps per (calibration, grid).
        from heal_swin.geometry import projector as _proj

        _proj.set_memory_cache_size(max(_proj.memory_cache_size(), 2 * config.projector_cache_size * max(1, len(self.runtimes))))
        self.warm_error: str | None = None
        for name in self.runtimes:
            self.metrics.ready.labels(name).set(0)

    @property
    def ready(self) -> bool:
        return all(rt.ready for rt in self.version_runtimes.values())

    def warm_up(self) -> None:
        """Run every model at batch 1 and max batch, precompute maps of the registered cameras."""
        try:
            sizes = (1, self.config.max_batch_size) if self.config.batching else (1,)
            for name, rt in self.runtimes.items():
                if self.config.warmup:
                    for cam in self.repo.cameras.values():
                        if rt.manifest.input_kind == "sphere":
                            proj = pl.projector_for(cam, rt.manifest)
                            proj.forward_maps, proj.backward_maps()
                    secs = rt.warm_up(sizes)
                    log.info("model %s warmed up in %.2f s", name, secs)
                else:
                    rt.ready = True
                self.metrics.ready.labels(name).set(1)
            for other in self.version_runtimes.values():  # versions only asked for by number: batch 1
                if other.ready:
                    continue
                if self.config.warmup:
                    other.warm_up((1,))
                else:
                    other.ready = True
        except Exception as e:
            self.warm_error = f"warm-up failed: {e}"
            log.exception("warm-up failed")

    # ------------------------------------------------------------ helpers
    def entry_for(self, task: str, name: str | None) -> ModelEntry:
        entry = self.repo.model(name) if name else self.repo.default_model(task, self.config.default_models)
        if entry.manifest.task != task:
            other = "/v1/depth" if entry.manifest.task == "depth" else "/v1/segment"
            raise WrongTaskError(f"model {entry.name!r} is a {entry.manifest.task} model; use {other}")
        return entry

    def runtime(self, name: str) -> ModelRuntime:
        rt = self.runtimes[name]
        if not rt.ready:
            raise NotReadyError(self.warm_error or f"model {name!r} is warming up; retry shortly")
        return rt

    def v2_model(self, name: str, version: str | None, ready: bool = False) -> tuple[ModelEntry, ModelRuntime, MicroBatcher]:
        """A model version (default: the model's default version); NotReadyError if ``ready`` and still warming up."""
        entry = self.repo.model(name, version)
        key = (entry.name, entry.version)
        rt = self.version_runtimes[key]
        if ready and not rt.ready:
            raise NotReadyError(self.warm_error or f"model {name!r} (version {entry.version}) is warming up; retry shortly")
        return entry, rt, self.version_batchers[key]

    def camera_from_upload(self, data: bytes) -> FisheyeCamera:
        key = hashlib.sha256(data).hexdigest()

        def parse() -> FisheyeCamera:
            # Size, nesting and value limits of the geometry's calibration reader (CalibrationError: 422).
            return FisheyeCamera.from_json_text(data, source="calibration upload")

        return self.cameras.get(key, parse)

    def prepare(
        self, entry: ModelEntry, data: bytes, calib: bytes | None, camera_name: str | None, resize: bool
    ) -> _Prepared:
        m = entry.manifest
        if calib is not None and camera_name:
            raise InputError("give either a calibration upload or a registered camera name, not both")
        camera = None
        if calib is not None:
            camera = self.camera_from_upload(calib)
        elif camera_name:
            camera = self.repo.camera(camera_name)
        elif m.input_kind == "sphere":
            raise InputError(
                f"model {entry.name!r} works on the sphere: send a 'calibration' file (WoodScape JSON) "
                f"or the name of a registered 'camera' ({', '.join(self.repo.cameras) or 'none registered'})"
            )
        image = decode_image(data, self.config.max_image_pixels)
        h, w = image.shape[:2]
        if camera is not None and (w, h) != camera.image_size:
            if not resize:
                raise ImageSizeError(
                    f"image size {w}x{h} does not match the calibration {camera.name or camera.source!r} "
                    f"({camera.width}x{camera.height}); send an image of that size or resize=true to scale the calibration"
                )
            try:
                camera = camera.scaled(w, h)
            except (CalibrationError, ValueError) as e:
                raise ImageSizeError(f"calibration cannot be scaled to {w}x{h}: {e}") from None
        x = pl.model_input(image, m, camera)
        return _Prepared(image, camera, x)


# -------------------------------------------------------------- middleware
class BodyLimitMiddleware:
    """413 for request bodies above ``max_bytes`` (by Content-Length, or counted while streaming)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await _send_json(send, 400, {"error": f"Content-Length: expected an integer, got {length[:32]!r}"})
            if n > self.max_bytes:
                return await _send_json(send, 413, {"error": f"request body of {n} bytes is above the limit of {self.max_bytes} bytes"})
        seen = 0
        limit = self.max_bytes

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(f"request body above the limit of {limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class MetricsMiddleware:
    """Counts requests and observes latency per route template (bounded label values)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope.get("method", "?"), path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)


# ------------------------------------------------------------------- app
def create_app(config: ServeConfig) -> FastAPI:
    """Build the service for ``config`` (loads the repository and the sessions; warm-up runs in the background)."""
    config.validate()
    state = ServiceState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for b in {id(b): b for b in state.version_batchers.values()}.values():
            b.start()
        warm = threading.Thread(target=state.warm_up, name="heal-swin-warmup", daemon=True)
        warm.start()
        app.state.warm_thread = warm
        try:
            yield
        finally:
            for b in {id(b): b for b in state.version_batchers.values()}.values():
                await b.stop()

    from heal_swin import __version__

    app = FastAPI(
        title="heal-swin inference service",
        version=__version__,
        description=(
            "Segmentation and depth for fisheye cameras on the HEALPix sphere (HEAL-SWIN and baselines, onnxruntime). "
            "`/v1/*`: fisheye images in, masks/depth out. `/v2/*`: the Open Inference Protocol (KServe v2) on the raw models."
        ),
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"])
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)

    # ------------------------------------------------------------ errors
    @app.exception_handler(InputError)
    async def _input_error(request: Request, e: InputError) -> JSONResponse:
        code = _status_of(e)
        state.metrics.errors.labels(type(e).__name__).inc()
        return _error(code, str(e))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        parts = []
        for err in errs[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        state.metrics.errors.labels("validation").inc()
        detail = [{"loc": list(map(str, err.get("loc", ()))), "msg": str(err.get("msg")), "type": str(err.get("type"))} for err in errs[:20]]
        return _error(422, "invalid request: " + "; ".join(parts), detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> JSONResponse:  # pragma: no cover - a bug, logged
        log.exception("internal error on %s", request.url.path)
        return _error(500, f"internal error ({type(e).__name__}); see the service log")

    # ------------------------------------------------------------ v1
    async def _predict(task: str, image: UploadFile, calibration: UploadFile | None, camera: str | None, model: str | None, resize: bool):
        entry = state.entry_for(task, model or None)
        rt = state.runtime(entry.name)
        data = await image.read()
        calib = await calibration.read() if calibration is not None else None
        prep = await run_in_threadpool(state.prepare, entry, data, calib, camera or None, resize)
        out = await state.batchers[entry.name].submit(prep.x[None])
        return entry, rt, prep, out[0]

    @app.post(
        "/v1/segment",
        tags=["fisheye"],
        summary="Semantic segmentation of a fisheye image",
        response_class=Response,
        responses={
            200: {
                "description": "mask (PNG, class ids, 255 = no prediction), overlay (PNG), sphere (PNG) or json (HEALPix values)",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"type": "object"}}},
            },
            **_ERRORS,
        },
    )
    async def segment(
        image: UploadFile = File(description="fisheye image, PNG or JPEG, at the calibration's size"),
        calibration: UploadFile | None = File(None, description="WoodScape calibration JSON (or give 'camera')"),
        camera: str | None = Form(None, description="name of a camera registered in the repository", max_length=128),
        model: str | None = Form(None, description="model name (default: the repository's segmentation model)", max_length=128),
        format: Literal["mask", "overlay", "json", "sphere"] = Form("mask", description="response format"),
        resize: bool = Form(False, description="scale the calibration to the image's size if they differ"),
    ) -> Response:
        entry, rt, prep, logits = await _predict("segmentation", image, calibration, camera, model, resize)
        m = entry.manifest
        h, w = prep.image.shape[:2]

        def render() -> Response:
            classes = pl.classes_from_logits(logits)
            headers = {"X-Model": entry.name}
            if format in ("json", "sphere"):
                if m.input_kind != "sphere":
                    raise WrongTaskError(f"format {format!r} needs a sphere model; {entry.name!r} is flat")
                if format == "sphere":
                    colours = pl.palette(m)[classes]
                    colours[~pl.projector_for(prep.camera, m).valid_mask] = 128  # grid pixels the camera does not see
                    pic = pl.sphere_picture(colours, m)
                    return Response(encode_png(pic), media_type="image/png", headers=headers)
                valid = pl.projector_for(prep.camera, m).valid_mask
                body = {
                    "model": entry.name, "task": "segmentation", "nside": m.nside, "base_pixels": m.base_pixels,
                    "order": "NESTED", "npix": m.npix, "class_names": m.class_names, "class_colours": m.class_colours,
                    "values": classes.tolist(), "valid": valid.astype(np.uint8).tolist(),
                }
                return JSONResponse(body, headers=headers)
            mask = pl.classes_to_image(classes, m, prep.camera, (w, h))
            if format == "overlay":
                return Response(encode_png(pl.colour_overlay(prep.image, mask, m)), media_type="image/png", headers=headers)
            return Response(encode_png(mask), media_type="image/png", headers=headers)

        return await run_in_threadpool(render)

    @app.post(
        "/v1/depth",
        tags=["fisheye"],
        summary="Depth (metres along the ray) for a fisheye image",
        response_class=Response,
        responses={
            200: {
                "description": "png: 16-bit PNG in millimetres (0 = no prediction, capped at 65535); npy: float32 metres "
                "(NaN = no prediction); colour / sphere: pictures; json: HEALPix values in metres",
                "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            **_ERRORS,
        },
    )
    async def depth(
        image: UploadFile = File(description="fisheye image, PNG or JPEG, at the calibration's size"),
        calibration: UploadFile | None = File(None, description="WoodScape calibration JSON (or give 'camera')"),
        camera: str | None = Form(None, description="name of a camera registered in the repository", max_length=128),
        model: str | None = Form(None, description="model name (default: the repository's depth model)", max_length=128),
        format: Literal["png", "npy", "json", "colour", "sphere"] = Form("png", description="response format"),
        resize: bool = Form(False, description="scale the calibration to the image's size if they differ"),
    ) -> Response:
        entry, rt, prep, output = await _predict("depth", image, calibration, camera, model, resize)
        m = entry.manifest
        h, w = prep.image.shape[:2]

        def render() -> Response:
            metres = pl.depth_from_output(output, m)
            headers = {"X-Model": entry.name}
            if format in ("json", "sphere"):
                if m.input_kind != "sphere":
                    raise WrongTaskError(f"format {format!r} needs a sphere model; {entry.name!r} is flat")
                valid = pl.projector_for(prep.camera, m).valid_mask
                if format == "sphere":
                    pic = pl.sphere_picture(pl.depth_colours(metres, valid), m)
                    return Response(encode_png(pic), media_type="image/png", headers=headers)
                body = {
                    "model": entry.name, "task": "depth", "unit": "m", "nside": m.nside, "base_pixels": m.base_pixels,
                    "order": "NESTED", "npix": m.npix,
                    "values": [round(float(v), 4) if math.isfinite(v) else None for v in metres.tolist()],
                    "valid": valid.astype(np.uint8).tolist(),
                }
                return JSONResponse(body, headers=headers)
            img = pl.depth_to_image(metres, m, prep.camera, (w, h))
            if format == "npy":
                buf = io.BytesIO()
                np.save(buf, img.astype(np.float32), allow_pickle=False)
                headers["Content-Disposition"] = 'attachment; filename="depth.npy"'
                return Response(buf.getvalue(), media_type="application/octet-stream", headers=headers)
            if format == "colour":
                return Response(encode_png(pl.depth_colours(img)), media_type="image/png", headers=headers)
            ok = np.isfinite(img) & (img > 0)
            mm = np.where(ok, np.clip(np.rint(img * 1000.0), 1, 65535), 0).astype(np.uint16)
            return Response(encode_png(mm), media_type="image/png", headers=headers)

        return await run_in_threadpool(render)

    def _summary(name: str) -> ModelSummary:
        rt = state.runtimes[name]
        m = rt.manifest
        return ModelSummary(
            name=name, model_name=m.model_name, task=m.task, input_kind=m.input_kind, nside=m.nside,
            base_pixels=m.base_pixels, img_size=m.img_size, class_names=m.class_names, class_colours=m.class_colours,
            precision=rt.entry.precision, ready=rt.ready,
        )

    @app.get("/v1/models", tags=["fisheye"], response_model=ModelList, summary="Models, registered cameras, defaults")
    async def list_models() -> ModelList:
        defaults: dict[str, str | None] = {}
        for task in ("segmentation", "depth"):
            try:
                defaults[task] = state.repo.default_model(task, config.default_models).name
            except InputError:
                defaults[task] = None
        return ModelList(models=[_summary(n) for n in state.runtimes], cameras=sorted(state.repo.cameras), defaults=defaults)

    # ------------------------------------------------------------ v2
    @app.get("/v2", tags=["v2"], response_model=ServerMetadata, summary="Server metadata")
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(name="heal-swin", version=__version__, extensions=[])

    @app.get("/v2/health/live", tags=["v2"], response_model=LiveResponse, summary="Liveness")
    async def live() -> LiveResponse:
        return LiveResponse(live=True)

    @app.get("/v2/health/ready", tags=["v2"], response_model=ReadyResponse, responses={503: _ERRORS[503]}, summary="Readiness (after warm-up)")
    async def ready():
        if not state.ready:
            return _error(503, state.warm_error or "warming up")
        return ReadyResponse(ready=True)

    add_model_routes(app, state, _summary, _error, _ERRORS)

    # ------------------------------------------------------------ metrics, demo
    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index():
        page = STATIC_DIR / "index.html"
        if not page.is_file():  # an install without the package data
            return _error(404, f"demo page not installed ({page} missing); the API is at /docs")
        return HTMLResponse(page.read_text())

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for multi-worker runs: the config comes as JSON in ``HEAL_SWIN_SERVE_CONFIG``."""
    import os

    from heal_swin.serve.config import ServeConfig

    data = json.loads(os.environ["HEAL_SWIN_SERVE_CONFIG"])
    return create_app(ServeConfig.from_dict(data, "HEAL_SWIN_SERVE_CONFIG"))
