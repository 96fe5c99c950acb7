"""Audio to text with an exported model: the offline recognizer the server and `transcribe` share.

audio bytes or file -> 16 kHz mono (`load_wav`, any PCM/float WAV converted) -> MFCC frames
with the model's own settings -> the runtime's `OfflineModel` (padded batch -> onnxruntime ->
per-frame probabilities) -> greedy CTC decoding, or beam search with an LM.

The model describes itself (its ONNX metadata holds alphabet, sample rate and feature
settings), so nothing here needs the training checkpoint, and nothing imports TensorFlow.
A model is a file or an MLflow registry version (`models:/NAME/VERSION`, `models:/NAME@ALIAS`).

A registry version is either a bare ONNX model (`mlflow.onnx`, as exports registered it before
the bundle) or a deployable bundle (`deepspeech export --register`, `serving.bundle`): an
MLflow pyfunc whose artifacts are the ONNX file, the decoder settings and the LM. Opening a
bundle opens its ONNX file with its packed decoder unless the caller names another;
`decoder_settings` lays explicit options over the packed ones. A folder holding such a logged
model (its MLmodel file) opens the same way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepspeech.audio import PCM16_SCALE, SAMPLE_RATE, AudioSource, load_wav, read_wav_info
from deepspeech.config import build_settings, settings_of
from deepspeech.decoding.decoders import Decoder, DecoderConfig, make_decoder
from deepspeech.decoding.hot_words import HotWords
from deepspeech.decoding.transcript import Metadata, decode_with_metadata
from deepspeech.errors import AudioFormatError, AudioTooLongError, ModelLoadError
from deepspeech.model_uri import REGISTRY_SCHEME, find_model_version, parse_registry_uri
from deepspeech.runtime.graph import ModelMetadata
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.session import Placement

logger = logging.getLogger(__name__)

# A bundle's pyfunc artifacts, by the names `serving.bundle` logs them under.
BUNDLE_ONNX = "onnx_model"  # the exported whole-utterance ONNX file
BUNDLE_DECODER = "decoder"  # decoder.json: {"format": 1, "settings": {DecoderConfig keys}}
BUNDLE_LM = "lm"  # the word LM, when the bundle has one
BUNDLE_FORMAT = 1
MLMODEL_FILE = "MLmodel"
# Packed settings an explicit `--decoder greedy` drops: they need the beam decoder.
_BEAM_ONLY_KEYS = ("lm", "hot_word")
_DOWNLOADS: dict[tuple[Any, ...], Path] = {}  # registry versions this process downloaded


@dataclass(frozen=True)
class ModelLocation:
    """Where a model file is and what to call it: a path, or a registry version downloaded,
    with the decoder settings a bundle packs."""

    path: Path
    name: str | None  # from the registry URI; None means "ask the model's metadata"
    version: str | None
    # A bundle's decoder as flat DecoderConfig keys (`lm`: the local LM file); None: a bare
    # ONNX model, which decodes as its caller says.
    decoder: Mapping[str, Any] | None = None


def resolve_model_source(source: str | os.PathLike[str], tracking_uri: str | None) -> ModelLocation:
    """A path, or `models:/NAME/VERSION` (also `models:/NAME/latest`, `models:/NAME@alias`).

    A path is an ONNX file or a folder holding a logged model (its MLmodel file). Registry
    models are downloaded through MLflow (tracking URI: the argument, else
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db, MLflow's own order), once per process.
    """
    text = os.fspath(source)
    if not text.startswith(REGISTRY_SCHEME):
        path = Path(text)
        if path.is_dir() and (path / MLMODEL_FILE).is_file():
            onnx_file, decoder = read_logged_model(path, text)
            return ModelLocation(onnx_file, None, None, decoder)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such model file; export one with `deepspeech export`")
        return ModelLocation(path, None, None)
    uri = parse_registry_uri(text)
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    store = mlflow.get_tracking_uri()
    try:
        found = find_model_version(uri, MlflowClient(store))
        local = _download_version(store, uri.name, found)
    except MlflowException as e:
        raise ModelLoadError(f"{text}: not found in the MLflow registry at {store}: {e}") from e
    onnx_file, decoder = read_logged_model(local, text)
    return ModelLocation(onnx_file, uri.name, str(found.version), decoder)


def _download_version(tracking_uri: str, name: str, found: Any) -> Path:
    """A registry version's files (`found`: its ModelVersion), downloaded once per process and
    version (a command that reads a bundle's settings and then opens it downloads it once);
    a version deleted and registered again under its number is another source, so fetched."""
    import mlflow

    key = (tracking_uri, name, str(found.version), found.source, found.creation_timestamp)
    local = _DOWNLOADS.get(key)
    if local is None or not local.is_dir():
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{REGISTRY_SCHEME}{name}/{found.version}", tracking_uri=tracking_uri
            )
        )
        _DOWNLOADS[key] = local
    return local


def read_logged_model(folder: Path, label: str) -> tuple[Path, dict[str, Any] | None]:
    """(the ONNX file, the packed decoder settings or None) of a logged model's folder: a
    deployable bundle (pyfunc with our artifacts) or a bare `mlflow.onnx` model."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        flavors = Model.load(folder).flavors
    except (OSError, ValueError, MlflowException) as e:
        raise ModelLoadError(f"{label}: not a readable MLflow model: {e}") from e
    artifacts = flavors.get("python_function", {}).get("artifacts", {})
    if BUNDLE_ONNX in artifacts and BUNDLE_DECODER in artifacts:
        lm = folder / artifacts[BUNDLE_LM]["path"] if BUNDLE_LM in artifacts else None
        decoder_json = folder / artifacts[BUNDLE_DECODER]["path"]
        return folder / artifacts[BUNDLE_ONNX]["path"], read_packed_decoder(decoder_json, lm)
    if "onnx" in flavors:
        return folder / flavors["onnx"]["data"], None
    raise ModelLoadError(
        f"{label}: neither a deepspeech bundle nor an ONNX model (flavors: {', '.join(flavors)})"
    )


def packed_decoder_json(decoder: DecoderConfig) -> str:
    """decoder.json of a bundle: every DecoderConfig setting by key, so the bundle decodes as
    exported even if defaults change later; the LM travels as its own artifact."""
    settings = {s.key: _value_at(decoder, s.path) for s in settings_of(DecoderConfig)}
    settings["lm"] = None
    settings["hot_word"] = list(settings["hot_word"])
    return json.dumps({"format": BUNDLE_FORMAT, "settings": settings}, indent=2)


def _value_at(config: object, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def read_packed_decoder(decoder_json: Path, lm: Path | None) -> dict[str, Any]:
    """A bundle's decoder settings (flat DecoderConfig keys), `lm` pointing at its LM file."""
    try:
        packed = json.loads(decoder_json.read_text(encoding="utf-8"))
        settings = dict(packed["settings"])
        if packed.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"format {packed.get('format')!r}, this version reads {BUNDLE_FORMAT}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{decoder_json}: not a bundle's decoder settings: {e}") from e
    settings["lm"] = str(lm) if lm is not None else None
    return settings


def decoder_settings(location: ModelLocation, given: Mapping[str, Any]) -> dict[str, Any]:
    """Flat DecoderConfig keys to open `location` with: each option `given` (None: not given)
    over the bundle's packed value. An explicit `--decoder greedy` also drops the packed LM
    and hot words, which only the beam decoder takes."""
    chosen = {k: v for k, v in given.items() if v is not None and v != []}
    packed = dict(location.decoder or {})
    if chosen.get("decoder") == "greedy":
        packed = {k: v for k, v in packed.items() if k not in _BEAM_ONLY_KEYS}
    return {**packed, **chosen}


def decoder_for(location: ModelLocation, given: Mapping[str, Any] | None = None) -> DecoderConfig:
    """The DecoderConfig of `decoder_settings` (a bare model: the options given, else greedy)."""
    return build_settings(DecoderConfig, decoder_settings(location, given or {}))


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
    """Open an exported model file, bundle or registry version, ready to transcribe.

    `decoder` None decodes as the bundle packs it (a bare ONNX model: greedy); a DecoderConfig
    is used as it is (`decoder_for` merges explicit options with a bundle's). An LM is
    loaded here, once.
    """
    location = resolve_model_source(source, tracking_uri)
    model = OfflineModel.load(location.path, placement, label=os.fspath(source))
    recognizer = OfflineRecognizer(
        model,
        name=location.name,
        version=location.version,
        source=os.fspath(source),
        decoder_config=decoder if decoder is not None else decoder_for(location),
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
