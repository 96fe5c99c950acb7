"""Inference speed: onnxruntime against TensorFlow on the same BiRNN weights, batch 1.

Run: .venv/bin/python benchmarks/inference.py [--sizes 256,1024,2048] [--seconds 10]
     [--repeats 5] [--markdown]

For each width, a BiRNN with random weights is exported with the real export code
(`deepspeech.model.export.convert_to_onnx`) and timed on the features of `--seconds` of audio:
TensorFlow running the model as trained (masked LSTM, what `evaluate` runs), TensorFlow running
the unmasked graph that is exported, and onnxruntime on the exported file. The three run in
interleaved repetitions in one process, so machine noise hits them alike; the ratios are the
figures to trust, the times are rough.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from machine import cpu_model

from deepspeech.audio import N_CEPSTRUM, n_feature_frames
from deepspeech.model.export import (
    FEATURES_INPUT,
    LENGTHS_INPUT,
    PROBABILITIES_OUTPUT,
    convert_to_onnx,
)
from deepspeech.parallel import available_cpus

TARGET_SPEEDUP = 3.0  # onnxruntime over TensorFlow (model as trained), batch 1
ORT = "onnxruntime"  # intra-op threads = usable CPUs: fastest for one call on an idle machine
ORT_ONE_THREAD = "onnxruntime, 1 thread"  # the server's default (see serving/settings.py)
TF_TRAINED = "TensorFlow, masked (as trained)"
TF_EXPORTED = "TensorFlow, unmasked (as exported)"
N_CLASSES = 29  # default alphabet + blank


def build_runners(
    n_hidden: int, features: np.ndarray
) -> tuple[dict[str, Callable[[], np.ndarray]], float, float]:
    """(runner per implementation, seconds to convert, max |TF - ORT| probability)."""
    import keras
    import onnxruntime
    import tensorflow as tf

    from deepspeech.config import ModelConfig
    from deepspeech.model.birnn import build_birnn

    keras.utils.set_random_seed(0)
    model = build_birnn(ModelConfig(N_CLASSES, n_hidden=n_hidden, dropout_rate=0.0))
    start = time.perf_counter()
    proto, _ = convert_to_onnx(model)
    convert_seconds = time.perf_counter() - start

    onnx_bytes = proto.SerializeToString()
    del proto

    def session(threads: int) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    sessions = {threads: session(threads) for threads in sorted({available_cpus(), 1})}
    lengths = np.array([features.shape[1]], np.int32)
    signature = [
        tf.TensorSpec((None, None, N_CEPSTRUM), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    ]

    @tf.function(input_signature=signature)
    def tf_masked(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(model(x, n, training=False), axis=-1)

    @tf.function(input_signature=signature)
    def tf_unmasked(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(model.forward(x, n, training=False, mask_lstm=False), axis=-1)

    inputs = {FEATURES_INPUT: features, LENGTHS_INPUT: lengths}
    runners: dict[str, Callable[[], np.ndarray]] = {
        ORT: lambda: sessions[available_cpus()].run([PROBABILITIES_OUTPUT], inputs)[0],
        ORT_ONE_THREAD: lambda: sessions[1].run([PROBABILITIES_OUTPUT], inputs)[0],
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
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()
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
    print("## Inference\n")
    print(
        f"One utterance ({args.seconds:g} s of audio = {frames} feature frames at stride 1, "
        "batch 1) through the BiRNN with random weights:\nonnxruntime on the exported model "
        "against TensorFlow on the same weights, as trained (masked LSTM) and as exported\n"
        "(unmasked), in one process with interleaved repetitions. Times are the best of the "
        "repetitions\n(the machine is shared: the best is the least disturbed), and the ratio "
        "is ORT's speed-up.\n"
    )
    print(f"- Command: `{command}`")
    print(f"- Date: {datetime.date.today().isoformat()}")
    print(
        f"- Machine: {cpu_model()}, nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"onnxruntime {version('onnxruntime-gpu')} (CPU provider, {available_cpus()} threads), "
        f"tensorflow {tf.__version__}, tf2onnx {version('tf2onnx')}"
    )
    print(f"- {args.repeats} repetitions per implementation and width\n")
    print(
        "| n_hidden | convert | max \\|TF − ORT\\| | ORT | ORT, 1 thread | TF as trained | "
        "TF as exported | ORT speed-up vs trained | vs exported |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_hidden, convert_seconds, max_diff, _, best in rows:
        ort = best[ORT]
        print(
            f"| {n_hidden} | {convert_seconds:.1f} s | {max_diff:.1e} | {ort * 1e3:.1f} ms | "
            f"{best[ORT_ONE_THREAD] * 1e3:.1f} ms | {best[TF_TRAINED] * 1e3:.1f} ms | "
            f"{best[TF_EXPORTED] * 1e3:.1f} ms | {best[TF_TRAINED] / ort:.1f}× | "
            f"{best[TF_EXPORTED] / ort:.1f}× |"
        )
    print(
        f"\nonnxruntime is {min(speedups):.1f}–{max(speedups):.1f}× faster than TensorFlow "
        f"running the model as trained (target ≥ {TARGET_SPEEDUP:g}×: {verdict})."
    )


if __name__ == "__main__":
    main()
