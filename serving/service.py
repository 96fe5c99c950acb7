"""One request's work off the event loop: WAV file -> features (thread pool) -> batch -> text.

Decoding and MFCCs run in a thread pool sized to the CPUs, the model in the micro-batcher's
own thread, so the event loop only moves bytes and JSON and stays responsive under load.

A clip (up to one VAD segment long) is one utterance in one batch. A longer recording is read
block by block and cut at pauses (`deepspeech.vad`) in the thread pool; its segments go through
the same micro-batcher as everyone's clips, at most `max_batch` of them waiting at a time, so a
long upload neither holds its whole audio in memory nor starves the clips queued behind it.

The work in flight is bounded: at most `max_in_flight` transcriptions are admitted at once
(`admit`, before the body is read), so the feature pool's queue and the batcher's hold at most
that many; the rest get 503 with Retry-After at once. An admitted request is dropped, before it
reaches the model if it has not yet, when its client disconnects or its time limit passes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np

from deepspeech.audio import SAMPLE_RATE, read_wav_info
from deepspeech.parallel import available_cpus
from deepspeech.vad import AudioSegment, speech_segments
from serving.batching import MicroBatcher
from serving.inference import DecodeOptions, OfflineRecognizer, check_duration, read_audio
from serving.metrics import ServerMetrics
from serving.recordings import FileTranscript, SegmentTranscript, transcript_json
from serving.settings import ServerSettings


class OverloadedError(Exception):
    """As many transcriptions as allowed are in progress; the client should retry later."""


class RequestTimeoutError(Exception):
    """The request was not answered within its time limit, and was dropped."""


class ClientGoneError(Exception):
    """The client disconnected before its answer; the request was dropped."""


@dataclass(frozen=True)
class Transcription:
    """A 200 answer to POST /v1/transcribe: the transcript and who made it how fast."""

    result: FileTranscript
    inference_ms: float  # server time from a received body to the text: decode, features, model
    model: str  # NAME/VERSION

    @property
    def text(self) -> str:
        return self.result.text or ""

    @property
    def duration_s(self) -> float:
        """Seconds of audio (after conversion to 16 kHz mono)."""
        return self.result.duration_s

    def to_dict(self, *, words: bool = False, alternatives: bool = False) -> dict[str, Any]:
        """`{"text", "duration_s", "inference_ms", "model"}`, with `words=true`'s confidence,
        words and segments and `num_results`' alternatives (`transcript_json`)."""
        record = transcript_json(self.result, words=words, alternatives=alternatives)
        head = {"text": self.text, "duration_s": round(self.duration_s, 3)}
        return {
            **head,
            "inference_ms": round(self.inference_ms, 1),
            "model": self.model,
            **{k: v for k, v in record.items() if k not in head},
        }


