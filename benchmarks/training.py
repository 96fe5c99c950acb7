"""Training throughput: TensorFlow's thread pools vs one op thread with ops side by side
(`--intra-op-threads 1 --inter-op-threads 2`, what make run uses), 1 vs 2 logical CPU devices,
and input pipeline vs compute time.

Run: .venv/bin/python benchmarks/training.py [--corpus DIR] [--steps 30] [--repeats 2] [--markdown]

TensorFlow fixes its devices and thread pools once per process, so every configuration runs in
a child process; children run interleaved (A, B, C, A, B, C, ...) so machine noise hits all
alike. The global batch is the same for all (the per-device batch halves on 2 devices), as in a
real multi-device run.
Each child first iterates the distributed dataset alone (pure input pipeline time), then runs
the same batches through the compiled train step: their ratio says whether the pipeline keeps up.

Behind the table, how far a step is from the CPU's arithmetic peak: FLOP per step counted from
the shapes (`inputs.birnn_flop_per_frame` for every padded frame of the timed batches, times 3
for forward + backward), against numpy's measured matmul peak on 1 thread and on all; and which
LSTM loops training runs on this machine, with the ops they run per frame (counted in the traced
graph of a small model's gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from inputs import birnn_flop_per_frame, matmul_gflops
from section import head, parse_args, print_result

GLOBAL_BATCH = 32
N_HIDDEN = 256
FEATURE_STRIDE = 2
WARMUP_STEPS = 3


@dataclass(frozen=True)
class Setup:
    """One configuration: devices to mirror over and TensorFlow's pools (0: its choice)."""

    name: str
    devices: int
    intra_op: int = 0
    inter_op: int = 0
    batch: int = GLOBAL_BATCH  # global
    keras_lstm: bool = False  # Keras' own LSTM loop, as training ran it before lstm_loop
    mixed_precision: bool = False  # `train --mixed-precision` (bfloat16 on CPUs that have it)


DEFAULT_POOLS = Setup("1 device", 1)
SIDE_BY_SIDE = Setup("1 device, intra-op 1, inter-op 2", 1, 1, 2)
# What the slow Xeon's 347 ms (2026-12-05) measured: the same, with Keras' LSTM loop.
KERAS_LSTM = Setup("1 device, intra-op 1, inter-op 2, Keras' LSTM loop", 1, 1, 2, keras_lstm=True)
TWO_DEVICES = Setup("2 devices", 2)
SETUPS = (DEFAULT_POOLS, SIDE_BY_SIDE, KERAS_LSTM, TWO_DEVICES)


def child(corpus: Path, setup: Setup, steps: int, cache: Path | None) -> dict[str, float]:
    """One configuration, in its own process: returns throughput and pipeline figures.

    `cache`: a feature cache to read (and fill where it lacks the corpus); None: a temporary
    one, whose featurizing is timed too."""
    from deepspeech.data.manifest import read_manifest
    from deepspeech.text import Alphabet
    from deepspeech.training.config import TrainConfig
    from deepspeech.training.placement import configure_threads, make_placement

    configure_threads(setup.intra_op, setup.inter_op)  # before TensorFlow's first operation
    placement = make_placement(str(setup.devices))
    import keras

    from deepspeech.data.cache import open_cached_set

    keras.utils.set_random_seed(0)
    alphabet = Alphabet.default()
    config = TrainConfig(n_hidden=N_HIDDEN, feature_stride=FEATURE_STRIDE)
    utterances = read_manifest(corpus / "train.csv", alphabet)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as temporary:
        folder = cache or Path(temporary)
        data = open_cached_set([(corpus / "train.csv", utterances)], folder, 26, alphabet)
        feature_seconds = time.perf_counter() - started
        return train_child(data, placement, config, steps, feature_seconds, alphabet, setup)


