"""`make gpu-check`: on a CUDA machine, train, export and serve the full-size model on the GPUs
and write a GPU section into benchmarks/RESULTS.md (about 5-8 minutes on one GPU).

Run: .venv/bin/python benchmarks/gpu.py [--steps 20] [--results benchmarks/RESULTS.md] [--probe]

Without a GPU it prints one line saying so and exits 0, before importing TensorFlow. With one:
1. TensorFlow must see the GPUs (else exit 1: install `.[gpu]`, i.e. tensorflow[and-cuda]);
2. `deepspeech data sample` makes a corpus; `train` (n_hidden 2048, `--devices all`) runs a
   fixed number of steps in float32 and with `--mixed-precision`, each in its own process:
   samples/s and audio seconds/s from the time between steps (after warm-up steps), the input
   pipeline's share of a step (the same batches iterated alone), and whether the LSTM runs
   on the cuDNN kernel (`CudnnRNNV3` in the traced training graph);
3. `export_model` writes the ONNX model (and checks it against Keras);
4. onnxruntime runs it with `CUDAExecutionProvider` and with the CPU provider at batch 1 and
   16 (10 s of frames each): parity, speed, and which provider ran the LSTM nodes (from
   onnxruntime's profile, so a silent fallback to CPU shows).
Targets (issue 14): mixed precision >= 2,000 audio s/s per GPU with the input pipeline
<= 5 % of the step; CUDA >= 20x the CPU provider at batch 16; parity <= 1e-3.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_HIDDEN = 2048  # the 2017 model
BATCH_PER_GPU = 64
WARMUP_STEPS = 3  # tracing, cuDNN autotuning, allocator growth
SERVE_FRAMES = 1000  # 10 s of 10 ms frames
SERVE_BATCHES = (1, 16)
SERVE_REPEATS = 3  # the CPU provider needs seconds per batch-16 run at n_hidden 2048
TRAIN_SHARE = 0.9  # `data sample` puts about this share of utterances in train.csv
HEADING = "## GPU"


def gpus_present() -> list[str]:
    """NVIDIA GPUs the driver shows, without importing TensorFlow (fast, for the no-GPU path)."""
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        if listed.returncode == 0:
            return [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    proc = Path("/proc/driver/nvidia/gpus")
    return sorted(p.name for p in proc.iterdir()) if proc.is_dir() else []


def lstm_ops(model_config: object, mixed: bool) -> set[str]:
    """The recurrent op types in the BiRNN's traced training forward pass: `CudnnRNNV3` when
    Keras takes the cuDNN kernel, a `While` loop when it falls back to the generic one."""
    import tensorflow as tf

    from deepspeech.model.birnn import build_birnn
    from deepspeech.training.precision import mixed_precision

    with mixed_precision(mixed):
        model = build_birnn(model_config)
    forward = tf.function(lambda f, n: model(f, n, training=True))
    graph = forward.get_concrete_function(
        tf.TensorSpec((None, None, model_config.numcep), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    ).graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops |= {node.op for node in function.node_def}
    return {op for op in ops if "RNN" in op or "While" in op}


def mean_duration(manifest: Path) -> float:
    """Mean utterance length in seconds, from the manifest's 16-bit mono WAV sizes."""
    from deepspeech.audio import SAMPLE_RATE

    with manifest.open(newline="") as f:
        sizes = [int(row["wav_filesize"]) for row in csv.DictReader(f)]
    return statistics.fmean((size - 44) / (2 * SAMPLE_RATE) for size in sizes)


