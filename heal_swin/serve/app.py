"""The HTTP inference service: ``create_app(config)`` (FastAPI + onnxruntime; no torch).

Endpoints (one router module each, :mod:`heal_swin.serve.routers`):
    POST /v1/segment, /v1/depth        fisheye image + calibration -> mask / overlay / depth / HEALPix JSON
    POST /v1/surround                  the frames of a camera rig -> a mask per camera + a 360° panorama
    GET  /v1/models                    models, registered cameras and defaults (the demo page uses it)
    GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/{name}[/versions/{v}][/ready]
    POST /v2/models/{name}[/versions/{v}]/infer   Open Inference Protocol (KServe v2) on the raw models
    GET  /metrics                      Prometheus text format
    GET  /                             demo page; /docs (Swagger UI served from the package), /openapi.json

Bad input never produces a 500: every ``InputError`` maps to a 4xx JSON ``{"error": ...}``
(:mod:`heal_swin.serve.errors`); a bug is a JSON 500 on a connection that stays usable.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from heal_swin import __version__
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.errors import install_error_handlers
from heal_swin.serve.middleware import (
    AdmissionMiddleware,
    BodyMiddleware,
    LastResortMiddleware,
    MetricsMiddleware,
)
from heal_swin.serve.routers import fisheye, kserve, ops, surround
from heal_swin.serve.state import ServiceState

__all__ = ["ROUTERS", "app_from_env", "create_app"]

# The routers every app includes; a new one is one more entry here.
ROUTERS = (fisheye.router, kserve.router, ops.router, surround.router)


def create_app(config: ServeConfig) -> FastAPI:
    """Build the service for ``config`` (loads the repository and the sessions; warm-up runs in the background)."""
    state = ServiceState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batchers = list(state.version_batchers.values())
        for b in batchers:
            b.start()
        warm = threading.Thread(target=state.warm_up, name="heal-swin-warmup", daemon=True)
        warm.start()
        app.state.warm_thread = warm
        try:
            yield
        finally:
            for b in batchers:
                await b.stop()

    app = FastAPIOffline(
        title="heal-swin inference service",
        version=__version__,
        description=(
            "Segmentation and depth for fisheye cameras on the HEALPix sphere (HEAL-SWIN and baselines, onnxruntime). "
            "`/v1/*`: fisheye images in, masks/depth out. `/v2/*`: the Open Inference Protocol (KServe v2) on the raw models."
        ),
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app, lambda kind: state.metrics.errors.labels(kind).inc())
    for router in ROUTERS:
        app.include_router(router)
    _add_schemas(app, kserve.openapi_components())
    if ops.STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=ops.STATIC_DIR), name="static")

    # add_middleware wraps: the last one added is the outermost.
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(AdmissionMiddleware, admission=state.admission, stage="slot", metrics=state.metrics)
    app.add_middleware(
        BodyMiddleware,
        max_bytes=config.max_upload_bytes,
        timeout_s=config.body_timeout_s,
        idle_s=config.body_idle_s,
    )
    app.add_middleware(AdmissionMiddleware, admission=state.admission, stage="enter", metrics=state.metrics)
    app.add_middleware(LastResortMiddleware, metrics=state.metrics)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def _add_schemas(app: FastAPI, schemas: dict) -> None:
    """Add component schemas to the OpenAPI document (bodies that routes parse themselves refer to them)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            build().setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return app.openapi_schema

    app.openapi = openapi


def app_from_env() -> FastAPI:
    """uvicorn factory for multi-worker runs: the config comes as JSON in ``HEAL_SWIN_SERVE_CONFIG``."""
    data = json.loads(os.environ["HEAL_SWIN_SERVE_CONFIG"])
    return create_app(ServeConfig.from_dict(data, "HEAL_SWIN_SERVE_CONFIG"))
