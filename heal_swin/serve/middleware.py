"""ASGI middleware of the service (outermost first): metrics, the last-resort handler, body limits.

* :class:`MetricsMiddleware` counts requests and latency per route template.
* :class:`LastResortMiddleware` turns an exception that escaped every handler (a bug) into a JSON
  500 and does *not* re-raise it: Starlette's ServerErrorMiddleware re-raises, and uvicorn then
  closes the client's keep-alive connection; here the next request on it is served normally.
* :class:`AdmissionMiddleware` (``stage="enter"``, outside the body reader) refuses an inference
  request with 503 + Retry-After before its body is read when the service is full, and (``stage="slot"``,
  inside it) holds one of the ``max_inflight_requests`` processing slots while the request runs.
* :class:`BodyMiddleware` reads the request body before the app sees it: 413 above the limit
  whether the client sent ``Content-Length`` or a chunked body (the same message), 408 when the body
  does not arrive within ``timeout_s`` (or stalls for ``idle_s``), so slow uploads cannot hold the
  service's request slots. The app then gets the body as one message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from heal_swin.serve.errors import RETRY_AFTER_S, BusyError
from heal_swin.serve.memory import Admission, is_inference
from heal_swin.serve.metrics import Metrics

__all__ = ["AdmissionMiddleware", "BodyMiddleware", "LastResortMiddleware", "MetricsMiddleware", "send_json"]

log = logging.getLogger("heal_swin.serve")


async def send_json(send: Any, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    """A complete JSON response on the raw ASGI ``send``."""
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
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


class LastResortMiddleware:
    """Any exception that reaches it: logged with its traceback, answered with a JSON 500, not re-raised."""

    def __init__(self, app: Any, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def wrapped(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except Exception as e:  # the point of this middleware
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if self.metrics is not None:
                self.metrics.errors.labels("internal").inc()
            if not started:
                await send_json(
                    send, 500, {"error": f"internal error ({type(e).__name__}); see the service log"}
                )
            # A response already under way cannot be replaced; it is left truncated (rare: our
            # responses are built before they are sent).


class BodyMiddleware:
    """Reads the whole body first: 413 above ``max_bytes`` (any transfer encoding), 408 if it is too slow."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0, idle_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout_s = float(timeout_s)
        self.idle_s = float(idle_s)

    def _too_large(self, n: int | None) -> dict:
        size = f"of {n} bytes " if n is not None else ""
        return {"error": f"request body {size}is above the limit of {self.max_bytes} bytes"}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            return await self.app(scope, receive, send)  # no body
        close = {"Connection": "close"}  # the rest of the body stays unread: this connection is done
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await send_json(
                    send, 400, {"error": f"Content-Length: expected an integer, got {length[:32]!r}"}, close
                )
            if n > self.max_bytes:
                return await send_json(send, 413, self._too_large(n), close)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            wait = min(self.idle_s, deadline - loop.time())
            try:
                if wait <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except (asyncio.TimeoutError, TimeoutError):
                what = (
                    f"{size} bytes in {self.timeout_s:g} s"
                    if wait <= 0 or loop.time() >= deadline
                    else f"nothing for {self.idle_s:g} s after {size} bytes"
                )
                return await send_json(
                    send, 408, {"error": f"request body not received in time ({what})"}, close
                )
            if message["type"] == "http.disconnect":
                return  # the client left
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await send_json(send, 413, self._too_large(None), close)
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
        scope["heal_swin.body_bytes"] = len(body)  # for the admission of heavy requests
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)


class AdmissionMiddleware:
    """Inference requests through :class:`~heal_swin.serve.memory.Admission` (see the module docstring)."""

    def __init__(self, app: Any, admission: Admission, stage: str, metrics: Metrics | None = None) -> None:
        self.app = app
        self.admission = admission
        self.stage = stage
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_inference(scope):
            return await self.app(scope, receive, send)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        if self.stage == "enter":
            try:
                self.admission.enter()
            except BusyError as e:
                if self.metrics is not None:
                    self.metrics.errors.labels("BusyError").inc()
                return await send_json(
                    send, 503, {"error": str(e)}, {**headers, "Connection": "close"}
                )  # body unread
            try:
                return await self.app(scope, receive, send)
            finally:
                self.admission.leave()
        try:
            async with self.admission.slot(scope.get("heal_swin.body_bytes", 0)):
                await self.app(scope, receive, send)
        except BusyError as e:
            if self.metrics is not None:
                self.metrics.errors.labels("BusyError").inc()
            await send_json(send, 503, {"error": str(e)}, headers)