def pipeline_seconds_per_step(config: object, steps: int) -> float:
    """Iterate the training input pipeline alone for `steps` global batches (after warm-up).

    The one place this script uses the data path's internals (as benchmarks/training.py does):
    `train` does not expose its dataset.
    """
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.data.pipeline import distributed_dataset, training_plans
    from deepspeech.training.placement import make_placement

    placement = make_placement(config.devices)
    alphabet = config.read_alphabet()
    data = open_cached_set(
        read_manifests(config.train_files, alphabet),
        Path(config.feature_cache),
        config.features.numcep,
        alphabet,
    )
    plans = training_plans(
        data,
        batch_size=config.batch_size,
        replicas_per_worker=placement.num_replicas,
        stride=config.feature_stride,
        seed=config.seed,
        epoch=0,
        num_workers=1,
    )
    iterator = iter(distributed_dataset(placement.strategy, data, plans, config.feature_stride))
    for _ in range(WARMUP_STEPS):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return (time.perf_counter() - start) / steps


def train_child(corpus: Path, work: Path, mixed: bool, n_hidden: int, batch: int) -> dict:
    """Train one epoch (warm-up + timed steps) on every GPU; time the steps through the
    progress hook of the public `train`."""
    from deepspeech.text import Alphabet
    from deepspeech.training.config import TrainConfig
    from deepspeech.training.loop import train

    tag = "mixed" if mixed else "float32"
    config = TrainConfig(
        train_files=str(corpus / "train.csv"),
        epochs=1,
        batch_size=batch,
        n_hidden=n_hidden,
        devices="all",
        checkpoint_dir=str(work / f"ckpt-{tag}"),
        feature_cache=str(work / "feature-cache"),
        checkpoint_secs=10**6,
        stats_every=10**6,
        early_stop=False,
        mixed_precision=mixed,
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        experiment_name="gpu-check",
    )
    ticks: list[float] = []

    @contextmanager
    def progress(description: str, total: int | None):
        def advance(n: int = 1, info: str | None = None) -> None:
            if description.startswith("epoch") and n == 1:
                ticks.append(time.perf_counter())

        yield advance

    result = train(config, progress=progress)
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    timed = ticks[WARMUP_STEPS:]
    step_seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    gpus = gpus or 1  # (a CPU run of this child: one device)
    samples_per_second = batch * gpus / step_seconds
    pipeline = pipeline_seconds_per_step(config, len(timed) - 1)
    return {
        "precision": tag,
        "gpus": gpus,
        "steps": result.steps,
        "timed_steps": len(timed) - 1,
        "step_seconds": step_seconds,
        "samples_per_second": samples_per_second,
        "audio_seconds_per_second": samples_per_second * mean_duration(corpus / "train.csv"),
        "pipeline_share": pipeline / step_seconds,
        "lstm_ops": sorted(lstm_ops(config.model(Alphabet.default().num_classes), mixed)),
        "checkpoint_dir": config.checkpoint_dir,
    }


def export_child(checkpoint_dir: Path, output: Path) -> dict:
    from deepspeech.export.config import ExportConfig
    from deepspeech.export.pipeline import export_model

    result = export_model(ExportConfig(checkpoint_dir, output))
    return {"seconds": result.seconds, "parity_max_diff": result.parity_max_diff}


def lstm_providers(model: Path, feeds: list) -> list[str]:
    """Which execution provider ran each ONNX LSTM node, from onnxruntime's profile."""
    from deepspeech.runtime.offline import OfflineModel
    from deepspeech.runtime.session import CPU_PROVIDER, CUDA_PROVIDER, recurrent_node_providers

    def warm_up(session: object) -> None:
        OfflineModel(session, None).run(feeds)  # type: ignore[arg-type]

    _, placed = recurrent_node_providers(model, [CUDA_PROVIDER, CPU_PROVIDER], None, warm_up)
    return sorted(placed.get("LSTM", set()))


