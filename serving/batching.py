"""Micro-batching: requests that arrive within a few milliseconds share one onnxruntime call.

At batch 1 the BiLSTM is memory-bound (its recurrent weights are read again at every frame), so
running several utterances per call costs little more than one: batching is where throughput
comes from. The first request of a batch waits at most `wait_seconds` for company; batches are
run one at a time on a dedicated thread (onnxruntime releases the GIL and uses every core for
one call), while the next batch gathers on the event loop. Padding does not change answers
(the model takes per-utterance lengths), so a request gets the same text alone or batched.

A batch is padded to its longest utterance, so when more requests wait than fit in one batch,
the batch is the oldest request plus the waiting ones closest to it in length: the oldest
always goes (nobody starves), and a 2 s clip is not padded to a 60 s one while clips of its
length wait. Requests whose caller went away (disconnect, time limit) are skipped.

The loop is supervised: an exception escaping it (a bug, not a model failure, which only fails
its batch) is logged, fails the batch it was handling, and the loop restarts. After
MAX_CONSECUTIVE_FAILURES failures without a good batch between them it stays down: `alive`
turns false, `/healthz` answers 503 and an orchestrator restarts the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 3  # loop failures in a row before the batcher gives up


class QueueFullError(Exception):
    """More requests are waiting than the server accepts; the client should retry later."""


class BatcherClosedError(Exception):
    """The server is shutting down, or the batcher failed, and no longer runs batches."""


@dataclass(eq=False)
class _Pending:
    features: np.ndarray  # (T, numcep)
    options: Any  # what the batch function is told about this utterance (how to decode it)
    future: asyncio.Future[Any]

    @property
    def frames(self) -> int:
        return self.features.shape[0]


def pick_similar(waiting: list[_Pending], max_batch: int) -> list[_Pending]:
    """The next batch from `waiting` (oldest first): all of it if it fits, else the oldest
    request and the max_batch - 1 others closest to it in length. Removes them from `waiting`."""
    if len(waiting) <= max_batch:
        batch = list(waiting)
        waiting.clear()
        return batch
    anchor = waiting[0]
    others = sorted(waiting[1:], key=lambda p: abs(p.frames - anchor.frames))
    chosen = {id(p) for p in [anchor, *others[: max_batch - 1]]}
    batch = [p for p in waiting if id(p) in chosen]
    waiting[:] = [p for p in waiting if id(p) not in chosen]
    return batch


class MicroBatcher:
    """Queue of featurized requests, run in padded batches of up to `max_batch`.

    `run_batch(features, options)` maps [(T_i, n_features)] and each one's options (what
    `submit` was given) to one result each; `on_batch(size, seconds)` is told about every
    batch run, `on_failure()` about every loop failure (for metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[np.ndarray], Sequence[Any]], Sequence[Any]],
        *,
        max_batch: int,
        wait_seconds: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._waiting: list[_Pending] = []  # taken from the queue, not yet batched
        self._running: list[_Pending] = []  # the batch being handled
        self._on_batch = on_batch
        self._on_failure = on_failure
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failures = 0  # loop failures since start
        self.good_batches = 0  # batches answered since start

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        return self._queue.qsize() + len(self._waiting)

    @property
    def alive(self) -> bool:
        """The loop runs (or is restarting); false once it gave up or was closed."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="batcher")

    async def submit(self, features: np.ndarray, options: Any = None) -> Any:
        """Queue one utterance's features (T, n_features) and wait for its result."""
        if self._closed or not self.alive:
            raise BatcherClosedError(
                "the server is shutting down" if self._closed else "the batcher has stopped"
            )
        if self.queued >= self.max_queue:
            raise QueueFullError(f"{self.max_queue} requests are already waiting; retry shortly")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(features, options, future))
        return await future

    async def close(self) -> None:
        """Stop gathering batches; fail what is still queued; let a running batch finish.

        Waiting for the model thread happens in a helper thread, so the event loop keeps
        serving (answering the requests being failed here, health checks) meanwhile."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        closing = BatcherClosedError("the server is shutting down")
        self._fail([*self._waiting, *self._drain()], closing)
        self._waiting.clear()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def _drain(self) -> list[_Pending]:
        drained = []
        while not self._queue.empty():
            drained.append(self._queue.get_nowait())
        return drained

    @staticmethod
    def _fail(pending: Sequence[_Pending], error: BaseException) -> None:
        for p in pending:
            if not p.future.done():
                p.future.set_exception(error)

    async def _gather(self) -> list[_Pending]:
        """One batch: waiting requests plus whatever arrives within the wait (until max_batch
        are there), then the oldest and those most like it in length."""
        if not self._waiting:
            self._waiting.append(await self._queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while len(self._waiting) < self.max_batch:
            self._waiting += self._drain()
            remaining = deadline - loop.time()
            if len(self._waiting) >= self.max_batch or remaining <= 0:
                break
            try:
                self._waiting.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        self._waiting += self._drain()
        self._waiting = [p for p in self._waiting if not p.future.done()]  # callers gone
        return pick_similar(self._waiting, self.max_batch)

    async def _supervise(self) -> None:
        consecutive = 0
        while True:
            good_before = self.good_batches
            try:
                await self._loop()
            except asyncio.CancelledError:
                self._fail(self._running, BatcherClosedError("the server is shutting down"))
                raise
            except Exception as e:
                self.failures += 1
                consecutive = 1 if self.good_batches > good_before else consecutive + 1
                self._fail(self._running, e)
                self._running = []
                if self._on_failure:
                    self._on_failure()
                if consecutive >= MAX_CONSECUTIVE_FAILURES:
                    logger.exception(
                        "the batcher loop failed %d times in a row; it stays down (/healthz "
                        "now answers 503)",
                        consecutive,
                    )
                    self._fail([*self._waiting, *self._drain()], BatcherClosedError("stopped"))
                    self._waiting.clear()
                    return
                logger.exception("the batcher loop failed; restarting it")

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._running = []
            batch = await self._gather()
            if not batch:
                continue
            self._running = batch
            start = time.perf_counter()
            try:
                texts = await loop.run_in_executor(
                    self._executor,
                    self._run_batch,
                    [p.features for p in batch],
                    [p.options for p in batch],
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a model failure fails this batch, not the server
                logger.exception("batch of %d failed", len(batch))
                self._fail(batch, e)
                continue
            if len(texts) != len(batch):  # a bug: nothing is delivered, the supervisor reports
                raise RuntimeError(f"{len(texts)} texts came back for {len(batch)} utterances")
            if self._on_batch:
                self._on_batch(len(batch), time.perf_counter() - start)
            for pending, text in zip(batch, texts, strict=True):
                if not pending.future.done():
                    pending.future.set_result(text)
            self.good_batches += 1
