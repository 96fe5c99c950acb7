"""The inference core shared by the server and `deepspeech transcribe`: ONNX model -> text.

audio bytes or file -> 16 kHz mono (`load_wav`, any PCM/float WAV converted) -> MFCC frames
with the model's own settings (`audio_to_features`, what training read from its cache) ->
zero-padded batch + lengths -> onnxruntime -> per-frame probabilities -> greedy CTC decoding.

The model describes itself (its ONNX metadata holds alphabet, sample rate and feature
settings), so nothing here needs the training checkpoint, and nothing imports TensorFlow.
Sessions use CUDA only where it really works: onnxruntime-gpu lists the CUDA provider on every
machine, so the providers a session actually got are what is reported. Asking for CUDA where
it does not work logs one warning and runs on CPU. A CUDA session is also checked node by
node: the warm-up batch is profiled and the execution provider of each LSTM node read back,
since onnxruntime silently places an op without a CUDA kernel (the int8 DynamicQuantizeLSTM
has none) on the CPU. Its arena grows by what is asked for (kSameAsRequested), not by
doubling, so batches of ever-new shapes do not inflate it, and it may be capped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from deepspeech.audio import (
    SAMPLE_RATE,
    AudioSource,
    audio_to_features,
    load_wav,
    read_wav_info,
)
from deepspeech.decoding.decoders import Decoder, DecoderConfig, GreedyDecoder, make_decoder
from deepspeech.errors import AudioTooLongError, DeepSpeechError, ModelLoadError
from deepspeech.model.export import (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    PROBABILITIES_OUTPUT,
    ModelMetadata,
    pad_features,
)
from deepspeech.parallel import available_cpus

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
REGISTRY_SCHEME = "models:/"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))$")
_NVIDIA_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")
WARMUP_FRAMES = 16  # a first run allocates buffers; done at load so no request pays for it
RECURRENT_OPS = ("LSTM", "DynamicQuantizeLSTM")  # nodes whose placement is checked on CUDA
TRANSCRIBE_CHUNK = 64  # files featurized at a time by `transcribe_files` (bounds memory)


def gpu_present() -> bool:
    """An NVIDIA driver is loaded; without one, trying CUDA only prints loader errors."""
    return any(os.path.exists(path) for path in _NVIDIA_DEVICE_FILES)


def cuda_provider_options(device_id: int = 0, gpu_mem_limit_bytes: int | None = None) -> dict:
    """CUDA provider options: which GPU, an arena that grows only by what each allocation
    asks for, and an optional cap on it."""
    options: dict[str, Any] = {
        "device_id": device_id,
        "arena_extend_strategy": "kSameAsRequested",
    }
    if gpu_mem_limit_bytes:
        options["gpu_mem_limit"] = gpu_mem_limit_bytes
    return options


def recurrent_node_providers(
    session_factory: Callable[[onnxruntime.SessionOptions], Any], threads: int | None
) -> tuple[Any, dict[str, set[str]]]:
    """(a warmed-up session, {recurrent op type: execution providers its nodes ran on}),
    read from onnxruntime's profile of the warm-up batch."""
    with tempfile.TemporaryDirectory(prefix="deepspeech-profile-") as tmp:
        options = _session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "warmup")
        session = session_factory(options)
        _warm_up(session)
        with open(session.end_profiling()) as profile:
            events = json.load(profile)
    placed: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and args.get("op_name") in RECURRENT_OPS:
            placed.setdefault(args["op_name"], set()).add(args.get("provider", "?"))
    return session, placed


def _session_options(threads: int | None) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: provider fallbacks are reported by us
    return options


def _warm_up(session: onnxruntime.InferenceSession) -> None:
    """Run a tiny batch: proves the providers work and allocates before the first request."""
    shapes = {i.name: i.shape for i in session.get_inputs()}
    width = shapes.get(FEATURES_INPUT, [None])[-1]
    if not isinstance(width, int):
        raise ModelLoadError(f"inputs {shapes}: not a DeepSpeech model (no {FEATURES_INPUT!r})")
    session.run(
        None,
        {
            FEATURES_INPUT: np.zeros((1, WARMUP_FRAMES, width), np.float32),
            LENGTHS_INPUT: np.array([WARMUP_FRAMES], np.int32),
        },
    )