def serve_figures(model: Path, require_cuda: bool = True) -> dict:
    """CUDA against CPU provider: parity and median latency at each batch size.

    `require_cuda=False` lets the same code run where CUDA is missing (the session then falls
    back to the CPU provider, and the figures say so): the tests rehearse it on CPU. Both run
    through the runtime (`OfflineModel`), as the server runs them.
    """
    import numpy as np
    import onnxruntime

    from deepspeech.runtime.offline import OfflineModel
    from deepspeech.runtime.session import Placement

    cpu = OfflineModel.load(model)
    cuda = OfflineModel.load(model, Placement(device="cuda"))
    if require_cuda and "CUDAExecutionProvider" not in cuda.providers:
        raise SystemExit(
            "gpu-check: onnxruntime could not start its CUDA provider (see its errors above); "
            "install the CUDA libraries it names: .venv/bin/pip install -e '.[gpu]'"
        )
    width = cpu.metadata.input_width
    rng = np.random.default_rng(0)
    rows = []
    for batch in SERVE_BATCHES:
        feeds = list(rng.standard_normal((batch, SERVE_FRAMES, width)).astype(np.float32))
        timings = {}
        outputs = {}
        for name, runtime in (("cpu", cpu), ("cuda", cuda)):
            outputs[name] = runtime.run(feeds)[0]  # warm-up
            seconds = []
            for _ in range(SERVE_REPEATS):
                start = time.perf_counter()
                runtime.run(feeds)
                seconds.append(time.perf_counter() - start)
            timings[name] = statistics.median(seconds)
        rows.append(
            {
                "batch": batch,
                "cpu_ms": 1e3 * timings["cpu"],
                "cuda_ms": 1e3 * timings["cuda"],
                "speedup": timings["cpu"] / timings["cuda"],
                "max_diff": float(np.abs(outputs["cpu"] - outputs["cuda"]).max()),
            }
        )
    return {
        "providers": cuda.providers,
        "lstm_providers": lstm_providers(model, feeds),
        "rows": rows,
        "onnxruntime": onnxruntime.__version__,
    }


