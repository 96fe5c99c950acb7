"""Inputs benchmarks share: speech-like WAVs, the model a server benchmark serves (`--model`, or
random weights exported), and the check for a file another command makes first (a corpus, make
run's store).

Speed does not depend on what the weights or the audio say, so neither needs training data.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from deepspeech.audio import SAMPLE_RATE


def required_file(path: Path, made_by: str) -> Path:
    """`path`, or exit saying which command makes it (`made_by`)."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: run {made_by}")
    return path


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


def with_metadata(proto: object, n_hidden: int, name: str = "random") -> bytes:
    """A converted graph with the metadata the runtime reads (default alphabet, stride 1)."""
    from deepspeech.audio import FeatureConfig
    from deepspeech.export.convert import write_metadata
    from deepspeech.runtime.graph import ModelMetadata
    from deepspeech.text import Alphabet

    write_metadata(
        proto, ModelMetadata(Alphabet.default(), FeatureConfig(), n_hidden, model_name=name)
    )
    return proto.SerializeToString()


def random_weights_model(n_hidden: int, folder: Path) -> Path:
    """Export a BiRNN with random weights (stride 1 features) with the real export code."""
    import keras

    from deepspeech.export.convert import convert_to_onnx
    from deepspeech.model.birnn import build_birnn
    from deepspeech.model.config import ModelConfig
    from deepspeech.text import Alphabet

    keras.utils.set_random_seed(0)
    model = build_birnn(ModelConfig(Alphabet.default().num_classes, n_hidden=n_hidden))
    proto, _ = convert_to_onnx(model)
    path = folder / f"random-{n_hidden}.onnx"
    path.write_bytes(with_metadata(proto, n_hidden, f"random-{n_hidden}"))
    return path


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, an exported model to serve, or --n-hidden, the width of a random-weights one."""
    parser.add_argument("--model", type=Path, help="an exported model (default: random weights)")
    parser.add_argument("--n-hidden", type=int, default=1024, help="width of the random model")


@contextlib.contextmanager
def model_to_serve(args: argparse.Namespace) -> Iterator[Path]:
    """The model `add_model_options` chose; a random-weights one is exported to a temporary
    folder, deleted after."""
    with tempfile.TemporaryDirectory() as folder:
        yield args.model or random_weights_model(args.n_hidden, Path(folder))


def described_model(args: argparse.Namespace) -> str:
    """The model `add_model_options` chose, as a section names it."""
    return f"`{args.model}`" if args.model else f"random weights, n_hidden {args.n_hidden}"
