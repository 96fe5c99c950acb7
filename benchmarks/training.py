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
from dataclasses import dataclass
from pathlib import Path

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


DEFAULT_POOLS = Setup("1 device", 1)
SIDE_BY_SIDE = Setup("1 device, intra-op 1, inter-op 2", 1, 1, 2)
TWO_DEVICES = Setup("2 devices", 2)
SETUPS = (DEFAULT_POOLS, SIDE_BY_SIDE, TWO_DEVICES)


def child(corpus: Path, setup: Setup, steps: int) -> dict[str, float]:
    """One configuration, in its own process: returns throughput and pipeline figures."""
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
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        data = open_cached_set([(corpus / "train.csv", utterances)], Path(cache), 26, alphabet)
        feature_seconds = time.perf_counter() - started
        return train_child(data, placement, config, steps, feature_seconds, alphabet)


def train_child(data, placement, config, steps, feature_seconds, alphabet) -> dict[str, float]:
    """The timed part of `child`, reading the feature cache `data`."""

    from deepspeech.data.pipeline import distributed_dataset, training_plans
    from deepspeech.model.birnn import build_birnn
    from deepspeech.training.step import make_optimizer, make_train_step

    devices = placement.num_replicas
    needed = WARMUP_STEPS + steps
    plans = training_plans(
        data,
        batch_size=GLOBAL_BATCH // devices,
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
    audio_seconds = (-(-data.frames[timed] // FEATURE_STRIDE)).sum() / frames_per_second

    strategy = placement.strategy
    with strategy.scope():
        model = build_birnn(config.model(alphabet.num_classes))
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
        strategy, model, optimizer, GLOBAL_BATCH, 5.0, dataset.element_spec, with_gradients=False
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
        "samples_per_second": steps * GLOBAL_BATCH / train_seconds,
        "audio_seconds_per_second": audio_seconds / train_seconds,
        "step_seconds": train_seconds / steps,
        "pipeline_seconds_per_step": pipeline_seconds / steps,
        "pipeline_share": pipeline_seconds / train_seconds,
        "feature_real_time": float(data.audio_hours * 3600 / feature_seconds),
    }


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
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a Setup's name
    args = parse_args(parser)

    if args.child:
        (setup,) = [s for s in SETUPS if s.name == args.child]
        print(json.dumps(child(args.corpus, setup, args.steps)))
        return

    corpus = args.corpus or make_corpus(utterances=(WARMUP_STEPS + args.steps) * GLOBAL_BATCH + 200)
    results: dict[str, list[dict[str, float]]] = {s.name: [] for s in SETUPS}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for _ in range(args.repeats):
        for setup in SETUPS:
            command = [
                sys.executable,
                __file__,
                "--corpus",
                str(corpus),
                "--steps",
                str(args.steps),
            ]
            output = subprocess.run(
                [*command, "--child", setup.name],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            results[setup.name].append(json.loads(output.strip().splitlines()[-1]))

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
        f"2 logical devices / 1 device: {speed(TWO_DEVICES):.2f}× samples/s. The input "
        "pipeline, reading the "
        f"feature cache, needs {share:.1%} of a step's time on one device, {verdict}. Logical "
        "CPU devices share the same cores, so they test the mirrored code path; on GPUs each "
        "device adds its own compute."
    )
    if not args.markdown:
        print_result(table, summary)
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


if __name__ == "__main__":
    main()