def run_child(*args: str) -> dict:
    """Run this script in child mode (TensorFlow's devices and dtype policy are per process)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"gpu-check: {' '.join(args)}", file=sys.stderr, flush=True)
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"gpu-check: child {args[0]} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def gpu_details() -> str:
    if not shutil.which("nvidia-smi"):
        return "unknown (no nvidia-smi)"
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return "; ".join(query.stdout.strip().splitlines()) if query.returncode == 0 else "unknown"


def markdown(train: list[dict], export: dict, serve: dict) -> str:
    import tensorflow as tf

    full, mixed = train
    gpus = full["gpus"]
    rows = [
        f"| {r['precision']} | {r['samples_per_second']:.1f} | "
        f"{r['audio_seconds_per_second'] / gpus:.0f} | {1e3 * r['step_seconds']:.0f} ms | "
        f"{r['pipeline_share']:.1%} | {', '.join(r['lstm_ops']) or 'none'} |"
        for r in train
    ]
    serving = [
        f"| {r['batch']} | {r['cpu_ms']:.0f} ms | {r['cuda_ms']:.1f} ms | {r['speedup']:.1f}× | "
        f"{r['max_diff']:.1e} |"
        for r in serve["rows"]
    ]
    cudnn = all("CudnnRNNV3" in r["lstm_ops"] for r in train)
    per_gpu = mixed["audio_seconds_per_second"] / gpus
    batch16 = next(r for r in serve["rows"] if r["batch"] == 16)
    parity = max(r["max_diff"] for r in serve["rows"])
    lstm_on_cuda = serve["lstm_providers"] == ["CUDAExecutionProvider"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    summary = (
        f"Mixed precision trains at {per_gpu:.0f} audio s/s per GPU "
        f"({mixed['samples_per_second'] / full['samples_per_second']:.2f}× float32; target "
        f"≥ 2,000: {verdict(per_gpu >= 2000)}), the input pipeline needs "
        f"{mixed['pipeline_share']:.1%} of a step (target ≤ 5 %: "
        f"{verdict(mixed['pipeline_share'] <= 0.05)}); the LSTM "
        f"{'runs' if cudnn else 'does NOT run'} on cuDNN. onnxruntime CUDA is "
        f"{batch16['speedup']:.1f}× the CPU provider at batch 16 (target ≥ 20×: "
        f"{verdict(batch16['speedup'] >= 20)}), parity {parity:.1e} (target ≤ 1e-3: "
        f"{verdict(parity <= 1e-3)}), LSTM nodes on {', '.join(serve['lstm_providers'])}"
        f"{'' if lstm_on_cuda else ' (NOT all on CUDA)'}."
    )
    return "\n".join(
        [
            HEADING,
            "",
            f"BiRNN n_hidden {N_HIDDEN}, feature stride 1, batch {BATCH_PER_GPU} per GPU, "
            f"`--devices all` ({gpus} GPU{'s' if gpus > 1 else ''}), sample corpus; "
            f"{full['timed_steps']} timed steps after {WARMUP_STEPS} warm-up steps, each "
            "precision in its own process. Export with `export_model`; onnxruntime at "
            f"{SERVE_FRAMES} frames (10 s), median of {SERVE_REPEATS} runs.",
            "",
            "- Command: `make gpu-check` (`.venv/bin/python benchmarks/gpu.py`)",
            f"- Date: {datetime.date.today().isoformat()}",
            f"- GPUs: {gpu_details()}",
            f"- Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"onnxruntime {serve['onnxruntime']} ({', '.join(serve['providers'])})",
            "",
            "| precision | samples/s | audio s/s per GPU | step | input pipeline / step "
            "| LSTM ops in the training graph |",
            "|---|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Export: {export['seconds']:.0f} s, max |Keras - onnxruntime| "
            f"{export['parity_max_diff']:.1e}.",
            "",
            "| batch | CPU provider | CUDA provider | CUDA speed-up | max \\|CUDA - CPU\\| |",
            "|---:|---:|---:|---:|---:|",
            *serving,
            "",
            summary,
        ]
    )


def write_section(results: Path, section: str) -> None:
    """Replace the GPU section of RESULTS.md (or append one), leaving the others as they are."""
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--probe", action="store_true", help="exit 0 if a GPU is present, else 1")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.probe:
        sys.exit(0 if gpus_present() else 1)

    if args.child:
        kind, *rest = args.child
        if kind == "train":
            n_hidden, batch = int(rest[3]), int(rest[4])
            figures = train_child(Path(rest[0]), Path(rest[1]), rest[2] == "mixed", n_hidden, batch)
        elif kind == "export":
            figures = export_child(Path(rest[0]), Path(rest[1]))
        else:
            figures = serve_figures(Path(rest[0]))
        print(json.dumps(figures))
        return

    found = gpus_present()
    if not found:
        print("gpu-check: no NVIDIA GPU on this machine; nothing to check")
        return
    import tensorflow as tf

    seen = tf.config.list_physical_devices("GPU")
    if not seen:
        raise SystemExit(
            f"gpu-check: the driver shows {len(found)} GPU(s) but TensorFlow sees none; "
            "install the CUDA build: .venv/bin/pip install -e '.[gpu]'"
        )
    print(f"gpu-check: TensorFlow sees {len(seen)} GPU(s): {found}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    corpus = work / "corpus"
    utterances = math.ceil(
        (WARMUP_STEPS + args.steps + 1) * BATCH_PER_GPU * len(seen) / TRAIN_SHARE
    )
    subprocess.run(
        [str(Path(sys.executable).parent / "deepspeech"), "data", "sample", str(corpus),
         "--utterances", str(utterances)],
        check=True,
    )  # fmt: skip
    train = [
        run_child("train", str(corpus), str(work), p, str(N_HIDDEN), str(BATCH_PER_GPU))
        for p in ("float32", "mixed")
    ]
    model = work / "model.onnx"
    export = run_child("export", train[0]["checkpoint_dir"], str(model))
    serve = run_child("serve", str(model))
    section = markdown(train, export, serve)
    write_section(args.results, section)
    print(section)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
