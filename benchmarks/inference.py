"""Inference speed: onnxruntime against TensorFlow on the same BiRNN weights, batch 1.

Run: .venv/bin/python benchmarks/inference.py [--sizes 256,1024,2048] [--seconds 10]
     [--repeats 5] [--markdown]

For each width, a BiRNN with random weights is exported with the real export code
(`deepspeech.export.convert.convert_to_onnx`) and timed on the features of `--seconds` of audio:
TensorFlow running the model as trained (masked LSTM, what `evaluate` runs), TensorFlow running
the unmasked graph that is exported, and onnxruntime on the exported file. The three run in
interleaved repetitions in one process, so machine noise hits them alike; the ratios are the
figures to trust, the times are rough.

Behind that table, a roofline: the model's FLOP per call (`inputs.birnn_flop_per_frame`), the
bytes of recurrent weights R each frame re-reads and which cache holds them, the machine's
measured matmul peak and memory bandwidth, and, timed in the same interleaved repetitions, the
recurrent products alone (h·R for both directions, frame by frame, numpy on one BLAS thread)
and the products TensorFlow's loop computes frame by frame (x·W and h·R): the floors the
runtimes cannot go under at batch 1.
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
from inputs import (
    birnn_flop_per_frame,
    cache_sizes,
    matmul_gflops,
    memory_bandwidth,
    with_metadata,
)
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
R_ALONE = "h·R alone, 1 thread"  # the recurrent products ORT's LSTM runs frame by frame
W_AND_R = "x·W and h·R, 1 thread"  # what Keras' LSTMCell loop multiplies frame by frame


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


def recurrent_probes(n_hidden: int, frames: int) -> dict[str, Callable[[], object]]:
    """The matrix-vector products a batch-1 call cannot batch over frames, alone, in numpy on
    one BLAS thread: `frames` times h·R for each direction in turn (R: n x 4n float32, one per
    direction), and the same with x·W as well (TensorFlow's loop multiplies each frame's input
    inside the loop; ORT's LSTM does x·W for all frames in one product first)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    shape = (n_hidden, 4 * n_hidden)
    r_fw, r_bw, w_fw, w_bw = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))
    h = rng.standard_normal((1, n_hidden), dtype=np.float32)

    def r_alone() -> None:
        with threadpool_limits(1):
            for r in (r_fw, r_bw):  # one direction after the other, as one thread runs them
                for _ in range(frames):
                    h @ r

    def w_and_r() -> None:
        with threadpool_limits(1):
            for w, r in ((w_fw, r_fw), (w_bw, r_bw)):
                for _ in range(frames):
                    h @ w
                    h @ r

    return {R_ALONE: r_alone, W_AND_R: w_and_r}


def where_it_fits(nbytes: int, caches: dict[str, int]) -> str:
    """The smallest cache level at least `nbytes` large, else memory."""
    for level, size in sorted(caches.items(), key=lambda item: item[1]):
        if nbytes <= size:
            return level
    return "memory"


def mib(nbytes: float) -> str:
    """A size in MiB, or KiB under one MiB."""
    if nbytes < 2**20:
        return f"{nbytes / 2**10:.3g} KiB"
    return f"{nbytes / 2**20:.3g} MiB"


