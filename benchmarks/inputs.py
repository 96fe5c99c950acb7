"""Inputs the server benchmarks share: speech-like WAVs and a random-weights exported model.

Speed does not depend on what the weights or the audio say, so neither needs training data.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

from deepspeech.audio import SAMPLE_RATE


def speech_like_wav(seconds: float, seed: int) -> bytes:
    """A 16 kHz PCM_16 WAV of voiced-sounding noise (content does not matter for speed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 110 + 30 * np.sin(2 * np.pi * 0.5 * t)
    voiced = sum(np.sin(k * 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE) / k for k in range(1, 12))
    audio = 0.2 * voiced * np.sin(np.pi * 3 * t) ** 2 + 0.01 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.9 * audio / np.abs(audio).max()).astype(np.float32), SAMPLE_RATE,
                    format="WAV", subtype="PCM_16")  # fmt: skip
    return buffer.getvalue()


def random_weights_model(n_hidden: int, folder: Path) -> Path:
    """Export a BiRNN with random weights (stride 1 features) with the real export code."""
    import keras
    import onnx

    from deepspeech.config import FeatureConfig, ModelConfig
    from deepspeech.model.birnn import build_birnn
    from deepspeech.model.export import ModelMetadata, convert_to_onnx, write_metadata
    from deepspeech.text import Alphabet

    keras.utils.set_random_seed(0)
    alphabet, features = Alphabet.default(), FeatureConfig()
    model = build_birnn(ModelConfig(alphabet.num_classes, n_hidden=n_hidden))
    proto, _ = convert_to_onnx(model)
    write_metadata(
        proto, ModelMetadata(alphabet, features, n_hidden, model_name=f"random-{n_hidden}")
    )
    path = folder / f"random-{n_hidden}.onnx"
    onnx.save(proto, path)
    return path