def open_session(
    model_path: Path,
    device: str = "auto",
    threads: int | None = None,
    *,
    device_id: int = 0,
    gpu_mem_limit_bytes: int | None = None,
) -> onnxruntime.InferenceSession:
    """An onnxruntime session on CUDA when asked for (or 'auto') and it really runs, else CPU.

    'Really runs' means the session reports the CUDA provider and a profiled warm-up batch
    succeeds; an LSTM node that ran on the CPU is logged as a warning. Otherwise CPU is used,
    with a warning when CUDA was asked for ('cuda'); 'auto' tries CUDA only where a driver is.
    """
    asked = device == "cuda"
    want_cuda = asked or (
        device == "auto"
        and CUDA_PROVIDER in onnxruntime.get_available_providers()
        and gpu_present()
    )
    if want_cuda:
        outcome = _try_cuda(model_path, threads, device_id, gpu_mem_limit_bytes)
        if not isinstance(outcome, str):
            return outcome
        if asked:
            logger.warning("CUDA was asked for but %s; running on CPU (CPUExecutionProvider)",
                           outcome)  # fmt: skip
        else:
            logger.info("CUDA is not usable (%s); running on CPU", outcome)
    try:
        session = onnxruntime.InferenceSession(
            str(model_path), _session_options(threads), providers=[CPU_PROVIDER]
        )
        _warm_up(session)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"{model_path}: onnxruntime cannot run this model: {e}") from e
    return session


def _try_cuda(
    model_path: Path, threads: int | None, device_id: int, gpu_mem_limit_bytes: int | None
) -> onnxruntime.InferenceSession | str:
    """A checked CUDA session, or why there is none."""
    if CUDA_PROVIDER not in onnxruntime.get_available_providers():
        return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    if not gpu_present():
        return "no NVIDIA driver is loaded (no /dev/nvidiactl)"
    providers = [(CUDA_PROVIDER, cuda_provider_options(device_id, gpu_mem_limit_bytes)),
                 CPU_PROVIDER]  # fmt: skip
    try:
        if hasattr(onnxruntime, "preload_dlls"):
            onnxruntime.preload_dlls()  # CUDA libraries from pip's nvidia-* wheels, if any
        session, placed = recurrent_node_providers(
            lambda options: onnxruntime.InferenceSession(
                str(model_path), options, providers=providers
            ),
            threads,
        )
    except Exception as e:  # onnxruntime raises its own untyped errors
        return f"the CUDA session failed ({e})"
    if CUDA_PROVIDER not in session.get_providers():
        return "onnxruntime fell back to CPU (CUDA or cuDNN libraries missing?)"
    on_cpu = sorted(op for op, where in placed.items() if CUDA_PROVIDER not in where)
    if on_cpu:
        logger.warning(
            "%s nodes run on the CPU, not CUDA (no CUDA kernel; an int8 model's LSTM has none): "
            "serve the fp32 model on GPUs",
            ", ".join(on_cpu),
        )
    else:
        logger.info("LSTM nodes run on CUDA device %d", device_id)
    return session


@dataclass(frozen=True)
class ModelSource:
    """Where a model file is and what to call it: a path, or a registry version downloaded."""

    path: Path
    name: str | None  # from the registry URI; None means "ask the model's metadata"
    version: str | None


def resolve_model_source(source: str | os.PathLike[str], tracking_uri: str | None) -> ModelSource:
    """A path, or `models:/NAME/VERSION` (also `models:/NAME/latest`, `models:/NAME@alias`).

    Registry models are downloaded through MLflow (tracking URI: the argument, else
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db, MLflow's own order).
    """
    text = os.fspath(source)
    if not text.startswith(REGISTRY_SCHEME):
        path = Path(text)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such model file; export one with `deepspeech export`")
        return ModelSource(path, None, None)
    match = _REGISTRY_URI.match(text)
    if not match:
        raise ModelLoadError(
            f"{text}: not a registry URI; write models:/NAME/VERSION, models:/NAME/latest "
            "or models:/NAME@ALIAS"
        )
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    uri = mlflow.get_tracking_uri()
    name, version, alias = match["name"], match["version"], match["alias"]
    client = MlflowClient(uri)
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
        elif version == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise ModelLoadError(f"{text}: model {name!r} has no versions in {uri}")
            version = str(max(int(v.version) for v in versions))
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{REGISTRY_SCHEME}{name}/{version}", tracking_uri=uri
            )
        )
        data = Model.load(local).flavors["onnx"]["data"]
    except MlflowException as e:
        raise ModelLoadError(f"{text}: not found in the MLflow registry at {uri}: {e}") from e
    except KeyError as e:
        raise ModelLoadError(f"{text}: the registered model has no ONNX flavor") from e
    return ModelSource(local / data, name, str(version))