def roofline(rows: list, frames: int, ceilings: dict[str, float]) -> tuple[list[str], list[str]]:
    """(a markdown table, the lines saying what bounds each width) for `main`'s rows."""
    caches = cache_sizes()
    table = [
        "| n_hidden | GFLOP per call | of which h·R | R per frame, 2 directions | R fits in "
        "| ORT | ORT, 1 thread | TF as trained | h·R alone, 1 thread | x·W and h·R, 1 thread "
        "| ORT GFLOP/s | TF GFLOP/s | h·R read at |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines: list[str] = []
    ort_ratios: list[float] = []
    w_ratios: list[float] = []
    for n_hidden, _, _, _, best in rows:
        batched, recurrent = (frames * f for f in birnn_flop_per_frame(n_hidden, N_CLASSES))
        total = batched + recurrent
        r_bytes = 2 * n_hidden * 4 * n_hidden * 4  # float32, both directions, every frame
        fits = where_it_fits(r_bytes, caches)
        fits_one = where_it_fits(r_bytes // 2, caches)
        ort, ort1, tf_ = best[ORT], best[ORT_ONE_THREAD], best[TF_TRAINED]
        alone, with_w = best[R_ALONE], best[W_AND_R]
        r_rate = frames * r_bytes / alone / 1e9
        table.append(
            f"| {n_hidden} | {total / 1e9:.2f} | {recurrent / total:.0%} | {mib(r_bytes)} "
            f"| {fits} (one direction: {fits_one}) | {ort * 1e3:.1f} ms | {ort1 * 1e3:.1f} ms "
            f"| {tf_ * 1e3:.1f} ms | {alone * 1e3:.1f} ms | {with_w * 1e3:.1f} ms "
            f"| {total / ort / 1e9:.1f} | {total / tf_ / 1e9:.1f} | {r_rate:.1f} GB/s |"
        )
        batched_at_peak = batched / (ceilings["peak_all"] * 1e9)
        batched_at_peak1 = batched / (ceilings["peak_1"] * 1e9)
        x_w = frames * 2 * 2 * n_hidden * 4 * n_hidden  # both directions' x·W
        rest_at_peak1 = (batched - x_w) / (ceilings["peak_1"] * 1e9)  # TF's outside its loop
        ort_ratios.append(ort1 / (batched_at_peak1 + alone))
        w_ratios.append(with_w / alone)
        lines.append(
            f"n_hidden {n_hidden}: {total / 1e9:.2f} GFLOP a call, {recurrent / total:.0%} of "
            f"it in h·R, which re-reads R ({mib(r_bytes)} for both directions, held in "
            f"{fits}) every frame. At the measured matmul peak the batched products would take "
            f"{batched_at_peak * 1e3:.0f} ms ({batched_at_peak1 * 1e3:.0f} ms on one thread); h·R "
            f"alone, frame by frame on one thread, took {alone * 1e3:.0f} ms "
            f"({recurrent / alone / 1e9:.1f} GFLOP/s, R read at {r_rate:.1f} GB/s against "
            f"{ceilings['bandwidth']:.1f} GB/s measured from memory). ORT on one thread took "
            f"{ort1 / (batched_at_peak1 + alone):.2f}× (batched at peak + h·R alone); ORT on "
            f"{available_cpus()} threads {ort / (batched_at_peak + alone / 2):.2f}× (batched at "
            f"peak + half of h·R alone: the directions side by side, if the cores do not share "
            f"the bound). TensorFlow's loop multiplies x·W frame by frame too, reading W and R "
            f"({mib(r_bytes)} a direction): x·W and h·R alone took {with_w * 1e3:.0f} ms, "
            f"{with_w / alone:.1f}× h·R alone; TF as trained (both directions' loops side by "
            f"side) took {tf_ / (with_w + rest_at_peak1):.2f}× (that + the dense layers at "
            f"the one-thread peak)."
        )
    if rows:
        lines.insert(
            0,
            f"At every width h·R re-reads R each frame from where it fits (the table's read "
            f"rate against {ceilings['bandwidth']:.1f} GB/s from memory). ORT on one thread "
            f"takes {min(ort_ratios):.2f}–{max(ort_ratios):.2f}× of (its batched products at "
            f"the matmul peak + h·R alone): it is on that floor. TensorFlow's loop re-reads W "
            f"as well (x·W and h·R alone take {min(w_ratios):.1f}–{max(w_ratios):.1f}× h·R "
            "alone), so the speed-up follows the bytes read per frame.",
        )
    return table, lines


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
    load_before = os.getloadavg()[0]
    ceilings = {
        "peak_1": matmul_gflops(1),
        "peak_all": matmul_gflops(available_cpus()),
        "bandwidth": memory_bandwidth(),
    }
    rows = []
    for n_hidden in sizes:
        runners, convert_seconds, max_diff = build_runners(n_hidden, features)
        times = time_interleaved({**runners, **recurrent_probes(n_hidden, frames)}, args.repeats)
        medians = {name: statistics.median(t) for name, t in times.items()}
        best = {name: min(t) for name, t in times.items()}
        rows.append((n_hidden, convert_seconds, max_diff, medians, best))
        for key, threads in (("peak_1", 1), ("peak_all", available_cpus())):
            ceilings[key] = max(ceilings[key], matmul_gflops(threads))  # the least disturbed
        if not args.markdown:
            ort = medians[ORT]
            print(
                f"n_hidden {n_hidden}: converted in {convert_seconds:.1f} s, "
                f"max |TF - ORT| {max_diff:.1e}"
            )
            for name, median in medians.items():
                if name not in runners:
                    continue
                print(
                    f"  {name:36s} median {median * 1e3:8.1f} ms  best {best[name] * 1e3:8.1f} ms"
                    f"  ORT speed-up {median / ort:5.2f}×"
                )

    speedups = [r[4][TF_TRAINED] / r[4][ORT] for r in rows]
    verdict = "met" if min(speedups) >= TARGET_SPEEDUP else "NOT met"
    roof_table, roof_lines = roofline(rows, frames, ceilings)
    caches = ", ".join(f"{level} {mib(size)}" for level, size in cache_sizes().items())
    ceiling_line = (
        f"Roofline (measured in this run; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after): matmul peak (best of before and after each width) "
        f"{ceilings['peak_1']:.0f} GFLOP/s on 1 "
        f"thread, {ceilings['peak_all']:.0f} on {available_cpus()} (numpy BLAS, 2048² float32); "
        f"memory bandwidth {ceilings['bandwidth']:.1f} GB/s (numpy copy of 256 MiB, read + "
        f"write); CPU 0's caches {caches} (sysfs: L1d and L2 per core, L3 shared)."
    )
    if not args.markdown:
        print(f"target ORT ≥ {TARGET_SPEEDUP:g}× faster than TF as trained: {verdict}")
        print("\n".join([ceiling_line, *roof_table, *roof_lines]))
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
    # The per-width explanation is for the terminal and notes/inference.md; the report keeps
    # the table and the conclusion.
    print("\n" + "\n\n".join([ceiling_line, "\n".join(roof_table), roof_lines[0]]))


if __name__ == "__main__":
    main()
