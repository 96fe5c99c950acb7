"""Server settings: where to listen, which model, and every limit on what a client may send.

Each limit is a named, documented setting (and a `deepspeech serve` option), so an operator can
see and change what the server refuses, and tests can start servers with small limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from serving.stream_server import StreamSettings

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: a model server is not a public service
DEFAULT_PORT = 8080
DEFAULT_MAX_BATCH = 8  # utterances per onnxruntime call
DEFAULT_BATCH_WAIT_MS = 5.0  # how long the first request of a batch waits for company
DEFAULT_MAX_AUDIO_SECONDS = 60.0  # longer clips get 413: latency and memory grow with length
DEFAULT_MAX_BODY_MB = 32.0  # 60 s of 96 kHz 24-bit stereo is about 35 MB; 16 kHz mono is 2 MB
DEFAULT_MAX_QUEUE = 256  # requests waiting for the model before new ones get 503
# Transcription requests admitted at once (reading, features, waiting, model); more get 503
# with Retry-After before their body is read. This is what bounds memory under a flood: each
# admitted request holds its body once, and only the feature threads decode and featurize,
# so resident memory stays below about idle + MAX_IN_FLIGHT x max body + the feature threads'
# work (benchmarks/flood.py: 200 uploads of 32 MB peaked at 1.3 GB with these defaults).
DEFAULT_MAX_IN_FLIGHT = 16
DEFAULT_REQUEST_TIMEOUT_S = 60.0  # a transcription not answered by then gets 503 and is dropped
DEFAULT_WORKERS = 1  # server processes, each with its own onnxruntime session
# onnxruntime threads per batch. One: the LSTM synchronises its threads at every frame, so a
# second thread stalls whenever feature threads (or anything else) take its core; on 2 shared
# cores one thread gave 1.6x the throughput of two (benchmarks/serving.py --threads).
DEFAULT_THREADS = 1
DEVICES = ("auto", "cpu", "cuda")
BYTES_PER_MB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """Everything `deepspeech serve` is told; validated once, read everywhere."""

    model: str  # path to a .onnx file, or models:/NAME/VERSION in the MLflow registry
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    max_queue: int = DEFAULT_MAX_QUEUE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    workers: int = DEFAULT_WORKERS
    tracking_uri: str | None = None  # for models:/ URIs; else $MLFLOW_TRACKING_URI or sqlite
    device: str = "auto"  # auto: CUDA when it really works, else CPU
    device_id: int = 0  # which GPU, for CUDA
    gpu_mem_limit_mb: float = 0.0  # cap on onnxruntime's CUDA arena; 0 = no cap
    feature_workers: int = 0  # threads decoding audio and computing features; 0 = usable CPUs
    threads: int = DEFAULT_THREADS  # onnxruntime intra-op threads per batch; 0 = usable CPUs
    decoder: DecoderConfig = field(default_factory=DecoderConfig)  # greedy unless told
    stream: StreamSettings = field(default_factory=StreamSettings)  # WebSocket /v1/stream

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("no model: give --model MODEL.onnx or models:/NAME/VERSION")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} must be in 0..65535")
        for name in (
            "max_batch",
            "max_queue",
            "max_in_flight",
            "request_timeout_s",
            "workers",
            "max_audio_seconds",
            "max_body_mb",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        if self.device_id < 0 or self.gpu_mem_limit_mb < 0:
            raise ConfigError(
                f"device_id {self.device_id} and gpu_mem_limit_mb {self.gpu_mem_limit_mb:g} "
                "must be >= 0"
            )
        for name in ("feature_workers", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 = all), got {getattr(self, name)}")
        if self.device not in DEVICES:
            raise ConfigError(f"device {self.device!r} must be one of {', '.join(DEVICES)}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * BYTES_PER_MB)
