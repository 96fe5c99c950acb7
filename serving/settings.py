"""Server settings: where to listen, which model, and every limit on what a client may send.

Each setting is one field, with its default and help, from which `deepspeech serve`'s options
and docs/settings.md are made (`deepspeech.config`), so an operator can see and change what
the server refuses, and tests can start servers with small limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepspeech.config import setting
from deepspeech.decoding.decoders import DecoderConfig
from deepspeech.errors import ConfigError
from deepspeech.runtime.session import DEVICES, Placement
from deepspeech.vad import VadSettings

BYTES_PER_MB = 1024 * 1024


@dataclass(frozen=True)
class StreamSettings:
    """The streaming model (WebSocket /v1/stream) and every limit on what a streaming client
    may do."""

    model: str | None = setting(
        None,
        "A streaming model (`deepspeech export --streaming`, or models:/NAME/VERSION) served on "
        "the WebSocket /v1/stream; without it /v1/stream refuses with 1003.",
        key="stream_model",
    )
    # 2 cores held 64 real-time streams.
    max_streams: int = setting(64, "Open streams; more are refused with 1013.")
    max_stream_seconds: float = setting(
        600.0, "Audio per stream; more closes it with 1009 (a longer dictation reconnects)."
    )
    idle_seconds: float = setting(
        20.0, "A stream with no message for this long is closed (1013).", key="stream_idle_seconds"
    )
    # 8 s of 16 kHz PCM16; live clients send 20-100 ms at a time.
    max_message_kb: float = setting(256.0, "One stream message; larger closes it with 1009.")

    def __post_init__(self) -> None:
        for name in ("max_streams", "max_stream_seconds", "idle_seconds", "max_message_kb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_kb * 1024)


@dataclass(frozen=True)
class ServerSettings:
    """Everything `deepspeech serve` is told; validated once, read everywhere."""

    model: str = setting(
        "", "An exported model: MODEL.onnx, or models:/NAME/VERSION (or @ALIAS) from MLflow."
    )
    # Loopback unless told otherwise: a model server is not a public service.
    host: str = setting("127.0.0.1", "Address to bind; anything but loopback exposes the server.")
    port: int = setting(8080, "TCP port.")
    max_batch: int = setting(8, "Utterances per model call (micro-batching); 1 disables.")
    batch_wait_ms: float = setting(5.0, "How long a request waits for others to batch with.")
    # Recordings longer than one VAD segment are cut at pauses and cost time, not memory; an
    # hour takes --max-audio-seconds 3600 --max-body-mb 120 (16 kHz 16-bit mono).
    max_audio_seconds: float = setting(60.0, "Longer audio is refused with 413.")
    # 60 s of 96 kHz 24-bit stereo is about 35 MB; 16 kHz mono is 2 MB. Bodies over 1 MB are
    # spooled to a temporary file, so the limit bounds disk, not memory.
    max_body_mb: float = setting(32.0, "Larger request bodies are refused with 413.")
    max_queue: int = setting(256, "Featurized requests waiting for the model; more get 503.")
    # What bounds memory under a flood: each admitted request holds its body once, and only the
    # feature threads decode and featurize (benchmarks/flood.py measures it).
    max_in_flight: int = setting(
        16,
        "Transcriptions admitted at once; more get 503 with Retry-After before their body is "
        "read. Bounds memory: about idle + this x --max-body-mb + the feature threads' work.",
    )
    request_timeout_s: float = setting(
        60.0, "A transcription not answered by then gets 503 and is dropped."
    )
    workers: int = setting(
        1,
        "Server processes on the one port, each with its own onnxruntime session; /metrics "
        "adds up all of them.",
    )
    tracking_uri: str | None = setting(
        None,
        "MLflow tracking URI for models:/ (else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
    )
    device: str = setting(
        "auto",
        "auto (CUDA when it really works, else CPU), cpu, or cuda (where CUDA does not work: a "
        "warning, then CPU; GET /v1/model lists the providers really used).",
    )
    device_id: int = setting(0, "CUDA device (GPU) number.")
    gpu_mem_limit_mb: float = setting(
        0.0, "Cap on onnxruntime's CUDA memory arena in MB; 0 = no cap."
    )
    feature_workers: int = setting(
        0, "Threads decoding audio and computing features; 0 = the usable CPUs."
    )
    # One: the LSTM synchronises its threads at every frame, so a second thread stalls whenever
    # feature threads (or anything else) take its core (benchmarks/serving.py --threads).
    threads: int = setting(
        1,
        "onnxruntime threads per batch; 0 = the usable CPUs (fastest for one request at a time "
        "on an otherwise idle machine).",
    )
    decoder: DecoderConfig = setting(default_factory=DecoderConfig)  # greedy unless told
    vad: VadSettings = setting(default_factory=VadSettings)  # how long uploads are cut
    stream: StreamSettings = setting(default_factory=StreamSettings)  # WebSocket /v1/stream

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

    @property
    def placement(self) -> Placement:
        """Where the model's session runs."""
        return Placement(
            device=self.device,
            threads=self.threads or None,
            device_id=self.device_id,
            gpu_mem_limit_bytes=int(self.gpu_mem_limit_mb * BYTES_PER_MB) or None,
        )