class SpeechModel:
    """An onnxruntime session with the metadata needed to turn audio into text.

    `session.run` is thread-safe and releases the GIL, so callers may use one model from
    several threads; the server still runs one batch at a time to keep batches large.
    """

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        metadata: ModelMetadata,
        *,
        name: str | None = None,
        version: str | None = None,
        source: str = "",
        decoder: Decoder | None = None,
        decoder_config: DecoderConfig | None = None,
    ) -> None:
        self.session = session
        self.metadata = metadata
        self.decoder = decoder or GreedyDecoder(metadata.alphabet)
        self.decoder_config = decoder_config or DecoderConfig()
        self.name = name or metadata.model_name
        self.version = version or metadata.model_version
        self.source = source

    @property
    def model_id(self) -> str:
        """NAME/VERSION: what responses name as the model that answered."""
        return f"{self.name}/{self.version}"

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses, best first."""
        return list(self.session.get_providers())

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/model` returns."""
        m = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "model": self.model_id,
            "sample_rate": m.sample_rate,
            "alphabet": list(m.alphabet.labels),
            "execution_providers": self.providers,
            "opset": m.opset,
            "quantization": m.quantization,
            "features": {
                "numcep": m.features.numcep,
                "numcontext": m.features.numcontext,
                "stride": m.features.stride,
            },
            "n_hidden": m.n_hidden,
            "n_classes": m.alphabet.num_classes,
            "mlflow_run_id": m.mlflow_run_id or None,
            "git_commit": m.git_commit or None,
            "test_wer": m.test_wer,
            "decoder": {
                "decoder": self.decoder_config.decoder,
                "beam_width": self.decoder_config.beam_width,
                # The file name only: the server's directory layout is not the clients' business.
                "lm": self.decoder_config.lm_path.name if self.decoder_config.lm_path else None,
                "alpha": self.decoder_config.alpha,
                "beta": self.decoder_config.beta,
            },
        }

    def features(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono (n_samples,) float -> (T, numcep) float32 MFCC, as the model was trained.

        Normalisation and context windows are inside the model's graph.
        """
        f = self.metadata.features
        return audio_to_features(audio, f.numcep, f.stride)

    def probabilities(self, features: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One padded onnxruntime batch: [(T_i, numcep)] -> [(T_i, n_classes)] probabilities."""
        probs, lengths = self._run(features)
        return [p[:n] for p, n in zip(probs, lengths, strict=True)]

    def transcribe_features(self, features: Sequence[np.ndarray]) -> list[str]:
        """Transcripts of one padded batch (greedy, or beam + LM as opened); padding does not
        change any of them."""
        probs, lengths = self._run(features)
        return self.decoder.decode_batch(probs, lengths)

    def _run(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        batch, lengths = pad_features(features)  # (B, T_max, numcep), (B,)
        (probs,) = self.session.run(
            [PROBABILITIES_OUTPUT], {FEATURES_INPUT: batch, LENGTHS_INPUT: lengths}
        )
        return probs, lengths  # (B, T_max, n_classes), (B,)


def open_model(
    source: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    decoder: DecoderConfig | None = None,
    device_id: int = 0,
    gpu_mem_limit_bytes: int | None = None,
) -> SpeechModel:
    """Open an exported model file or registry version, ready to transcribe (greedy decoding
    unless `decoder` asks for beam search; its LM is loaded here, once)."""
    resolved = resolve_model_source(source, tracking_uri)
    session = open_session(
        resolved.path,
        device,
        threads,
        device_id=device_id,
        gpu_mem_limit_bytes=gpu_mem_limit_bytes,
    )
    props = session.get_modelmeta().custom_metadata_map
    metadata = ModelMetadata.from_props(props, os.fspath(source))
    _check_signature(session, metadata, os.fspath(source))
    if metadata.sample_rate != SAMPLE_RATE:
        raise ModelLoadError(
            f"{source}: model expects {metadata.sample_rate} Hz audio; this code reads "
            f"{SAMPLE_RATE} Hz"
        )
    decoder = decoder or DecoderConfig()
    model = SpeechModel(
        session,
        metadata,
        name=resolved.name,
        version=resolved.version,
        source=os.fspath(source),
        decoder=make_decoder(decoder, metadata.alphabet, kind="probabilities"),
        decoder_config=decoder,
    )
    logger.info("model %s from %s on %s", model.model_id, source, ", ".join(model.providers))
    return model


def _check_signature(
    session: onnxruntime.InferenceSession, metadata: ModelMetadata, source: str
) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if set(inputs) != {FEATURES_INPUT, LENGTHS_INPUT} or PROBABILITIES_OUTPUT not in outputs:
        raise ModelLoadError(
            f"{source}: inputs {sorted(inputs)} / outputs {sorted(outputs)}, expected "
            f"{FEATURES_INPUT}, {LENGTHS_INPUT} -> {PROBABILITIES_OUTPUT}; re-export the model"
        )
    width = inputs[FEATURES_INPUT].shape[-1]
    if isinstance(width, int) and width != metadata.input_width:
        raise ModelLoadError(
            f"{source}: features input is {width} wide but the metadata implies "
            f"{metadata.input_width}; the model file is inconsistent"
        )


def read_audio(
    source: AudioSource, *, max_seconds: float | None = None, name: str | None = None
) -> np.ndarray:
    """A WAV (path, bytes or file) -> (n_samples,) float32 16 kHz mono, within `max_seconds`.

    The header is checked before anything is decoded, so an hour-long upload is refused
    cheaply; the decoded length is checked too, since a header may lie. Raises
    `AudioFormatError` (undecodable) or `AudioTooLongError`.
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<upload>")
    if max_seconds is not None:
        info = read_wav_info(source, name=label)
        _check_duration(info.duration_seconds, max_seconds, label)
    audio = load_wav(source, convert=True, name=label)
    if max_seconds is not None:
        _check_duration(len(audio) / SAMPLE_RATE, max_seconds, label)
    return audio


def _check_duration(seconds: float, max_seconds: float, label: str) -> None:
    if seconds > max_seconds:
        raise AudioTooLongError(
            f"{label}: {seconds:.1f} s of audio, longer than the {max_seconds:g} s limit; "
            "split it into shorter clips"
        )


@dataclass(frozen=True)
class FileTranscript:
    """One file's outcome in `transcribe_files`: a transcript, or the error that stopped it."""

    path: str
    text: str | None
    duration_s: float
    error: DeepSpeechError | None = None


def transcribe_files(
    model: SpeechModel,
    paths: Sequence[str | os.PathLike[str]],
    *,
    batch_size: int = 8,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[FileTranscript]:
    """Transcribe files in order; a bad file yields its error and the others go on.

    Files are read and featurized by a thread pool, TRANSCRIBE_CHUNK at a time, sorted by
    length into batches of `batch_size` (little padding), and yielded in the order given.
    """
    with ThreadPoolExecutor(workers or available_cpus()) as pool:
        for start in range(0, len(paths), TRANSCRIBE_CHUNK):
            chunk = [os.fspath(p) for p in paths[start : start + TRANSCRIBE_CHUNK]]
            prepared = list(pool.map(lambda p: _prepare_file(model, p), chunk))
            good = [i for i, item in enumerate(prepared) if not isinstance(item, FileTranscript)]
            good.sort(key=lambda i: prepared[i][1].shape[0])
            texts: dict[int, str] = {}
            for batch in _batches(good, batch_size):
                results = model.transcribe_features([prepared[i][1] for i in batch])
                texts.update(zip(batch, results, strict=True))
            for i, item in enumerate(prepared):
                if isinstance(item, FileTranscript):
                    yield item
                else:
                    yield FileTranscript(chunk[i], texts[i], item[0])
                if progress:
                    progress(1)


def _prepare_file(model: SpeechModel, path: str) -> tuple[float, np.ndarray] | FileTranscript:
    try:
        audio = read_audio(path)
        return len(audio) / SAMPLE_RATE, model.features(audio)
    except DeepSpeechError as e:
        return FileTranscript(path, None, 0.0, e)


def _batches(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
