"""Inputs benchmarks share: speech-like WAVs, the model a server benchmark serves (`--model`, or
random weights exported), the check for a file another command makes first (a corpus, make
run's store), and the machine's ceilings and the model's FLOP for roofline figures.

Speed does not depend on what the weights or the audio say, so neither needs training data.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Callable, Iterator
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


# The machine's ceilings and the model's arithmetic, for the roofline figures of
# benchmarks/inference.py and benchmarks/training.py.


def cache_sizes() -> dict[str, int]:
    """Bytes of each data or unified cache level CPU 0 sees (Linux sysfs): {"L1d": ..,
    "L2": .., "L3": ..}; empty where sysfs does not say."""
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()  # "48K", "32768K"
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
        sizes[f"L{level}" + ("d" if kind == "Data" else "")] = int(size.rstrip("KMG")) * scale
    return sizes


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The least disturbed of `repeats` timed calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """The machine's measured matmul peak: GFLOP/s of numpy's BLAS on two size x size float32
    matrices with `threads` BLAS threads (best of `repeats`)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    with threadpool_limits(threads):
        return 2 * size**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Measured memory bandwidth, GB/s: bytes read plus bytes written by a numpy copy of a
    float32 array far larger than the caches (best of `repeats`)."""
    source = np.ones(megabytes * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    return 2 * source.nbytes / best_seconds(lambda: np.copyto(target, source), repeats) / 1e9


def birnn_flop_per_frame(n_hidden: int, n_classes: int = 29) -> tuple[int, int]:
    """FLOP one frame costs the bidirectional BiRNN's forward pass, 2 per multiply-add, biases
    and element-wise ops left out: (the products that can run as one matrix product over all
    frames: h1 on the 494-wide context window, h2, h3, each direction's LSTM input product
    x·W (n x 4n), h5 on the 2n concatenated outputs, h6; the recurrent products h·R (n x 4n)
    per direction, which need the previous frame's output and so run frame by frame)."""
    from deepspeech.audio import N_INPUT

    n = n_hidden
    batched = N_INPUT * n + 2 * n * n + 2 * (n * 4 * n) + 2 * n * n + n * n_classes
    recurrent = 2 * (n * 4 * n)
    return 2 * batched, 2 * recurrent