def train_child(
    data, placement, config, steps, feature_seconds, alphabet, setup: Setup
) -> dict[str, float]:
    """The timed part of `child`, reading the feature cache `data`."""

    from deepspeech.data.pipeline import distributed_dataset, training_plans
    from deepspeech.model.birnn import build_birnn
    from deepspeech.training.precision import mixed_precision
    from deepspeech.training.step import make_optimizer, make_train_step

    devices, batch = placement.num_replicas, setup.batch
    needed = WARMUP_STEPS + steps
    plans = training_plans(
        data,
        batch_size=batch // devices,
        replicas_per_worker=devices,
        stride=FEATURE_STRIDE,
        seed=0,
        epoch=0,
        num_workers=1,
    )
    if plans[0].steps < needed:
        raise SystemExit(f"corpus has {plans[0].steps} batches, {needed} needed; use more data")
    plans = [plans[0].take(needed)]
    timed = plans[0].step_ids()[WARMUP_STEPS:].reshape(-1)
    frames_per_second = 100 / FEATURE_STRIDE
    kept = -(-data.frames // FEATURE_STRIDE)  # frames per utterance at the stride
    audio_seconds = kept[timed].sum() / frames_per_second
    # Every replica's batch is padded to its longest utterance, and the LSTM runs the padding.
    batches = plans[0].step_ids()[WARMUP_STEPS:].reshape(-1, batch // devices)
    padded_frames = sum(len(b) * kept[b].max() for b in (b[b >= 0] for b in batches) if len(b))

    strategy = placement.strategy
    with strategy.scope(), mixed_precision(setup.mixed_precision):
        model = build_birnn(config.model(alphabet.num_classes))
        model.lstm_loop = model.lstm_loop and not setup.keras_lstm
        optimizer = make_optimizer("adam", 1e-3)
        optimizer.build(model.trainable_variables)

    dataset = distributed_dataset(strategy, data, plans, FEATURE_STRIDE)
    iterator = iter(dataset)
    for _ in range(WARMUP_STEPS):
        next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    pipeline_seconds = time.perf_counter() - started

    step = make_train_step(
        strategy, model, optimizer, batch, 5.0, dataset.element_spec, with_gradients=False
    )
    iterator = iter(distributed_dataset(strategy, data, plans, FEATURE_STRIDE))
    for _ in range(WARMUP_STEPS):
        float(step(next(iterator))[0])
    started = time.perf_counter()
    for _ in range(steps):
        float(step(next(iterator))[0])
    train_seconds = time.perf_counter() - started
    return {
        "devices": devices,
        "steps": steps,
        "samples_per_second": steps * batch / train_seconds,
        "audio_seconds_per_second": audio_seconds / train_seconds,
        "step_seconds": train_seconds / steps,
        "pipeline_seconds_per_step": pipeline_seconds / steps,
        "pipeline_share": pipeline_seconds / train_seconds,
        "feature_real_time": float(data.audio_hours * 3600 / feature_seconds),
        "frames_per_step": float(kept[timed].sum() / steps),
        "padded_frames_per_step": float(padded_frames / steps),
    }


def lstm_loops_on_this_machine() -> str:
    """Which LSTM loops a training step runs here, and their ops per frame and direction,
    counted in the graph of a small BiRNN's gradient: `model/lstm_loop.py`'s (what training
    runs on a CPU) and Keras' own (what it ran before, and what the export converts).

    Keras 3's `LSTM.inner_loop` asks the backend for the fused cuDNN kernel
    (`keras/src/backend/tensorflow/rnn.py` `lstm`), which raises NotImplementedError unless a
    GPU is visible (`cudnn_ok`); it then falls back to `RNN.inner_loop`, i.e. `backend.rnn`: a
    `tf.while_loop` that calls `LSTMCell.call` (implementation 2) once per frame."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.rnn import cudnn_ok

    from deepspeech.model.birnn import build_birnn
    from deepspeech.model.config import ModelConfig

    model = build_birnn(ModelConfig(29, n_hidden=8))
    cell = model.lstm_layers()[0].cell
    if cudnn_ok(cell.activation, cell.recurrent_activation, False, cell.use_bias):
        return f"Keras {version('keras')} builds the cuDNN LSTM here (a GPU is visible)."
    spec = (tf.TensorSpec((None, None, 26)), tf.TensorSpec((None,), tf.int32))

    def per_frame(loop: bool) -> tuple[int, int, int, int]:
        """(ops, MatMul) of one forward and one gradient iteration."""
        model.lstm_loop = loop

        @tf.function(input_signature=spec)
        def gradient(x: tf.Tensor, lengths: tf.Tensor) -> list[tf.Tensor]:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x, lengths, training=True))
            return tape.gradient(loss, model.trainable_variables)

        graph = gradient.get_concrete_function().graph.as_graph_def()
        library = {f.signature.name: f for f in graph.library.function}
        loops: dict[str, list[tuple[int, int]]] = {"forward": [], "gradient": []}
        for node in graph.node:
            if node.op in ("While", "StatelessWhile"):
                body = library[node.attr["body"].func.name].node_def
                work = [n.op for n in body if n.op not in ("Const", "NoOp", "Identity")]
                # The forward loops sit in the model's name scope; TensorFlow's gradient loops
                # in the tape's, lstm_loop's hand-written one at the top of the graph.
                forward = node.name.startswith(model.name) and "_grad" not in node.name
                loops["forward" if forward else "gradient"].append(
                    (len(work), work.count("MatMul"))
                )
        return (*loops["forward"][0], *loops["gradient"][0])

    ours, theirs = per_frame(True), per_frame(False)
    return (
        f"LSTM: with no GPU visible, training runs `model/lstm_loop.py`'s loop, one "
        f"`tf.while_loop` per direction: each frame's forward iteration runs {ours[0]} ops "
        f"besides constants and identities in the traced graph, before Grappler ({ours[1]} "
        f"MatMul: h·R; x·W is one product over all frames before the loop), each gradient "
        f"iteration {ours[2]} ({ours[3]} MatMul). Keras {version('keras')}'s own loop over "
        f"`LSTMCell.call` (implementation {cell.implementation}, with the mask applied at every "
        f"frame) runs {theirs[0]} ({theirs[1]} MatMul) and {theirs[2]} ({theirs[3]} MatMul)."
    )


def measure(
    corpus: Path,
    setups: Sequence[Setup],
    steps: int,
    repeats: int,
    *,
    cache: Path | None = None,
    between_rounds: Callable[[], None] = lambda: None,
) -> dict[str, list[dict[str, float]]]:
    """Each setup's `child` figures, `repeats` times, children interleaved (A, B, A, B, ...)
    so that the machine's noise hits all alike. `cache`: a feature cache the children share."""
    results: dict[str, list[dict[str, float]]] = {s.name: [] for s in setups}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--corpus", str(corpus), "--steps", str(steps)]
    if cache is not None:
        command += ["--cache", str(cache)]
    for _ in range(repeats):
        for setup in setups:
            output = subprocess.run(
                [*command, "--child", json.dumps(asdict(setup))],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            results[setup.name].append(json.loads(output.strip().splitlines()[-1]))
        between_rounds()
    return results


def make_corpus(utterances: int) -> Path:
    from deepspeech.corpus.sample import SampleCorpusConfig, make_sample_corpus

    out = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    make_sample_corpus(out, SampleCorpusConfig(utterances=utterances, seed=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="sample corpus folder (default: make one)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a Setup, as JSON
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)  # for `measure`
    args = parse_args(parser)

    if args.child:
        setup = Setup(**json.loads(args.child))
        print(json.dumps(child(args.corpus, setup, args.steps, args.cache)))
        return

    corpus = args.corpus or make_corpus(utterances=(WARMUP_STEPS + args.steps) * GLOBAL_BATCH + 200)
    load_before = os.getloadavg()[0]
    cpus = len(os.sched_getaffinity(0))
    peaks = {1: 0.0, cpus: 0.0}  # the best seen between rounds: the least disturbed

    def measure_peaks() -> None:
        for threads in peaks:
            peaks[threads] = max(peaks[threads], matmul_gflops(threads))

    measure_peaks()
    results = measure(corpus, SETUPS, args.steps, args.repeats, between_rounds=measure_peaks)

    def best(setup: Setup, key: str) -> float:
        return max(r[key] for r in results[setup.name])

    def median(setup: Setup, key: str) -> float:
        return statistics.median(r[key] for r in results[setup.name])

    def speed(setup: Setup) -> float:
        return best(setup, "samples_per_second") / best(DEFAULT_POOLS, "samples_per_second")

    rows = [
        (
            s.name,
            best(s, "samples_per_second"),
            best(s, "audio_seconds_per_second"),
            median(s, "step_seconds"),
            median(s, "pipeline_seconds_per_step"),
            median(s, "pipeline_share"),
        )
        for s in SETUPS
    ]
    header = (
        "| configuration | samples/s (best) | audio s/s (best) | step (median) "
        "| input pipeline per step (median) | pipeline / step |"
    )
    table = [header, "|---|---:|---:|---:|---:|---:|"] + [
        f"| {name} | {sps:.1f} | {aps:.1f} | {step * 1e3:.0f} ms | {pipe * 1e3:.1f} ms "
        f"| {share:.1%} |"
        for name, sps, aps, step, pipe, share in rows
    ]
    share = rows[0][5]
    verdict = (
        "so it does not starve the model (it is prefetched, and runs while the step computes)"
        if share <= 0.05
        else "more than the 5 % target: the model waits for its input"
    )
    summary = (
        f"One op thread with ops side by side / TensorFlow's pools: {speed(SIDE_BY_SIDE):.2f}× "
        f"samples/s on one device (median step {median(SIDE_BY_SIDE, 'step_seconds') * 1e3:.0f} "
        f"against {median(DEFAULT_POOLS, 'step_seconds') * 1e3:.0f} ms). "
        f"lstm_loop's LSTM / Keras' own loop (same pools): "
        f"{best(SIDE_BY_SIDE, 'samples_per_second') / best(KERAS_LSTM, 'samples_per_second'):.2f}× "
        f"samples/s. 2 logical devices (the same cores: the mirrored code path, not more "
        f"compute) / 1 device: {speed(TWO_DEVICES):.2f}× samples/s. The input pipeline, reading "
        f"the feature cache, needs {share:.1%} of a step's time on one device, {verdict}."
    )
    flop_frame = sum(birnn_flop_per_frame(N_HIDDEN))
    padded = median(DEFAULT_POOLS, "padded_frames_per_step")
    real = median(DEFAULT_POOLS, "frames_per_step")
    step_flop = 3 * padded * flop_frame  # forward, and backward ≈ 2 × forward
    roof_table = [
        "| configuration | step (median) | GFLOP/s | of the 1-thread peak "
        f"| of the {cpus}-thread peak |",
        "|---|---:|---:|---:|---:|",
    ]
    for setup in SETUPS:
        step = median(setup, "step_seconds")
        # Its own batches' padding (2 devices pad two half batches).
        rate = 3 * median(setup, "padded_frames_per_step") * flop_frame / step / 1e9
        roof_table.append(
            f"| {setup.name} | {step * 1e3:.0f} ms | {rate:.1f} | {rate / peaks[1]:.0%} "
            f"| {rate / peaks[cpus]:.0%} |"
        )
    roof_lines = [
        f"FLOP per step (load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after): "
        f"{GLOBAL_BATCH} utterances, {real:.0f} frames at stride {FEATURE_STRIDE} "
        f"({padded:.0f} with each batch's padding, which the LSTM runs too); "
        f"{flop_frame / 1e6:.2f} MFLOP a frame forward (dense layers, the LSTM's x·W and h·R "
        f"for both directions), × 3 with the backward pass: {step_flop / 1e9:.1f} GFLOP a step. "
        f"Matmul peak measured here (numpy BLAS, 2048² float32): {peaks[1]:.0f} GFLOP/s on 1 "
        f"thread, {peaks[cpus]:.0f} on {cpus}: at the 1-thread peak a step would take "
        f"{step_flop / peaks[1] / 1e6:.0f} ms.",
        lstm_loops_on_this_machine(),
    ]
    if not args.markdown:
        print_result(table, summary)
        print("\n".join([*roof_lines, *roof_table]))
        return
    command = ".venv/bin/python benchmarks/training.py --markdown"
    if args.corpus:
        command += f" --corpus {args.corpus}"
    if args.steps != parser.get_default("steps"):
        command += f" --steps {args.steps}"
    if args.repeats != parser.get_default("repeats"):
        command += f" --repeats {args.repeats}"
    intro = (
        f"BiRNN n_hidden {N_HIDDEN}, feature stride {FEATURE_STRIDE}, global batch {GLOBAL_BATCH}, "
        f"sample corpus, {args.steps} timed steps after {WARMUP_STEPS} warm-up steps, "
        f"{args.repeats} interleaved runs per configuration (each in its own process)."
    )
    import tensorflow as tf

    machine = f", Python {platform.python_version()}, TensorFlow {tf.__version__}"
    feature_rt = median(DEFAULT_POOLS, "feature_real_time")
    summary += f" Features for training were computed at {feature_rt:.0f}× real time."
    print_result(table, summary, head("Training", intro, command, machine=machine))
    # Which LSTM loop Keras builds is for the terminal and notes/training.md; the report keeps
    # the FLOP count and the table.
    print("\n".join(["", roof_lines[0], "", *roof_table]))


if __name__ == "__main__":
    main()
