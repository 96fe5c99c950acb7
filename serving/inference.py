"""Audio to text with an exported model: the offline recognizer the server and `transcribe` share.

audio bytes or file -> 16 kHz mono (`load_wav`, any PCM/float WAV converted) -> MFCC frames
with the model's own settings -> the runtime's `OfflineModel` (padded batch -> onnxruntime ->
per-frame probabilities) -> greedy CTC decoding, or beam search with an LM.

The model describes itself (its ONNX metadata holds alphabet, sample rate and feature
settings), so nothing here needs the training checkpoint, and nothing imports TensorFlow.
A model is a file or an MLflow registry version (`models:/NAME/VERSION`, `models:/NAME@ALIAS`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepspeech.audio import PCM16_SCALE, SAMPLE_RATE, AudioSource, load_wav, read_wav_info
from deepspeech.decoding.decoders import Decoder, DecoderConfig, make_decoder
from deepspeech.decoding.hot_words import HotWords
from deepspeech.decoding.transcript import Metadata, decode_with_metadata
from deepspeech.errors import AudioFormatError, AudioTooLongError, ModelLoadError
from deepspeech.runtime.graph import ModelMetadata
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.session import Placement

logger = logging.getLogger(__name__)

REGISTRY_SCHEME = "models:/"
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))$")


@dataclass(frozen=True)
class ModelLocation:
    """Where a model file is and what to call it: a path, or a registry version downloaded."""

    path: Path
    name: str | None  # from the registry URI; None means "ask the model's metadata"
    version: str | None


def resolve_model_source(source: str | os.PathLike[str], tracking_uri: str | None) -> ModelLocation:
    """A path, or `models:/NAME/VERSION` (also `models:/NAME/latest`, `models:/NAME@alias`).

    Registry models are downloaded through MLflow (tracking URI: the argument, else
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db, MLflow's own order).
    """
    text = os.fspath(source)
    if not text.startswith(REGISTRY_SCHEME):
        path = Path(text)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such model file; export one with `deepspeech export`")
        return ModelLocation(path, None, None)
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
    return ModelLocation(local / data, name, str(version))


@dataclass(frozen=True)
class DecodeOptions:
    """What one utterance asks of decoding beyond its best text."""

    num_results: int = 1  # N-best (the beam decoder's; greedy has one)
    hot_words: HotWords | None = None  # on top of the decoder's own
    offset: float = 0.0  # seconds added to every time: a segment's place in its recording


class HotWordMethods:
    """DeepSpeech 0.9.3's hot-word calls on a model: they change its decoder's list, so every
    transcript (or stream) from then on favours the words (beam decoder only)."""

    decoder: Decoder

    def add_hot_word(self, word: str, boost: float) -> None:
        """Favour `word` by `boost` nats (negative: suppress it)."""
        self.decoder.hot_words.add(word, boost)

    def erase_hot_word(self, word: str) -> None:
        self.decoder.hot_words.erase(word)

    def clear_hot_words(self) -> None:
        self.decoder.hot_words.clear()


class OfflineRecognizer(HotWordMethods):
    """An exported whole-utterance model with the decoder and name that turn audio into text.

    The model runs in the runtime (`OfflineModel.run` is thread-safe and releases the GIL),
    so callers may use one recognizer from several threads; the server still runs one batch
    at a time to keep batches large.
    """

    def __init__(
        self,
        model: OfflineModel,
        *,
        name: str | None = None,
        version: str | None = None,
        source: str = "",
        decoder_config: DecoderConfig | None = None,
    ) -> None:
        self.model = model
        self.metadata: ModelMetadata = model.metadata
        self.decoder_config = decoder_config or DecoderConfig()  # greedy unless told
        self.decoder: Decoder = make_decoder(
            self.decoder_config, self.metadata.alphabet, kind="probabilities"
        )
        self.name = name or self.metadata.model_name
        self.version = version or self.metadata.model_version
        self.source = source

    def stt(self, audio: np.ndarray) -> str:
        """Transcript of a whole (n,) 16 kHz mono signal: int16 samples, or floats in [-1, 1]."""
        return self.stt_with_metadata(audio).text

    def stt_with_metadata(self, audio: np.ndarray, num_results: int = 1) -> Metadata:
        """The `num_results` best transcripts of a (n,) 16 kHz signal, with token and word
        timings and confidences (N-best needs the beam decoder; greedy has one)."""
        features = self.features(as_float_audio(audio))
        return self.transcribe_batch([features], [DecodeOptions(num_results)])[0]

    def transcribe_batch(
        self, features: Sequence[np.ndarray], options: Sequence[DecodeOptions] | None = None
    ) -> list[Metadata]:
        """Timed N-best transcripts of one padded batch (one model call), each utterance
        decoded as its `options` ask; padding changes none of them."""
        probs, lengths = self.model.run(features)
        options = options or [DecodeOptions()] * len(features)
        return [
            decode_with_metadata(
                self.decoder,
                p,
                self.metadata.alphabet,
                self.metadata.features.frame_seconds,
                length=int(n),
                num_results=o.num_results,
                hot_words=o.hot_words,
                offset=o.offset,
            )
            for p, n, o in zip(probs, lengths, options, strict=True)
        ]

    @property
    def model_id(self) -> str:
        """NAME/VERSION: what responses name as the model that answered."""
        return f"{self.name}/{self.version}"

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses, best first."""
        return self.model.providers

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
        """16 kHz mono (n_samples,) float -> (T, numcep) float32 MFCC, as the model was trained."""
        return self.model.features(audio)

    def transcribe_features(self, features: Sequence[np.ndarray]) -> list[str]:
        """Transcripts of one padded batch (greedy, or beam + LM as opened, with the model's
        hot words); padding does not change any of them."""
        if len(self.decoder.hot_words):
            return [m.text for m in self.transcribe_batch(features)]
        probs, lengths = self.model.run(features)
        return self.decoder.decode_batch(probs, lengths)


def open_model(
    source: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    placement: Placement = Placement(device="auto"),
    decoder: DecoderConfig | None = None,
) -> OfflineRecognizer:
    """Open an exported model file or registry version, ready to transcribe (greedy decoding
    unless `decoder` asks for beam search; its LM is loaded here, once)."""
    location = resolve_model_source(source, tracking_uri)
    model = OfflineModel.load(location.path, placement, label=os.fspath(source))
    recognizer = OfflineRecognizer(
        model,
        name=location.name,
        version=location.version,
        source=os.fspath(source),
        decoder_config=decoder,
    )
    logger.info(
        "model %s from %s on %s", recognizer.model_id, source, ", ".join(recognizer.providers)
    )
    return recognizer


def as_float_audio(audio: np.ndarray) -> np.ndarray:
    """(n,) int16 PCM (DeepSpeech's input) or float samples -> (n,) float32 in [-1, 1]."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioFormatError(f"expected (n,) mono samples at {SAMPLE_RATE} Hz, got {audio.shape}")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / PCM16_SCALE
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioFormatError(f"expected int16 or float samples, got {audio.dtype}")
    return audio.astype(np.float32, copy=False)


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
        check_duration(info.duration_seconds, max_seconds, label)
    audio = load_wav(source, convert=True, name=label)
    if max_seconds is not None:
        check_duration(len(audio) / SAMPLE_RATE, max_seconds, label)
    return audio


def check_duration(seconds: float, max_seconds: float, label: str) -> None:
    """AudioTooLongError when `seconds` of audio are over the limit."""
    if seconds > max_seconds:
        raise AudioTooLongError(
            f"{label}: {seconds:.1f} s of audio, longer than the {max_seconds:g} s limit "
            "(a server's --max-audio-seconds)"
        )
