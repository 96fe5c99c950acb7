"""WebSocket `GET /v1/stream[?sample_rate=16000]`: live transcription over `serving.stream`.

Protocol (CONTRACT.md): the client sends binary messages of 16-bit little-endian mono PCM, any
length (a sample split across two messages is joined), then the text message `EOS`. After each
message that changes the transcript the server sends `{"text": str, "final": false}`; after
`EOS` it sends `{"text": str, "final": true, "duration_s": float}` and closes with 1000; a
stream opened with `?words=true` gets `"words": [{"word", "start", "end", "confidence"}]` in it.

Every refusal is `{"error": CODE, "detail": MESSAGE}` and then a close:
- 1003 (unsupported data): no streaming model loaded, a sample rate other than the model's,
  a text message other than `EOS`, or an odd number of bytes in total at `EOS`;
- 1009 (too big): one message over `max_message_kb`, or the stream over `max_stream_seconds`;
- 1013 (try again later): `max_streams` streams already open, or no message for
  `idle_seconds` (the slot goes to someone else; reconnect with audio to send).

A long message's MFCC runs in a thread pool, so the event loop keeps serving the other
streams; a live client's 20-100 ms message is cheaper to featurize in place.
The model calls of all streams are micro-batched: while one onnxruntime run is in progress the
calls that arrive wait, and the next run takes all of them (one row per stream; streams whose
chunk or context length differ run in separate groups of the same tick). At low load a call
runs at once; under load each run carries many streams, which is where a 2-core server gets
its capacity. Nothing here holds more than a stream's fixed-size state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from deepspeech.parallel import available_cpus
from deepspeech.runtime.streaming import ChunkCall, ChunkResult, StreamingModel
from serving.settings import ServerSettings, StreamSettings
from serving.stream import SpeechModel, Stream

logger = logging.getLogger(__name__)

END_OF_STREAM = "EOS"
BYTES_PER_SAMPLE = 2  # 16-bit PCM
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013
MESSAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Messages up to 100 ms get their MFCC on the event loop (about 0.1 ms per 20 ms of audio);
# longer ones in the thread pool, so one big message never stalls the other streams.
INLINE_FEATURE_SAMPLES = 1600

T = TypeVar("T")


class StreamMetrics:
    """Prometheus metrics of the streams, in the server's registry (so /metrics shows them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "deepspeech_streams_open", "WebSocket streams open now.", registry=registry
        )
        self.ended = Counter(
            "deepspeech_streams",
            "Streams ended, by outcome: final, disconnected, or the error code sent.",
            ["outcome"],
            registry=registry,
        )
        self.audio_seconds = Counter(
            "deepspeech_stream_audio_seconds",
            "Seconds of audio received on streams.",
            registry=registry,
        )
        self.message_seconds = Histogram(
            "deepspeech_stream_message_seconds",
            "Time from an audio message's arrival to its partial result (model work included).",
            buckets=MESSAGE_BUCKETS,
            registry=registry,
        )
        self.final_seconds = Histogram(
            "deepspeech_stream_final_seconds",
            "Time from EOS to the final result.",
            buckets=MESSAGE_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "deepspeech_stream_batch_size",
            "Stream calls per micro-batched onnxruntime tick.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )


class ChunkBatcher:
    """Runs the model calls of all streams, everything that queued during the last run at once."""

    def __init__(self, model: StreamingModel, hub: StreamHub) -> None:
        self._model = model
        self._hub = hub
        self._waiting: list[tuple[ChunkCall, asyncio.Future[ChunkResult]]] = []
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def run(self, call: ChunkCall) -> ChunkResult:
        future: asyncio.Future[ChunkResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, future))
        self._wakeup.set()
        return await future

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._waiting = self._waiting, []
            self._hub.metrics.batch_size.observe(len(batch))
            try:
                results = await self._hub.run(self._model.run, [c for c, _ in batch])
            except Exception as e:  # onnxruntime's errors are untyped; each caller gets it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its stream may have gone meanwhile
                    future.set_result(result)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class StreamHub:
    """The streaming model, its worker threads, the open-stream count and the metrics."""

    def __init__(
        self, model: SpeechModel, settings: StreamSettings, registry: CollectorRegistry
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = StreamMetrics(registry)
        self.open_streams = 0
        self._executor = ThreadPoolExecutor(available_cpus(), thread_name_prefix="stream")
        self.batcher = ChunkBatcher(model.model, self)

    def try_open(self) -> bool:
        """Count a new stream in, unless `max_streams` are open (event loop only: no lock)."""
        if self.open_streams >= self.settings.max_streams:
            return False
        self.open_streams += 1
        self.metrics.open.set(self.open_streams)
        return True

    def release(self) -> None:
        self.open_streams -= 1
        self.metrics.open.set(self.open_streams)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Model work off the event loop, in the hub's threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def close(self) -> None:
        await self.batcher.close()
        self._executor.shutdown(wait=True, cancel_futures=True)


def open_stream_model(settings: ServerSettings) -> SpeechModel | None:
    """The streaming model the settings name (decoding as the server does), or None."""
    if settings.stream.model is None:
        return None
    return SpeechModel(
        settings.stream.model, tracking_uri=settings.tracking_uri, decoder=settings.decoder
    )


@asynccontextmanager
async def stream_lifespan(
    app: FastAPI, settings: StreamSettings, model: SpeechModel | None
) -> AsyncIterator[None]:
    """Make `app.state.streams` (a StreamHub, or None without a model) for the app's life."""
    hub = StreamHub(model, settings, app.state.metrics.registry) if model else None
    app.state.streams = hub
    if hub:
        logger.info(
            "streaming %s on /v1/stream, up to %d streams", model.model_id, hub.settings.max_streams
        )
    try:
        yield
    finally:
        app.state.streams = None
        if hub:
            await hub.close()


class StreamRefused(Exception):
    """Ends a stream with an error message and a close code."""

    def __init__(self, close_code: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.close_code, self.code, self.detail = close_code, code, detail


router = APIRouter()


@router.websocket("/v1/stream")
async def stream_endpoint(websocket: WebSocket) -> None:
    """Live transcription: PCM16 in, partial and final text out (protocol in the module doc)."""
    hub: StreamHub | None = getattr(websocket.app.state, "streams", None)
    await websocket.accept()
    opened = False
    outcome = "disconnected"
    try:
        try:
            words = _check_request(websocket, hub)
            if not hub.try_open():
                raise StreamRefused(
                    CLOSE_TRY_LATER,
                    "too_many_streams",
                    f"{hub.settings.max_streams} streams are open, the server's limit; "
                    "try again later",
                )
            opened = True
            outcome = await _transcribe(websocket, hub, words)
        except StreamRefused as refusal:
            outcome = refusal.code
            await websocket.send_text(json.dumps({"error": refusal.code, "detail": refusal.detail}))
            await websocket.close(refusal.close_code, refusal.code)
    except (WebSocketDisconnect, OSError):
        outcome = "disconnected"  # the client left; nothing to answer
    finally:
        if opened:
            hub.release()
        if hub:
            hub.metrics.ended.labels(outcome).inc()


def _check_request(websocket: WebSocket, hub: StreamHub | None) -> bool:
    """Refuse a stream the server cannot serve; True when the final message should carry
    timed words (`?words=true`)."""
    if hub is None:
        raise StreamRefused(
            CLOSE_UNSUPPORTED,
            "streaming_unavailable",
            "this server has no streaming model; start it with --stream-model STREAM.onnx "
            "(made by `deepspeech export --streaming`)",
        )
    expected = hub.model.sample_rate
    rate = websocket.query_params.get("sample_rate", str(expected))
    if rate != str(expected):
        raise StreamRefused(
            CLOSE_UNSUPPORTED,
            "unsupported_sample_rate",
            f"sample_rate={rate[:32]!r}: the stream takes {expected} Hz 16-bit mono PCM; "
            "resample on the client",
        )
    words = websocket.query_params.get("words", "false").lower()
    if words not in ("true", "1", "yes", "false", "0", "no"):
        raise StreamRefused(
            CLOSE_UNSUPPORTED, "invalid_parameter", f"words={words[:32]!r}: use true or false"
        )
    return words in ("true", "1", "yes")


def _final_message(stream: Stream, words: bool) -> dict[str, Any]:
    """`{"text", "final": true, "duration_s"}` (and `words` when asked): the stream's end."""
    if not words:
        text = stream.finish_stream()
        return {"text": text, "final": True, "duration_s": round(stream.duration_s, 3)}
    metadata = stream.finish_stream_with_metadata()
    return {
        "text": metadata.text,
        "final": True,
        "duration_s": round(stream.duration_s, 3),
        "words": [w.as_json() for w in metadata.best.words],
    }


async def _transcribe(websocket: WebSocket, hub: StreamHub, words: bool) -> str:
    """Receive audio until EOS, sending partials; returns the outcome for the metrics."""
    settings = hub.settings
    stream = hub.model.create_stream()
    max_samples = int(settings.max_stream_seconds * hub.model.sample_rate)
    leftover = b""  # the first byte of a sample whose second byte is in the next message
    partial = ""
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), settings.idle_seconds)
        except TimeoutError:
            raise StreamRefused(
                CLOSE_TRY_LATER,
                "idle_timeout",
                f"no message for {settings.idle_seconds:g} s; the stream is closed",
            ) from None
        if message["type"] == "websocket.disconnect":
            return "disconnected"
        arrived = time.perf_counter()
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            if len(data) > settings.max_message_bytes:
                raise StreamRefused(
                    CLOSE_TOO_BIG,
                    "message_too_big",
                    f"a {len(data)}-byte message; the limit is {settings.max_message_bytes} "
                    "bytes: send smaller chunks (20-100 ms)",
                )
            data = leftover + data
            usable = len(data) - len(data) % BYTES_PER_SAMPLE
            leftover = data[usable:]
            if stream.n_samples + usable // BYTES_PER_SAMPLE > max_samples:
                raise StreamRefused(
                    CLOSE_TOO_BIG,
                    "stream_too_long",
                    f"more than {settings.max_stream_seconds:g} s of audio in one stream; "
                    "send EOS and open a new stream",
                )
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
            if len(samples) <= INLINE_FEATURE_SAMPLES:  # a thread hop would cost more
                call = stream.take_model_call(samples)
            else:
                call = await hub.run(stream.take_model_call, samples)
            if call is not None:
                stream.apply_model_result(await hub.batcher.run(call))
            hub.metrics.audio_seconds.inc(len(samples) / hub.model.sample_rate)
            text_now = stream.intermediate_decode()
            if text_now != partial:
                partial = text_now
                await websocket.send_text(json.dumps({"text": partial, "final": False}))
            hub.metrics.message_seconds.observe(time.perf_counter() - arrived)
        elif text == END_OF_STREAM:
            if leftover:
                raise StreamRefused(
                    CLOSE_UNSUPPORTED,
                    "odd_byte_count",
                    "the audio ended in half a sample (an odd number of bytes); "
                    "16-bit PCM has 2 bytes per sample",
                )
            final = await hub.run(_final_message, stream, words)
            await websocket.send_text(json.dumps(final))
            hub.metrics.final_seconds.observe(time.perf_counter() - arrived)
            await websocket.close(CLOSE_NORMAL)
            return "final"
        else:
            raise StreamRefused(
                CLOSE_UNSUPPORTED,
                "unsupported_data",
                f"text message {str(text)[:32]!r}: send audio as binary 16-bit PCM messages, "
                f"then the text message {END_OF_STREAM!r}",
            )
