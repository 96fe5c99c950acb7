"""The deployable: one MLflow pyfunc model holding the ONNX model, its LM and decoder settings.

`deepspeech export --register NAME` logs `SpeechToText` with three artifacts (the ONNX file,
`decoder.json` and, with `--lm`, the LM; names in `serving.inference`), so
`mlflow.pyfunc.load_model("models:/NAME@production").predict(df)` and `mlflow models serve`
turn WAV bytes into text with the exact decoder the model was exported with, and
`deepspeech serve --model models:/NAME@production` reads the same artifacts
(`serving.inference.resolve_model_source`).

Input: a DataFrame column `audio` of WAV files as bytes (any PCM or float WAV; in JSON,
base64, which MLflow's scoring server decodes because the signature says `binary`). Output: a
DataFrame of `text`, `confidence`, `duration_s` and `words` (a list of `{"word", "start",
"end", "confidence"}`, seconds), the fields of `transcribe --format json`. Clips are batched;
a recording longer than one VAD segment is cut at pauses (`serving.recordings`).

The class is pickled by reference: the environment that loads the model must have this
project installed (`mlflow models serve --env-manager local` in its environment). MLflow is
imported at the top, so only the registry step and MLflow's own loader import this module.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

from deepspeech.audio import SAMPLE_RATE, read_wav_info
from deepspeech.errors import DeepSpeechError
from deepspeech.runtime.offline import OfflineModel
from deepspeech.vad import VadSettings
from serving.inference import (
    BUNDLE_DECODER,
    BUNDLE_LM,
    BUNDLE_ONNX,
    DecodeOptions,
    ModelLocation,
    OfflineRecognizer,
    decoder_for,
    read_audio,
    read_packed_decoder,
)
from serving.recordings import FileTranscript, transcribe_recording, transcript_json

AUDIO_COLUMN = "audio"
OUTPUT_COLUMNS = ("text", "confidence", "duration_s", "words")
BATCH_SIZE = 8  # clips per model call
EXAMPLE_SECONDS = 0.5  # the input example: half a second of silence
# What the serving path imports, pinned as installed (the project itself is referenced, not
# packed: it must be installed where the bundle is loaded).
RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "numpy",
    "pandas",
    "scipy",
    "soundfile",
    "python_speech_features",
    "flashlight-text",
    "webrtcvad-wheels",
    "pyyaml",
    "rapidfuzz",
    "threadpoolctl",
)


class SpeechToText(mlflow.pyfunc.PythonModel):
    """WAV bytes in, timed transcripts out, decoded as the bundle's decoder.json says."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        lm = Path(artifacts[BUNDLE_LM]) if BUNDLE_LM in artifacts else None
        onnx_file = Path(artifacts[BUNDLE_ONNX])
        location = ModelLocation(
            onnx_file, None, None, read_packed_decoder(Path(artifacts[BUNDLE_DECODER]), lm)
        )
        self.recognizer = OfflineRecognizer(
            OfflineModel.load(onnx_file, label=str(onnx_file)),
            source=str(onnx_file),
            decoder_config=decoder_for(location),
        )
        self.vad = VadSettings()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One output row per input row, in order; a row that is not a WAV file fails the
        call with its row number (HTTP 400 from `mlflow models serve`)."""
        if AUDIO_COLUMN not in model_input.columns:
            raise MlflowException.invalid_parameter_value(
                f"expected a column {AUDIO_COLUMN!r} of WAV bytes, got {list(model_input.columns)}"
            )
        audio = [_wav_bytes(value, i) for i, value in enumerate(model_input[AUDIO_COLUMN])]
        try:
            results = transcribe_wavs(self.recognizer, audio, self.vad)
        except DeepSpeechError as e:
            raise MlflowException.invalid_parameter_value(str(e)) from e
        rows = [transcript_json(r, words=True, alternatives=False) for r in results]
        return pd.DataFrame([{c: row[c] for c in OUTPUT_COLUMNS} for row in rows])


def transcribe_wavs(
    model: OfflineRecognizer, wavs: list[bytes], vad: VadSettings
) -> list[FileTranscript]:
    """Transcripts of WAV files in memory: clips batched by length, longer recordings cut at
    pauses. Raises the first unreadable file's error, naming its row."""
    results: dict[int, FileTranscript] = {}
    clips: list[tuple[int, float, np.ndarray]] = []
    for i, data in enumerate(wavs):
        label = f"row {i}"
        if read_wav_info(data, name=label).duration_seconds > vad.max_segment_s:
            results[i] = transcribe_recording(
                model, io.BytesIO(data), name=label, vad=vad, batch_size=BATCH_SIZE
            )
            continue
        samples = read_audio(data, name=label)
        clips.append((i, len(samples) / SAMPLE_RATE, model.features(samples)))
    clips.sort(key=lambda clip: clip[2].shape[0])  # little padding per batch
    for start in range(0, len(clips), BATCH_SIZE):
        batch = clips[start : start + BATCH_SIZE]
        found = model.transcribe_batch([c[2] for c in batch], [DecodeOptions()] * len(batch))
        for (i, seconds, _), metadata in zip(batch, found, strict=True):
            results[i] = FileTranscript.whole(f"row {i}", seconds, metadata)
    return [results[i] for i in range(len(wavs))]


def _wav_bytes(value: Any, row: int) -> bytes:
    """A cell of the audio column as bytes: bytes as they are, a str as base64."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=False)
        except ValueError as e:
            raise MlflowException.invalid_parameter_value(f"row {row}: not base64: {e}") from e
    raise MlflowException.invalid_parameter_value(
        f"row {row}: {AUDIO_COLUMN} must be WAV bytes (base64 in JSON), got {type(value).__name__}"
    )


def signature() -> ModelSignature:
    """`audio` (binary) in; text, confidence, duration and timed words out."""
    word = Object(
        [
            Property("word", "string"),
            Property("start", "double"),
            Property("end", "double"),
            Property("confidence", "double"),
        ]
    )
    return ModelSignature(
        inputs=Schema([ColSpec("binary", AUDIO_COLUMN)]),
        outputs=Schema(
            [
                ColSpec("string", "text"),
                ColSpec("double", "confidence"),
                ColSpec("double", "duration_s"),
                ColSpec(Array(word), "words"),
            ]
        ),
    )


def input_example() -> pd.DataFrame:
    """Half a second of silence as a WAV file: what a request looks like (MLflow also checks,
    at logging time, that the bundle answers it)."""
    buffer = io.BytesIO()
    silence = np.zeros(int(EXAMPLE_SECONDS * SAMPLE_RATE), np.int16)
    soundfile.write(buffer, silence, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return pd.DataFrame({AUDIO_COLUMN: [buffer.getvalue()]})


def pip_requirements() -> list[str]:
    """The serving path's libraries at their installed versions (onnxruntime as installed:
    the GPU build or the CPU one)."""
    names = [*RUNTIME_DISTRIBUTIONS, _installed("onnxruntime-gpu", "onnxruntime")]
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def _installed(*names: str) -> str:
    for name in names:
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    return names[-1]
