"""Dynamic micro-batching across concurrent requests (asyncio).

Requests ``submit`` arrays of shape ``(b, ...)``. One worker task per model takes the first waiting
request, then gathers more until the batch holds ``max_batch`` samples or the first request has
waited ``max_wait_ms``; the batch runs in a one-thread executor (onnxruntime releases the GIL and
uses its own intra-op threads), and each request gets its slice of the output. A request larger
than ``max_batch`` runs as a batch of its own. With ``max_batch=1`` (batching off) every request
runs at once in the executor pool, concurrently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["MicroBatcher"]

_Item = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
        name: str = "model",
        concurrency: int = 4,
        concurrent_batches: int = 1,
    ) -> None:
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self._on_batch = on_batch
        self.name = name
        self.batching = self.max_batch > 1
        self.concurrent_batches = max(1, int(concurrent_batches))
        workers = self.concurrent_batches if self.batching else max(1, concurrency)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ort-{name}")
        self._queue: asyncio.Queue[_Item] | None = None
        self._carry: _Item | None = None
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task] = set()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker on the running loop (call from the app's startup)."""
        if self.batching and self._task is None:
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.concurrent_batches)
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass  # what cancel() asked for
            self._task = None
        for t in list(self._running):
            t.cancel()
        for item in self._drain():
            if not item[1].done():
                item[1].set_exception(RuntimeError("service shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _drain(self) -> list[_Item]:
        items = [self._carry] if self._carry is not None else []
        self._carry = None
        while self._queue is not None and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    # ------------------------------------------------------------ running
    def _timed_run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = self._run(batch)
        return out, time.perf_counter() - t0

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Run ``x`` (shape ``(b, ...)``) as part of a batch; returns the model's ``(b, ...)`` output."""
        loop = asyncio.get_running_loop()
        if not self.batching or self._task is None:
            out, seconds = await loop.run_in_executor(self._executor, self._timed_run, x)
            if self._on_batch:
                first = (
                    x if isinstance(x, np.ndarray) else next(iter(x.values()))
                )  # an array or {input name: array}
                self._on_batch(int(first.shape[0]), seconds)
            return out
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put_nowait((x, fut))
        return await fut

    async def _next(self, timeout: float | None) -> _Item | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return None

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            await self._slots.acquire()  # at most `concurrent_batches` batches in flight
            items = [first]
            size = first[0].shape[0]
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                item = await self._next(deadline - loop.time())
                if item is None:
                    break
                if size + item[0].shape[0] > self.max_batch:
                    self._carry = item
                    break
                items.append(item)
                size += item[0].shape[0]
            items = [it for it in items if not it[1].done()]  # cancelled (client gone)
            if not items:
                self._slots.release()
                continue
            task = loop.create_task(self._run_batch(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_batch(self, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        try:
            batch = items[0][0] if len(items) == 1 else np.concatenate([it[0] for it in items], axis=0)
            try:
                out, seconds = await loop.run_in_executor(self._executor, self._timed_run, batch)
            except Exception as e:  # noqa: BLE001 - the model failed: every request of the batch gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                return
            if self._on_batch:
                self._on_batch(int(batch.shape[0]), seconds)
            start = 0
            for x, fut in items:
                n = x.shape[0]
                if not fut.done():
                    fut.set_result(out[start : start + n])
                start += n
        finally:
            self._slots.release()
