"""One request's work off the event loop: WAV bytes -> features (thread pool) -> batch -> text.

Decoding and MFCCs run in a thread pool sized to the CPUs, the model in the micro-batcher's
own thread, so the event loop only moves bytes and JSON and stays responsive under load.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from deepspeech.audio import SAMPLE_RATE
from deepspeech.parallel import available_cpus
from serving.batching import MicroBatcher
from serving.inference import SpeechModel, read_audio
from serving.metrics import ServerMetrics
from serving.settings import ServerSettings


@dataclass(frozen=True)
class Transcription:
    """The body of a 200 answer to POST /v1/transcribe."""

    text: str
    duration_s: float  # seconds of audio (after conversion to 16 kHz mono)
    inference_ms: float  # server time from a received body to the text: decode, features, model
    model: str  # NAME/VERSION

    def to_dict(self) -> dict[str, str | float]:
        return {
            "text": self.text,
            "duration_s": round(self.duration_s, 3),
            "inference_ms": round(self.inference_ms, 1),
            "model": self.model,
        }


class TranscriptionService:
    """The loaded model, its micro-batcher and the feature threads, for the app's lifetime."""

    def __init__(self, model: SpeechModel, settings: ServerSettings, metrics: ServerMetrics):
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(
            settings.feature_workers or available_cpus(), thread_name_prefix="features"
        )
        self.batcher = MicroBatcher(
            model.transcribe_features,
            max_batch=settings.max_batch,
            wait_seconds=settings.batch_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=metrics.observe_batch,
        )
        metrics.queued.set_function(lambda: self.batcher.queued)

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def transcribe(self, wav: bytes, name: str) -> Transcription:
        """Transcribe one WAV file's bytes (`name` labels errors); raises AudioFormatError or
        AudioTooLongError."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        seconds, features = await loop.run_in_executor(self._pool, self._prepare, wav, name)
        text = await self.batcher.submit(features)
        self.metrics.audio_seconds.inc(seconds)
        return Transcription(
            text=text,
            duration_s=seconds,
            inference_ms=(time.perf_counter() - start) * 1000,
            model=self.model.model_id,
        )

    def _prepare(self, wav: bytes, name: str) -> tuple[float, np.ndarray]:
        audio = read_audio(wav, max_seconds=self.settings.max_audio_seconds, name=name)
        return len(audio) / SAMPLE_RATE, self.model.features(audio)
