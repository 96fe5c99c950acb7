"""The micro-batcher and the transcription service in-process, on a real onnxruntime model:
batches grouped by length, a failing loop restarted (then given up on), requests whose caller
left skipped, and shutdown that leaves the event loop free."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from deepspeech.runtime.session import Placement
from serving.batching import (
    MAX_CONSECUTIVE_FAILURES,
    BatcherClosedError,
    MicroBatcher,
    _Pending,
    pick_similar,
)
from serving.inference import OfflineRecognizer, open_model
from serving.metrics import ServerMetrics
from serving.service import TranscriptionService
from serving.settings import ServerSettings

SHORT, LONG = 20, 400  # frames


@pytest.fixture(scope="module")
def model(random_onnx: Path) -> OfflineRecognizer:
    return open_model(random_onnx, placement=Placement(threads=1))


def features(model: OfflineRecognizer, frames: int, seed: int) -> np.ndarray:
    width = model.model.session.get_inputs()[0].shape[-1]  # read from the model, never assumed
    return np.random.default_rng(seed).standard_normal((frames, width)).astype(np.float32)


class RecordingModel:
    """The real model's batch call, recording the frame counts of every batch it ran."""

    def __init__(self, model: OfflineRecognizer) -> None:
        self.model = model
        self.batches: list[list[int]] = []

    def __call__(self, batch: Sequence[np.ndarray], options: Sequence[object]) -> list[str]:
        self.batches.append([f.shape[0] for f in batch])
        return self.model.transcribe_features(batch)


def test_pick_similar_takes_the_oldest_and_its_nearest_lengths() -> None:
    loop = asyncio.new_event_loop()
    try:
        waiting = [
            _Pending(np.zeros((n, 1), np.float32), None, loop.create_future())
            for n in (100, 900, 110, 880, 95, 905)
        ]
        batch = pick_similar(waiting, 3)
        assert [p.frames for p in batch] == [100, 110, 95]
        assert [p.frames for p in waiting] == [900, 880, 905]
        assert [p.frames for p in pick_similar(waiting, 3)] == [900, 880, 905] and not waiting
    finally:
        loop.close()


def test_queued_requests_are_batched_with_others_of_their_length(model: OfflineRecognizer) -> None:
    recorder = RecordingModel(model)
    inputs = [features(model, SHORT if i % 2 == 0 else LONG, i) for i in range(8)]

    async def scenario() -> list[str]:
        batcher = MicroBatcher(recorder, max_batch=4, wait_seconds=0.0, max_queue=64)
        batcher.start()
        try:  # all 8 are queued before the batcher's first look at the queue
            return await asyncio.gather(*(batcher.submit(f) for f in inputs))
        finally:
            await batcher.close()

    texts = asyncio.run(scenario())
    assert sorted(map(sorted, recorder.batches)) == [[SHORT] * 4, [LONG] * 4]
    assert texts == [model.transcribe_features([f])[0] for f in inputs]  # padding-invariant


def test_a_failing_loop_is_logged_and_restarted_then_given_up(
    model: OfflineRecognizer, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch function that returns the wrong number of texts breaks the loop itself (not
    just a model call): the waiting caller gets the error, the loop restarts and serves the
    next request; after MAX_CONSECUTIVE_FAILURES in a row it stays down and says so."""
    calls = {"n": 0}
    failing_calls = {1, *range(3, 3 + MAX_CONSECUTIVE_FAILURES)}

    def run_batch(batch: Sequence[np.ndarray], options: Sequence[object]) -> list[str]:
        calls["n"] += 1
        texts = model.transcribe_features(batch)
        return [*texts, "extra"] if calls["n"] in failing_calls else texts

    async def scenario() -> None:
        batcher = MicroBatcher(run_batch, max_batch=1, wait_seconds=0.0, max_queue=8)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="2 texts came back for 1 utterances"):
                await batcher.submit(features(model, SHORT, 0))
            assert batcher.alive and batcher.failures == 1
            assert (
                await batcher.submit(features(model, SHORT, 1))
                == (model.transcribe_features([features(model, SHORT, 1)])[0])
            )
            for seed in range(MAX_CONSECUTIVE_FAILURES):
                with pytest.raises(RuntimeError):
                    await batcher.submit(features(model, SHORT, seed))
            await asyncio.sleep(0)  # let the supervisor finish giving up
            assert not batcher.alive
            with pytest.raises(BatcherClosedError, match="stopped"):
                await batcher.submit(features(model, SHORT, 9))
        finally:
            await batcher.close()

    with caplog.at_level(logging.ERROR, logger="serving.batching"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("the batcher loop failed; restarting it") == MAX_CONSECUTIVE_FAILURES
    assert any("stays down" in m for m in messages), messages
    assert all(r.exc_info for r in caplog.records)  # each with its traceback


def test_an_unhealthy_batcher_makes_the_service_unhealthy(
    model: OfflineRecognizer, random_onnx: Path
) -> None:
    async def scenario() -> tuple[bool, bool]:
        service = TranscriptionService(model, ServerSettings(str(random_onnx)), ServerMetrics(8))
        service.start()
        healthy_before = service.healthy
        await service.batcher.close()  # what a batcher that gave up looks like from outside
        healthy_after = service.healthy
        await service.close()
        return healthy_before, healthy_after

    assert asyncio.run(scenario()) == (True, False)


def test_requests_whose_caller_left_never_reach_the_model(model: OfflineRecognizer) -> None:
    recorder = RecordingModel(model)

    async def scenario() -> None:
        batcher = MicroBatcher(recorder, max_batch=8, wait_seconds=0.0, max_queue=8)
        batcher.start()
        try:
            gone = asyncio.ensure_future(batcher.submit(features(model, LONG, 0)))
            stays = asyncio.ensure_future(batcher.submit(features(model, SHORT, 1)))
            await asyncio.sleep(0)  # both queued
            gone.cancel()  # what a disconnect or a time limit does
            await stays
        finally:
            await batcher.close()

    asyncio.run(scenario())
    assert recorder.batches == [[SHORT]]


def test_shutdown_waits_for_threads_off_the_event_loop(
    model: OfflineRecognizer, random_onnx: Path
) -> None:
    """close() must wait for a running feature job without blocking the loop: here the job
    only ends when a coroutine on the loop lets it, so a blocking close would deadlock and
    the loop's ticks during close would be 0."""
    release = threading.Event()

    async def scenario() -> int:
        settings = ServerSettings(str(random_onnx), feature_workers=1)
        service = TranscriptionService(model, settings, ServerMetrics(8))
        service.start()
        job = service._pool.submit(release.wait, 60)
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while not closing.done():
                ticks += 1
                if ticks == 100:
                    release.set()
                await asyncio.sleep(0)

        closing = asyncio.ensure_future(service.close())
        await asyncio.gather(closing, heartbeat())
        assert job.result() is True  # the job finished normally: close waited for it
        return ticks

    assert asyncio.run(scenario()) >= 100
