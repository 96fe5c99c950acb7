"""Micro-batching: requests that arrive within a few milliseconds share one onnxruntime call.

At batch 1 the BiLSTM is memory-bound (its recurrent weights are read again at every frame), so
running several utterances per call costs little more than one: batching is where throughput
comes from. The first request of a batch waits at most `wait_seconds` for company; batches are
run one at a time on a dedicated thread (onnxruntime releases the GIL and uses every core for
one call), while the next batch gathers on the event loop. Padding does not change answers
(the model takes per-utterance lengths), so a request gets the same text alone or batched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


class QueueFullError(Exception):
    """More requests are waiting than the server accepts; the client should retry later."""


class BatcherClosedError(Exception):
    """The server is shutting down and no longer runs batches."""


@dataclass
class _Pending:
    features: np.ndarray  # (T, numcep)
    future: asyncio.Future[str]


class MicroBatcher:
    """Queue of featurized requests, run in padded batches of up to `max_batch`.

    `run_batch` maps [(T_i, numcep)] to one text each; `on_batch(size, seconds)` is told
    about every batch run (for metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[np.ndarray]], list[str]],
        *,
        max_batch: int,
        wait_seconds: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._on_batch = on_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def submit(self, features: np.ndarray) -> str:
        """Queue one utterance's features (T, numcep) and wait for its transcript."""
        if self._closed:
            raise BatcherClosedError("the server is shutting down")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(features, future))
        except asyncio.QueueFull:
            raise QueueFullError(
                f"{self._queue.maxsize} requests are already waiting; retry in a moment"
            ) from None
        return await future

    async def close(self) -> None:
        """Stop gathering batches; fail what is still queued; let a running batch finish."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(BatcherClosedError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def _gather(self) -> list[_Pending]:
        """One batch: the next request, plus whatever arrives within the wait, up to max_batch."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [p for p in batch if not p.future.done()]  # skip clients that went away

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            start = time.perf_counter()
            try:
                texts = await loop.run_in_executor(
                    self._executor, self._run_batch, [p.features for p in batch]
                )
            except asyncio.CancelledError:  # closing: nobody will read the results
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(BatcherClosedError("shutting down"))
                raise
            except Exception as e:  # a model failure fails this batch, not the server
                logger.exception("batch of %d failed", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(e)
                continue
            if self._on_batch:
                self._on_batch(len(batch), time.perf_counter() - start)
            for pending, text in zip(batch, texts, strict=True):
                if not pending.future.done():
                    pending.future.set_result(text)
