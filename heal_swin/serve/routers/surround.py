"""``POST /v1/surround``: the frames of a camera rig in, a mask per camera and a 360° panorama out.

The frames are fused on the vehicle sphere, run through a surround model (a segmentation sphere
model on all 12 base pixels) and the prediction is back-projected onto every frame; all of it is
:mod:`heal_swin.inference.surround`. The rig is uploaded (``rig``: JSON ``{"cameras": {name:
calibration}}``, :class:`~heal_swin.geometry.rig.CameraRig`) or registered (``rig_name``: the file
``REPO/rigs/<rig_name>.json``). Each frame's camera is its file name: the stem (``FV.png``) or,
in WoodScape's naming, the part after the last ``_`` (``00042_FV.png``).
"""

from __future__ import annotations

import base64
from pathlib import PurePath
from typing import Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from heal_swin.errors import InputError
from heal_swin.geometry.rig import CameraRig, VehicleSphere
from heal_swin.inference import surround as sv
from heal_swin.serve.errors import ERROR_RESPONSES, WrongTaskError
from heal_swin.serve.images import decode_image, encode_png
from heal_swin.serve.repository import NAME_PATTERN, ModelEntry, NotFoundError, check_name
from heal_swin.serve.state import ServiceState, StateDep

__all__ = ["RIGS_DIR", "router"]

router = APIRouter(prefix="/v1", tags=["surround"])
RIGS_DIR = "rigs"  # registered rigs: REPO/rigs/<name>.json
MAX_CAMERAS = 16
_FRAMES = File(
    description="one PNG/JPEG frame per rig camera, each named after its camera (FV.png, 00042_MVL.png)"
)
_RIG = File(None, description="rig JSON {\"cameras\": {name: WoodScape calibration}} (or give 'rig_name')")


def _surround_model(state: ServiceState, name: str | None) -> ModelEntry:
    """The named model, or the first segmentation model on all 12 base pixels (a surround model first)."""
    if name:
        entry = state.repo.model(name)
        if entry.manifest is None:
            raise WrongTaskError(
                f"model {name!r} has no manifest (KServe v2 only); /v1/surround needs a surround model"
            )
        sv.surround_grid(entry.manifest)  # SurroundError (422) unless segmentation on the full sphere
        return entry
    fits = []
    for entry in state.repo.models.values():
        m = entry.manifest
        if (
            m is not None
            and m.task == "segmentation"
            and m.input_kind == "sphere"
            and list(m.base_pixels or []) == list(range(12))
        ):
            fits.append((not bool(m.metadata.get("surround")), entry.name, entry))
    if not fits:
        raise NotFoundError(
            "no surround model in the repository (a segmentation sphere model on base pixels 0..11)"
        )
    return min(fits)[2]


def _rig(state: ServiceState, data: bytes | None, name: str | None) -> CameraRig:
    if (data is None) == (not name):
        raise InputError(
            "give either a 'rig' upload (JSON {\"cameras\": {name: calibration}}) or a registered 'rig_name', exactly one"
        )
    if data is not None:
        return CameraRig.from_json_text(data, source="rig upload")
    path = state.repo.root / RIGS_DIR / f"{check_name(name, 'rig')}.json"
    if not path.is_file():
        known = sorted(p.stem for p in (state.repo.root / RIGS_DIR).glob("*.json"))
        raise NotFoundError(f"rig {name!r} not found; registered: {', '.join(known) or 'none'}")
    return CameraRig.from_json(path)


def _camera_of(filename: str | None, rig: CameraRig) -> str:
    stem = PurePath(filename or "").stem
    for cand in (stem, stem.rsplit("_", 1)[-1]):
        if cand in rig.names:
            return cand
        if cand.upper() in rig.names:
            return cand.upper()
    raise InputError(
        f"frames: file name {filename!r} names no camera of the rig ({', '.join(rig.names)}); name each frame after its camera, e.g. FV.png"
    )


def _prepare(
    state: ServiceState, entry: ModelEntry, uploads: list[tuple[str | None, bytes]], rig: CameraRig
) -> tuple[VehicleSphere, np.ndarray]:
    frames: dict[str, np.ndarray] = {}
    for filename, data in uploads:
        cam = _camera_of(filename, rig)
        if cam in frames:
            raise InputError(f"frames: two frames for camera {cam!r}")
        img = decode_image(data, state.config.max_image_pixels)
        c = rig.cameras[rig.index(cam)]
        if (img.shape[1], img.shape[0]) != c.image_size:
            raise InputError(
                f"frames.{cam}: image size {img.shape[1]}x{img.shape[0]} does not match the rig's calibration ({c.width}x{c.height})"
            )
        frames[cam] = img
    sphere = sv.vehicle_sphere_for(rig, sv.surround_grid(entry.manifest))
    return sphere, sv.manifest_input(frames, sphere, entry.manifest, colour_order="BGR")


@router.post(
    "/surround",
    summary="Surround-view segmentation: the frames of a camera rig on the vehicle sphere",
    response_class=Response,
    responses={
        200: {
            "description": "json: a mask per camera (PNG, class ids, 255 = no prediction, base64) and the 360° panorama "
            "(PNG, class colours, base64); panorama: the panorama PNG",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **ERROR_RESPONSES,
    },
)
async def surround(
    state: StateDep,
    frames: list[UploadFile] = _FRAMES,
    rig: UploadFile | None = _RIG,
    rig_name: str | None = Form(
        None,
        description="a rig registered in the repository (REPO/rigs/<name>.json)",
        max_length=128,
        pattern=NAME_PATTERN,
    ),
    model: str | None = Form(
        None,
        description="model name (default: the repository's surround model)",
        max_length=128,
        pattern=NAME_PATTERN,
    ),
    format: Literal["json", "panorama"] = Form("json", description="response format"),
    panorama_width: int = Form(1024, ge=16, le=4096, description="panorama width in pixels (height: half)"),
) -> Response:
    entry = _surround_model(state, model)
    state.runtime(entry.name)  # 503 while warming up
    if len(frames) > MAX_CAMERAS:
        raise InputError(f"frames: expected at most {MAX_CAMERAS} frames, got {len(frames)}")
    the_rig = _rig(state, await rig.read() if rig is not None else None, rig_name or None)
    if len(frames) != len(the_rig):
        raise InputError(
            f"frames: expected one per rig camera ({', '.join(the_rig.names)}), got {len(frames)}"
        )
    uploads = [(f.filename, await f.read()) for f in frames]
    sphere, x = await run_in_threadpool(_prepare, state, entry, uploads, the_rig)
    logits = (await state.batchers[entry.name].submit(x[None]))[0]

    def render() -> Response:
        width = panorama_width + panorama_width % 2
        pred = sv.finish_surround(logits, sphere, entry.manifest, width)
        headers = {"X-Model": entry.name}
        if format == "panorama":
            return Response(encode_png(pred.picture), media_type="image/png", headers=headers)
        m = entry.manifest
        body = {
            "model": entry.name, "cameras": list(the_rig.names), "nside": m.nside, "order": "NESTED",
            "coverage": float(sphere.valid_mask.mean()), "class_names": m.class_names, "class_colours": m.class_colours,
            "masks": {n: base64.b64encode(encode_png(mask)).decode() for n, mask in pred.masks.items()},
            "panorama": base64.b64encode(encode_png(pred.picture)).decode(),
        }  # fmt: skip
        return JSONResponse(body, headers=headers)

    return await run_in_threadpool(render)
