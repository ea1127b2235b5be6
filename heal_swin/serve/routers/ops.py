"""Operations and the demo: ``/metrics`` (Prometheus) and the demo page at ``/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from heal_swin.serve.errors import error_response
from heal_swin.serve.metrics import CONTENT_TYPE_LATEST
from heal_swin.serve.state import StateDep

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter()


@router.get(
    "/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def index():
    page = STATIC_DIR / "index.html"
    if not page.is_file():  # an install without the package data
        return error_response(404, f"demo page not installed ({page} missing); the API is at /docs")
    return HTMLResponse(page.read_text())
