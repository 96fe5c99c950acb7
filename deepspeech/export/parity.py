"""Is the exported graph the trained model? Parity on real utterances, through the runtime.

The Keras side is the model as trained (masked LSTM); the ONNX side is the exported file run
exactly as serving runs it (`deepspeech.runtime`), so what is checked is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from deepspeech.audio import audio_to_features, load_wav
from deepspeech.data.manifest import read_manifests
from deepspeech.errors import DeepSpeechError, ExportError
from deepspeech.model.birnn import BiRNN
from deepspeech.runtime.graph import pad_features
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.streaming import StreamingModel, stream_scores
from deepspeech.training.checkpoint import RunInfo

PARITY_TOLERANCE = 1e-3  # max |Keras - onnxruntime| probability allowed on real frames
# Real utterances checked: ~300 words, so one int8 word error is < 0.5 WER points.
PARITY_UTTERANCES = 64
STREAM_PARITY_TOLERANCE = 1e-4  # max |Keras whole utterance - streamed| logit allowed
STREAM_PARITY_CHUNKS = (1, 7, 50)  # frames per call the streaming export is checked with


def parity_utterances(
    info: RunInfo, parity_files: str | None
) -> tuple[str, list[np.ndarray], list[str]]:
    """A few real utterances: (manifest used, [(T, numcep) float32, ...], transcripts).

    Evenly spaced over the first manifest that reads (explicit, else test, dev, train), so
    short and long utterances both get checked.
    """
    candidates = (
        [parity_files]
        if parity_files
        else [info.train_options.get(k) for k in ("test_files", "dev_files", "train_files")]
    )
    problems = []
    for spec in filter(None, candidates):
        try:
            utterances = read_manifests(spec, info.alphabet)
        except DeepSpeechError as e:
            if parity_files:
                raise
            problems.append(str(e))
            continue
        picks = np.unique(np.linspace(0, len(utterances) - 1, PARITY_UTTERANCES).round())
        chosen = [utterances[int(i)] for i in picks]
        f = info.features
        return (
            spec,
            [audio_to_features(load_wav(u.wav_path), f.numcep, f.stride) for u in chosen],
            [u.transcript for u in chosen],
        )
    raise ExportError(
        "no manifest to check the export on ("
        + ("; ".join(problems) or "the run names none")
        + "); pass --parity-files CSV"
    )


def full_float32() -> None:
    """Keras computes in full float32 from here on: on Ampere and later GPUs TensorFlow's
    default TF32 rounds matmul inputs to 10 bits, which parity would count as export error."""
    tf.config.experimental.enable_tensor_float_32_execution(False)


def check_parity(model: BiRNN, exported: OfflineModel, features: Sequence[np.ndarray]) -> float:
    """Max |Keras - onnxruntime| probability over real frames, batched and one at a time.

    Keras runs the padded batch; the exported model runs the same padded batch and each
    utterance alone, so both the conversion and the padding invariance are checked.
    """
    full_float32()
    batch, lengths = pad_features(features)
    logits = model(tf.constant(batch), tf.constant(lengths), training=False)
    expected = tf.nn.softmax(logits, axis=-1).numpy()
    batched, _ = exported.run(features)
    diffs = []
    for row, f in enumerate(features):
        n = f.shape[0]
        (alone,) = exported.probabilities([f])
        diffs.append(np.abs(batched[row, :n] - expected[row, :n]).max())
        diffs.append(np.abs(alone - expected[row, :n]).max())
    return float(np.max(diffs))  # NaN propagates, and fails the caller's check


def check_streaming_parity(
    model: BiRNN, exported: StreamingModel, features: Sequence[np.ndarray]
) -> float:
    """Max |Keras whole-utterance - streamed| logit, each utterance fed in chunks of every
    size in STREAM_PARITY_CHUNKS frames."""
    full_float32()
    diffs = []
    for f in features:
        expected = model(tf.constant(f[None]), tf.constant([len(f)]), training=False)[0].numpy()
        for chunk_frames in STREAM_PARITY_CHUNKS:
            streamed = stream_scores(exported, f, chunk_frames)
            if streamed.logits.shape != expected.shape:
                return float("inf")
            diffs.append(np.abs(streamed.logits - expected).max())
    return float(np.max(diffs))  # NaN propagates, and fails the caller's check
