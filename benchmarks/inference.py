"""Inference speed: onnxruntime against TensorFlow on the same BiRNN weights, batch 1.

Run: .venv/bin/python benchmarks/inference.py [--sizes 256,1024,2048] [--seconds 10]
     [--repeats 5] [--markdown]

For each width, a BiRNN with random weights is exported with the real export code
(`deepspeech.export.convert.convert_to_onnx`) and timed on the features of `--seconds` of audio:
TensorFlow running the model as trained (masked LSTM, what `evaluate` runs), TensorFlow running
the unmasked graph that is exported, and onnxruntime on the exported file. The three run in
interleaved repetitions in one process, so machine noise hits them alike; the ratios are the
figures to trust, the times are rough.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from inputs import with_metadata
from section import head, parse_args, print_result

from deepspeech.audio import N_CEPSTRUM, n_feature_frames
from deepspeech.export.convert import convert_to_onnx
from deepspeech.parallel import available_cpus
from deepspeech.runtime.offline import OfflineModel
from deepspeech.runtime.session import Placement

if TYPE_CHECKING:
    import keras

TARGET_SPEEDUP = 3.0  # onnxruntime over TensorFlow (model as trained), batch 1
ORT = "onnxruntime"  # intra-op threads = usable CPUs: fastest for one call on an idle machine
ORT_ONE_THREAD = "onnxruntime, 1 thread"  # the server's default (see serving/settings.py)
TF_TRAINED = "TensorFlow, masked (as trained)"
TF_EXPORTED = "TensorFlow, unmasked (as exported)"
N_CLASSES = 29  # default alphabet + blank


def random_birnn(n_hidden: int) -> keras.Model:
    """The BiRNN of width `n_hidden` with random weights (seed 0), no dropout."""
    import keras

    from deepspeech.model.birnn import build_birnn
    from deepspeech.model.config import ModelConfig

    keras.utils.set_random_seed(0)
    return build_birnn(ModelConfig(N_CLASSES, n_hidden=n_hidden, dropout_rate=0.0))


def traced_softmax(forward: Callable) -> Callable:
    """`forward(features, lengths)`'s logits as probabilities, one tf.function for every shape."""
    import tensorflow as tf

    signature = [
        tf.TensorSpec((None, None, N_CEPSTRUM), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    ]
    return tf.function(
        lambda x, n: tf.nn.softmax(forward(x, n), axis=-1), input_signature=signature
    )


def build_runners(
    n_hidden: int, features: np.ndarray
) -> tuple[dict[str, Callable[[], np.ndarray]], float, float]:
    """(runner per implementation, seconds to convert, max |TF - ORT| probability)."""
    model = random_birnn(n_hidden)
    start = time.perf_counter()
    proto, _ = convert_to_onnx(model)
    convert_seconds = time.perf_counter() - start

    onnx_bytes = with_metadata(proto, n_hidden)
    del proto
    models = {
        threads: OfflineModel.load(onnx_bytes, Placement(threads=threads))
        for threads in sorted({available_cpus(), 1})
    }
    lengths = np.array([features.shape[1]], np.int32)
    tf_masked = traced_softmax(lambda x, n: model(x, n, training=False))
    tf_unmasked = traced_softmax(lambda x, n: model.forward(x, n, training=False, mask_lstm=False))
    runners: dict[str, Callable[[], np.ndarray]] = {
        ORT: lambda: models[available_cpus()].run(list(features))[0],
        ORT_ONE_THREAD: lambda: models[1].run(list(features))[0],
        TF_TRAINED: lambda: tf_masked(features, lengths).numpy(),
        TF_EXPORTED: lambda: tf_unmasked(features, lengths).numpy(),
    }
    outputs = {name: run() for name, run in runners.items()}  # warm-up (tracing, allocation)
    reference = outputs[TF_TRAINED]
    max_diff = max(float(np.abs(out - reference).max()) for out in outputs.values())
    return runners, convert_seconds, max_diff


def time_interleaved(
    runners: dict[str, Callable[[], np.ndarray]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per call for each runner, alternating them within every repetition."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024,2048", help="n_hidden values, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length per call")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    args = parse_args(parser)
    sizes = [int(s) for s in args.sizes.split(",")]

    import tensorflow as tf

    frames = n_feature_frames(round(args.seconds * 16000))
    features = np.random.default_rng(0).standard_normal((1, frames, N_CEPSTRUM)).astype(np.float32)
    rows = []
    for n_hidden in sizes:
        runners, convert_seconds, max_diff = build_runners(n_hidden, features)
        times = time_interleaved(runners, args.repeats)
        medians = {name: statistics.median(t) for name, t in times.items()}
        best = {name: min(t) for name, t in times.items()}
        rows.append((n_hidden, convert_seconds, max_diff, medians, best))
        if not args.markdown:
            ort = medians[ORT]
            print(
                f"n_hidden {n_hidden}: converted in {convert_seconds:.1f} s, "
                f"max |TF - ORT| {max_diff:.1e}"
            )
            for name, median in medians.items():
                print(
                    f"  {name:36s} median {median * 1e3:8.1f} ms  best {best[name] * 1e3:8.1f} ms"
                    f"  ORT speed-up {median / ort:5.2f}×"
                )

    speedups = [r[4][TF_TRAINED] / r[4][ORT] for r in rows]
    verdict = "met" if min(speedups) >= TARGET_SPEEDUP else "NOT met"
    if not args.markdown:
        print(f"target ORT ≥ {TARGET_SPEEDUP:g}× faster than TF as trained: {verdict}")
        return

    command = ".venv/bin/python benchmarks/inference.py --markdown"
    if (args.sizes, args.seconds, args.repeats) != ("256,1024,2048", 10.0, 5):
        command += f" --sizes {args.sizes} --seconds {args.seconds:g} --repeats {args.repeats}"
    intro = (
        f"One utterance ({args.seconds:g} s of audio = {frames} feature frames at stride 1, "
        "batch 1) through the BiRNN with random weights:\nonnxruntime on the exported model "
        "against TensorFlow on the same weights, as trained (masked LSTM) and as exported\n"
        "(unmasked), in one process with interleaved repetitions. Times are the best of the "
        "repetitions\n(the machine is shared: the best is the least disturbed), and the ratio "
        "is ORT's speed-up."
    )
    machine = (
        f", Python {platform.python_version()}, onnxruntime {version('onnxruntime-gpu')} "
        f"(CPU provider, {available_cpus()} threads), tensorflow {tf.__version__}, "
        f"tf2onnx {version('tf2onnx')}"
    )
    repetitions = f"- {args.repeats} repetitions per implementation and width"
    lines = head("Inference", intro, command, repetitions, machine=machine)
    table = [
        "| n_hidden | convert | max \\|TF − ORT\\| | ORT | ORT, 1 thread | TF as trained | "
        "TF as exported | ORT speed-up vs trained | vs exported |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {n_hidden} | {convert_seconds:.1f} s | {max_diff:.1e} | {best[ORT] * 1e3:.1f} ms "
            f"| {best[ORT_ONE_THREAD] * 1e3:.1f} ms | {best[TF_TRAINED] * 1e3:.1f} ms | "
            f"{best[TF_EXPORTED] * 1e3:.1f} ms | {best[TF_TRAINED] / best[ORT]:.1f}× | "
            f"{best[TF_EXPORTED] / best[ORT]:.1f}× |"
            for n_hidden, convert_seconds, max_diff, _, best in rows
        ),
    ]
    summary = (
        f"onnxruntime is {min(speedups):.1f}–{max(speedups):.1f}× faster than TensorFlow "
        f"running the model as trained (target ≥ {TARGET_SPEEDUP:g}×: {verdict})."
    )
    print_result(table, summary, lines)


if __name__ == "__main__":
    main()
