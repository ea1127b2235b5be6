"""``/v1``: fisheye image + calibration in, mask / overlay / depth / HEALPix values out."""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from heal_swin.errors import InputError
from heal_swin.inference import processing as pl
from heal_swin.serve.errors import ERROR_RESPONSES, WrongTaskError
from heal_swin.serve.images import encode_png
from heal_swin.serve.repository import NAME_PATTERN, ModelEntry
from heal_swin.serve.schemas import ModelList
from heal_swin.serve.state import Prepared, ServiceState, StateDep

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["fisheye"])

_IMAGE = File(description="fisheye image, PNG or JPEG, at the calibration's size")
_CALIB = File(None, description="WoodScape calibration JSON (or give 'camera')")
_CAMERA = Form(
    None, description="name of a camera registered in the repository", max_length=128, pattern=NAME_PATTERN
)
_RESIZE = Form(False, description="scale the calibration to the image's size if they differ")


def _model_form(task: str):
    return Form(
        None,
        description=f"model name (default: the repository's {task} model)",
        max_length=128,
        pattern=NAME_PATTERN,
    )


async def _predict(
    state: ServiceState,
    task: str,
    image: UploadFile,
    calibration: UploadFile | None,
    camera: str | None,
    model: str | None,
    resize: bool,
) -> tuple[ModelEntry, Prepared, np.ndarray]:
    entry = state.entry_for(task, model or None)
    state.runtime(entry.name)  # 503 while warming up
    data = await image.read()
    calib = await calibration.read() if calibration is not None else None
    prep = await run_in_threadpool(state.prepare, entry, data, calib, camera or None, resize)
    out = await state.batchers[entry.name].submit(prep.x[None])
    return entry, prep, out[0]


def _sphere_only(entry: ModelEntry, format: str) -> None:
    if entry.manifest.input_kind != "sphere":
        raise WrongTaskError(f"format {format!r} needs a sphere model; {entry.name!r} is flat")


@router.post(
    "/segment",
    summary="Semantic segmentation of a fisheye image",
    response_class=Response,
    responses={
        200: {
            "description": "mask (PNG, class ids, 255 = no prediction), overlay (PNG), sphere (PNG) or json (HEALPix values)",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        **ERROR_RESPONSES,
    },
)
async def segment(
    state: StateDep,
    image: UploadFile = _IMAGE,
    calibration: UploadFile | None = _CALIB,
    camera: str | None = _CAMERA,
    model: str | None = _model_form("segmentation"),
    format: Literal["mask", "overlay", "json", "sphere"] = Form("mask", description="response format"),
    resize: bool = _RESIZE,
) -> Response:
    entry, prep, logits = await _predict(state, "segmentation", image, calibration, camera, model, resize)
    m = entry.manifest
    h, w = prep.image.shape[:2]

    def render() -> Response:
        classes = pl.classes_from_logits(logits)
        headers = {"X-Model": entry.name}
        if format in ("json", "sphere"):
            _sphere_only(entry, format)
            valid = pl.projector_for(prep.camera, m).valid_mask
            if format == "sphere":
                colours = pl.palette(m)[classes]
                colours[~valid] = 128  # grid pixels the camera does not see
                return Response(
                    encode_png(pl.sphere_picture(colours, m)), media_type="image/png", headers=headers
                )
            body = {
                "model": entry.name, "task": "segmentation", "nside": m.nside, "base_pixels": m.base_pixels,
                "order": "NESTED", "npix": m.npix, "class_names": m.class_names, "class_colours": m.class_colours,
                "values": classes.tolist(), "valid": valid.astype(np.uint8).tolist(),
            }  # fmt: skip
            return JSONResponse(body, headers=headers)
        mask = pl.classes_to_image(classes, m, prep.camera, (w, h))
        if format == "overlay":
            return Response(
                encode_png(pl.colour_overlay(prep.image, mask, m)), media_type="image/png", headers=headers
            )
        return Response(encode_png(mask), media_type="image/png", headers=headers)

    return await run_in_threadpool(render)


@router.post(
    "/depth",
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
        **ERROR_RESPONSES,
    },
)
async def depth(
    state: StateDep,
    image: UploadFile = _IMAGE,
    calibration: UploadFile | None = _CALIB,
    camera: str | None = _CAMERA,
    model: str | None = _model_form("depth"),
    format: Literal["png", "npy", "json", "colour", "sphere"] = Form("png", description="response format"),
    resize: bool = _RESIZE,
) -> Response:
    entry, prep, output = await _predict(state, "depth", image, calibration, camera, model, resize)
    m = entry.manifest
    h, w = prep.image.shape[:2]

    def render() -> Response:
        metres = pl.depth_from_output(output, m)
        headers = {"X-Model": entry.name}
        if format in ("json", "sphere"):
            _sphere_only(entry, format)
            valid = pl.projector_for(prep.camera, m).valid_mask
            if format == "sphere":
                return Response(
                    encode_png(pl.sphere_picture(pl.depth_colours(metres, valid), m)),
                    media_type="image/png",
                    headers=headers,
                )
            body = {
                "model": entry.name, "task": "depth", "unit": "m", "nside": m.nside, "base_pixels": m.base_pixels,
                "order": "NESTED", "npix": m.npix,
                "values": [round(float(v), 4) if math.isfinite(v) else None for v in metres.tolist()],
                "valid": valid.astype(np.uint8).tolist(),
            }  # fmt: skip
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


@router.get("/models", response_model=ModelList, summary="Models, registered cameras, defaults")
async def list_models(state: StateDep) -> ModelList:
    defaults: dict[str, str | None] = {}
    for task in ("segmentation", "depth"):
        try:
            defaults[task] = state.repo.default_model(task, state.config.default_models).name
        except InputError:
            defaults[task] = None
    return ModelList(
        models=[state.summary(n) for n in state.runtimes if state.serves_v1(n)],
        cameras=sorted(state.repo.cameras),
        defaults=defaults,
    )