class TranscriptionService:
    """The loaded model, its micro-batcher and the feature threads, for the app's lifetime."""

    def __init__(self, model: OfflineRecognizer, settings: ServerSettings, metrics: ServerMetrics):
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(
            settings.feature_workers or available_cpus(), thread_name_prefix="features"
        )
        self.batcher = MicroBatcher(
            model.transcribe_batch,
            max_batch=settings.max_batch,
            wait_seconds=settings.batch_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=self._observe_batch,
            on_failure=metrics.batcher_failures.inc,
        )
        self.in_flight = 0

    def start(self) -> None:
        self.batcher.start()
        self.metrics.workers.set(1)

    @property
    def healthy(self) -> bool:
        """The batcher runs: requests can be answered."""
        return self.batcher.alive

    async def close(self) -> None:
        """Stop the batcher and the feature threads; the waiting happens off the event loop."""
        self.metrics.workers.set(0)
        await self.batcher.close()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the `max_in_flight` places; OverloadedError when none is free."""
        limit = self.settings.max_in_flight
        if self.in_flight >= limit:
            self.metrics.refused.labels("overloaded").inc()
            raise OverloadedError(f"{limit} transcriptions are in progress; retry in a moment")
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    async def transcribe(
        self,
        wav: IO[bytes],
        name: str,
        disconnected: Callable[[], Awaitable[None]] | None = None,
        options: DecodeOptions = DecodeOptions(),
    ) -> Transcription:
        """Transcribe one WAV file (`name` labels errors) within the time limit.

        `disconnected` returns when the client goes away; the request is then dropped
        (ClientGoneError), as it is when the limit passes (RequestTimeoutError). Also raises
        AudioFormatError or AudioTooLongError.
        """
        work = asyncio.ensure_future(self._transcribe(wav, name, options))
        watch = asyncio.ensure_future(disconnected()) if disconnected else None
        try:
            done, _ = await asyncio.wait(
                [t for t in (work, watch) if t is not None],
                timeout=self.settings.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (work, watch):
                if task is not None and not task.done():
                    task.cancel()  # a cancelled request's batch entry is skipped
        if work in done:
            return work.result()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        if watch is not None and watch in done:
            self.metrics.dropped.labels("disconnected").inc()
            raise ClientGoneError(f"{name}: the client disconnected; the request was dropped")
        self.metrics.dropped.labels("timeout").inc()
        raise RequestTimeoutError(
            f"not answered within the {self.settings.request_timeout_s:g} s limit; the server "
            "is busy, retry later"
        )

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.observe_batch(size, seconds)
        self.metrics.queued.set(self.batcher.queued)  # after each batch: what still waits

    async def _transcribe(self, wav: IO[bytes], name: str, options: DecodeOptions) -> Transcription:
        start = time.perf_counter()
        info = await self._in_pool(_header, wav, name)
        check_duration(info.duration_seconds, self.settings.max_audio_seconds, name)
        if info.duration_seconds <= self.settings.vad.max_segment_s:
            seconds, features = await self._in_pool(self._prepare, wav, name)
            metadata = await self.batcher.submit(features, options)
            result = FileTranscript.whole(name, seconds, metadata)
        else:
            result = await self._transcribe_recording(wav, name, options, info.duration_seconds)
        self.metrics.audio_seconds.inc(result.duration_s)
        return Transcription(
            result=result,
            inference_ms=(time.perf_counter() - start) * 1000,
            model=self.model.model_id,
        )

    async def _transcribe_recording(
        self, wav: IO[bytes], name: str, options: DecodeOptions, seconds: float
    ) -> FileTranscript:
        """Segments read and featurized in the pool, decoded through the batcher, at most
        `max_batch` waiting at a time; all of them dropped if the request is."""
        segments = speech_segments(wav, settings=self.settings.vad, name=name)
        waiting: collections.deque[tuple[AudioSegment, asyncio.Future[Any]]] = collections.deque()
        done: list[SegmentTranscript] = []
        try:
            while item := await self._in_pool(self._next_segment, segments):
                segment, features = item
                check_duration(segment.end, self.settings.max_audio_seconds, name)  # a lying header
                request = replace(options, offset=options.offset + segment.start)
                waiting.append(
                    (segment, asyncio.ensure_future(self.batcher.submit(features, request)))
                )
                if len(waiting) >= self.settings.max_batch:
                    done.append(await _finished(*waiting.popleft()))
            while waiting:
                done.append(await _finished(*waiting.popleft()))
        finally:
            for _, future in waiting:
                future.cancel()  # a dropped request's segments never reach the model
            with contextlib.suppress(ValueError):  # still running in the pool: let it finish
                segments.close()
        return FileTranscript(name, seconds, tuple(done), cut=True)

    async def _in_pool(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in the feature threads. If the request is dropped meanwhile, the
        thread is waited for before the cancellation goes on: it reads the request's body,
        which the route closes (and deletes) as soon as the request is over."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

    def _next_segment(
        self, segments: Iterator[AudioSegment]
    ) -> tuple[AudioSegment, np.ndarray] | None:
        segment = next(segments, None)
        return None if segment is None else (segment, self.model.features(segment.audio))

    def _prepare(self, wav: IO[bytes], name: str) -> tuple[float, np.ndarray]:
        wav.seek(0)
        audio = read_audio(wav, max_seconds=self.settings.max_audio_seconds, name=name)
        return len(audio) / SAMPLE_RATE, self.model.features(audio)


def _header(wav: IO[bytes], name: str) -> Any:
    wav.seek(0)
    info = read_wav_info(wav, name=name)
    wav.seek(0)
    return info


async def _finished(segment: AudioSegment, future: asyncio.Future[Any]) -> SegmentTranscript:
    return SegmentTranscript(segment.start, segment.end, await future)
