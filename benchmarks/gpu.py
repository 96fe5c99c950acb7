"""`make gpu-check`: on a CUDA machine, train, export and serve the full-size model on the GPUs
and write a GPU section into benchmarks/RESULTS.md (about 5-8 minutes on one GPU, plus the
kernels' first-use compilation on a GPU TensorFlow has no machine code for).

Run: .venv/bin/python benchmarks/gpu.py [--steps 20] [--results benchmarks/RESULTS.md] [--probe]

Without a GPU it prints one line saying so and exits 0, before importing TensorFlow. With one:
1. TensorFlow must see the GPUs (else exit 1: install `.[gpu]`, i.e. tensorflow[and-cuda]), and
   the CUDA stack must be one stack: onnxruntime-gpu built for TensorFlow's CUDA major version,
   and not two cuDNN wheels writing the same `nvidia/cudnn/lib` files (else exit 1);
2. `deepspeech data sample` makes a corpus; `train` (n_hidden 2048, `--devices all`) runs a
   fixed number of steps in float32 and with `--mixed-precision`, each in its own process:
   the first step apart (tracing, cuDNN autotuning and, where TensorFlow's build has no machine
   code for the GPU, the JIT compilation of its PTX), then samples/s and audio seconds/s from
   the time between the steady steps (audio from the real frames of exactly the timed batches),
   the input pipeline's share of a step (the same batches iterated alone), the loss scale and
   the skipped (non-finite gradient) steps of float16 training (from the checkpoint), and
   whether the LSTM runs on the cuDNN kernel (`CudnnRNNV3` in the traced training graph);
   the children share a CUDA JIT cache under runs/ (`CUDA_CACHE_PATH`, `CUDA_CACHE_MAXSIZE`
   4 GiB), so a second run does not compile again;
3. `export_model` writes the ONNX model (and checks it against Keras);
4. onnxruntime runs it with `CUDAExecutionProvider` and with the CPU provider at batch 1 and
   16, on utterances of mixed lengths (the longest 10 s of frames), so the LSTM's
   `sequence_lens` is exercised on CUDA: parity on the real frames, each utterance of the
   batch against itself run alone, speed, and which provider ran the LSTM nodes (from
   onnxruntime's profile, so a silent fallback to CPU shows).
Targets (issue 14): mixed precision >= 2,000 audio s/s per GPU with the input pipeline
<= 5 % of the step; CUDA >= 20x the CPU provider at batch 16; parity <= 1e-3.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_HIDDEN = 2048  # the 2017 model
BATCH_PER_GPU = 64
WARMUP_STEPS = 3  # tracing, cuDNN autotuning, allocator growth
SERVE_FRAMES = 1000  # the longest served utterance: 10 s of 10 ms frames
SERVE_SHORTEST = 0.25  # the shortest one of a batch, as a share of SERVE_FRAMES
SERVE_BATCHES = (1, 16)
SERVE_REPEATS = 3  # the CPU provider needs seconds per batch-16 run at n_hidden 2048
TRAIN_SHARE = 0.9  # `data sample` puts about this share of utterances in train.csv
HEADING = "## GPU"
# The CUDA driver's JIT cache: a GPU whose machine code TensorFlow's build lacks (2.21: an H100,
# compute capability 9.0, gets only compute_90 PTX) compiles every kernel at first use. The
# children keep it under runs/ (kept between runs; `make clean` removes it) at the largest size
# the driver takes, so the next run reads it instead of compiling again.
CUDA_CACHE_PATH = HERE.parent / "runs" / "cuda-cache"
CUDA_CACHE_MAXSIZE = 4 * 2**30
# onnxruntime-gpu's CUDA 13 builds name their CUDA wheels without a -cuNN suffix (they install
# under nvidia/cu13/); their cuDNN wheel, nvidia-cudnn-cu13, writes nvidia/cudnn/lib like
# nvidia-cudnn-cu12 does.
UNSUFFIXED_CUDA13_WHEELS = frozenset(
    {
        "nvidia-cublas",
        "nvidia-cuda-nvrtc",
        "nvidia-cuda-runtime",
        "nvidia-cufft",
        "nvidia-curand",
        "nvidia-nvjitlink",
    }
)


def gpus_present() -> list[str]:
    """NVIDIA GPUs the driver shows, without importing TensorFlow (fast, for the no-GPU path)."""
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        if listed.returncode == 0:
            return [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    proc = Path("/proc/driver/nvidia/gpus")
    return sorted(p.name for p in proc.iterdir()) if proc.is_dir() else []


def gpu_compute_capabilities() -> list[str]:
    """Each GPU's compute capability ("9.0"), from nvidia-smi; [] without it."""
    if not shutil.which("nvidia-smi"):
        return []
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    if query.returncode != 0:
        return []
    return [line.strip() for line in query.stdout.splitlines() if line.strip()]


def kernel_code(capability: str, archs: Sequence[str]) -> tuple[str, str | None]:
    """How a build compiled for `archs` (TensorFlow's 'cuda_compute_capabilities': "sm_80",
    "compute_90", ...) runs on a GPU of compute capability `capability` ("9.0").

    ("machine code", arch): a cubin of the same major version and a minor one not above the
    GPU's ("sm_80" runs on 8.6; "sm_90a" only on 9.0); ("PTX", arch): only PTX for an older or
    equal capability, which the driver compiles at first use; ("none", None): neither.
    """
    major, minor = (int(x) for x in capability.split("."))
    cubin, ptx = [], []
    for arch in archs:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch)
        if not match:
            continue
        kind, a_major, a_minor, suffix = match[1], int(match[2]), int(match[3]), match[4]
        if suffix == "a":
            usable = (a_major, a_minor) == (major, minor)
        elif kind == "sm":
            usable = a_major == major and a_minor <= minor
        else:
            usable = (a_major, a_minor) <= (major, minor)
        if usable:
            (cubin if kind == "sm" else ptx).append(((a_major, a_minor), arch))
    if cubin:
        return "machine code", max(cubin)[1]
    if ptx:
        return "PTX", max(ptx)[1]
    return "none", None


def onnxruntime_build() -> tuple[str | None, str | None]:
    """(version, CUDA version it was built for) of the installed onnxruntime, read from its
    build_and_package_info.py without importing it."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    info = Path(next(iter(spec.submodule_search_locations))) / "capi/build_and_package_info.py"
    text = info.read_text() if info.exists() else ""
    found = dict(re.findall(r"^(__version__|cuda_version) = '([^']*)'", text, re.MULTILINE))
    return found.get("__version__"), found.get("cuda_version") or None


def nvidia_wheels() -> dict[str, str]:
    """Installed nvidia-* distributions: {name: version}."""
    wheels = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("nvidia-"):
            wheels[name] = dist.version
    return wheels


def cuda_stack() -> dict:
    """What the CUDA code of this environment was built for and brings: TensorFlow's build
    (CUDA, cuDNN, the architectures it has code for), onnxruntime-gpu's CUDA build, the
    nvidia-* wheels and the GPUs' compute capabilities. Imports TensorFlow; no GPU needed."""
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    ort_version, ort_cuda = onnxruntime_build()
    capabilities = gpu_compute_capabilities()
    if not capabilities:  # no nvidia-smi, or one too old for compute_cap: ask TensorFlow
        for device in tf.config.list_physical_devices("GPU"):
            found = tf.config.experimental.get_device_details(device).get("compute_capability")
            if found:
                capabilities.append(f"{found[0]}.{found[1]}")
    return {
        "tensorflow": tf.__version__,
        "tensorflow_cuda": info.get("cuda_version"),
        "tensorflow_cudnn": info.get("cudnn_version"),
        "tensorflow_archs": list(info.get("cuda_compute_capabilities", [])),
        "onnxruntime": ort_version,
        "onnxruntime_cuda": ort_cuda,
        "nvidia_wheels": nvidia_wheels(),
        "compute_capabilities": capabilities,
    }


def stack_problems(stack: Mapping) -> list[str]:
    """Why the CUDA libraries of `stack` are not one consistent set ([] when they are)."""
    problems = []
    tf_major = (stack.get("tensorflow_cuda") or "").split(".")[0]
    ort_major = (stack.get("onnxruntime_cuda") or "").split(".")[0]
    if tf_major and ort_major and tf_major != ort_major:
        problems.append(
            f"onnxruntime-gpu {stack['onnxruntime']} is built for CUDA {stack['onnxruntime_cuda']}"
            f" but TensorFlow {stack['tensorflow']} for CUDA {stack['tensorflow_cuda']}: "
            "install the pinned pair, .venv/bin/pip install -e '.[gpu]'"
        )
    wheels = stack.get("nvidia_wheels", {})
    cudnn = sorted(name for name in wheels if re.fullmatch(r"nvidia-cudnn-cu\d+", name))
    if len(cudnn) > 1:
        keep = f"nvidia-cudnn-cu{tf_major}" if tf_major else cudnn[0]
        others = " ".join(name for name in cudnn if name != keep)
        problems.append(
            f"{' and '.join(cudnn)} are both installed and write the same "
            "nvidia/cudnn/lib/libcudnn*.so.9 (the last one installed won); remove the other "
            f"and reinstall TensorFlow's: .venv/bin/pip uninstall -y {others} && "
            f".venv/bin/pip install --force-reinstall --no-deps {keep}=={wheels.get(keep, '')}"
        )
    return problems


def stray_cuda_wheels(stack: Mapping) -> list[str]:
    """nvidia-* wheels of another CUDA major version than TensorFlow's (left by an earlier
    install): they do not overwrite TensorFlow's files (CUDA 13's live under nvidia/cu13/, a
    second cuDNN is a `stack_problems` error), but they are dead weight."""
    tf_major = (stack.get("tensorflow_cuda") or "").split(".")[0]
    stray = []
    for name in stack.get("nvidia_wheels", {}):
        suffix = re.search(r"-cu(\d+)$", name)
        major = suffix[1] if suffix else ("13" if name in UNSUFFIXED_CUDA13_WHEELS else None)
        if tf_major and major and major != tf_major:
            stray.append(name)
    return sorted(stray)


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The children's environment: quiet TensorFlow logs and a persistent, large CUDA JIT
    cache under runs/ (a cache path or size already set in the environment is kept)."""
    env = dict(os.environ if base is None else base)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.setdefault("CUDA_CACHE_PATH", str(CUDA_CACHE_PATH))
    env.setdefault("CUDA_CACHE_MAXSIZE", str(CUDA_CACHE_MAXSIZE))
    return env


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 if it does not exist)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def jit_cache(env: Mapping[str, str]) -> dict:
    """Where the children's JIT cache is and how big it is now."""
    path = Path(env["CUDA_CACHE_PATH"])
    return {
        "path": str(path),
        "max_bytes": int(env["CUDA_CACHE_MAXSIZE"]),
        "disabled": env.get("CUDA_CACHE_DISABLE", "0") == "1",
        "bytes": folder_bytes(path),
    }


def lstm_ops(model_config: object, mixed: bool) -> set[str]:
    """The recurrent op types in the BiRNN's traced training forward pass: `CudnnRNNV3` when
    Keras takes the cuDNN kernel, a `While` or `StatelessWhile` loop without a GPU (training
    on a CPU runs `model/lstm_loop.py`'s)."""
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


def input_figures(config: object, timed: range) -> tuple[float, int, int]:
    """Iterate the training input pipeline alone, every step of the epoch `train` ran:
    (seconds per step of the `timed` steps, real frames in those steps at the feature stride,
    steps in the epoch).

    The frames are the utterances' lengths in the batches themselves (not the padding, not a
    mean): the audio the timed training steps really consumed. The one place this script uses
    the data path's internals (as benchmarks/training.py does): `train` does not expose its
    dataset; it builds the same plans from the same seed.
    """
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.data.pipeline import distributed_dataset, training_plans
    from deepspeech.training.placement import make_placement

    placement = make_placement(config.devices)
    strategy = placement.strategy
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
    seconds, frames = 0.0, 0
    for step, element in enumerate(
        timed_iteration(distributed_dataset(strategy, data, plans, config.feature_stride))
    ):
        if step in timed:
            spent, (_, lengths, *_) = element
            seconds += spent
            frames += sum(
                int(x.numpy().sum()) for x in strategy.experimental_local_results(lengths)
            )
    return seconds / max(len(timed), 1), frames, plans[0].steps


def timed_iteration(iterable: object) -> Iterator[tuple[float, object]]:
    """(seconds `next` took, element) for each element."""
    iterator = iter(iterable)
    while True:
        start = time.perf_counter()
        try:
            element = next(iterator)
        except StopIteration:
            return
        yield time.perf_counter() - start, element


def loss_scaling(checkpoint_dir: Path) -> dict:
    """The latest checkpoint's loss scale and skipped steps.

    Keras' LossScaleOptimizer skips a step whose gradients are not finite (and halves its
    scale), so its inner optimizer counts only the applied steps; `train` counts every step.
    Without loss scaling (float32, bfloat16) nothing is skipped and there is no scale.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint_dir))
    names = reader.get_variable_to_shape_map()

    def value(name: str) -> float:
        return reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE").item()

    steps = int(value("step"))
    if "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE" not in names:
        return {"loss_scale": None, "skipped_steps": 0, "checkpoint_steps": steps}
    applied = int(value("optimizer/inner_optimizer/_iterations"))
    return {
        "loss_scale": float(value("optimizer/dynamic_scale")),
        "skipped_steps": steps - applied,
        "checkpoint_steps": steps,
    }


@contextmanager
def forced_float16() -> Iterator[None]:
    """`--mixed-precision` as on a GPU (float16 and dynamic loss scaling) on whatever device
    runs this process: how the tests rehearse the GPU's training precision on a CPU."""
    from deepspeech.training import precision

    chosen = precision.policy_name
    precision.policy_name = lambda enabled: precision.FLOAT16 if enabled else precision.FULL
    try:
        yield
    finally:
        precision.policy_name = chosen


def train_child(corpus: Path, work: Path, precision: str, n_hidden: int, batch: int) -> dict:
    """Train one epoch (warm-up + timed steps) on every GPU; time the steps through the
    progress hook of the public `train`.

    `precision`: "float32", "mixed" (`--mixed-precision`: float16 on GPUs, bfloat16 on CPUs)
    or "float16" (the GPU's float16 forced, for the CPU rehearsal).
    """
    from deepspeech.audio import STEP_SECONDS
    from deepspeech.text import Alphabet
    from deepspeech.training import precision as precision_policy
    from deepspeech.training.config import TrainConfig
    from deepspeech.training.loop import train

    mixed = precision != "float32"
    config = TrainConfig(
        train_files=str(corpus / "train.csv"),
        epochs=1,
        batch_size=batch,
        n_hidden=n_hidden,
        devices="all",
        checkpoint_dir=str(work / f"ckpt-{precision}"),
        feature_cache=str(work / "feature-cache"),
        checkpoint_secs=10**6,
        stats_every=10**6,
        early_stop=False,
        mixed_precision=mixed,
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        experiment_name="gpu-check",
    )
    started: list[float] = []  # when the epoch's first step began
    ticks: list[float] = []  # when each step ended

    @contextmanager
    def progress(description: str, total: int | None):
        epoch = description.startswith("epoch")
        if epoch:
            started.append(time.perf_counter())

        def advance(n: int = 1, info: str | None = None) -> None:
            if epoch and n == 1:
                ticks.append(time.perf_counter())

        yield advance

    with forced_float16() if precision == "float16" else nullcontext():
        policy = precision_policy.policy_name(mixed)
        result = train(config, progress=progress)
        ops = lstm_ops(config.model(Alphabet.default().num_classes), mixed)
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU")) or 1  # (a CPU run: one device)
    # ticks[k] ends step k + 1: the steady steps timed are those after the first tick kept.
    timed = ticks[WARMUP_STEPS:]
    step_seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    pipeline, frames, plan_steps = input_figures(config, range(WARMUP_STEPS + 1, len(ticks)))
    if plan_steps != len(ticks):
        raise SystemExit(
            f"gpu-check: train ran {len(ticks)} steps but its plan has {plan_steps}: the frames "
            "counted would not be the ones timed"
        )
    audio_seconds = frames * STEP_SECONDS * config.feature_stride
    return {
        "precision": precision,
        "policy": policy,
        "gpus": gpus,
        "steps": result.steps,
        "timed_steps": len(timed) - 1,
        "first_step_seconds": ticks[0] - started[0],
        "step_seconds": step_seconds,
        "samples_per_second": batch * gpus / step_seconds,
        "timed_audio_seconds": audio_seconds,
        "audio_seconds_per_second": audio_seconds / (timed[-1] - timed[0]),
        "pipeline_share": pipeline / step_seconds,
        **loss_scaling(result.checkpoint_dir),
        "lstm_ops": sorted(ops),
        "checkpoint_dir": config.checkpoint_dir,
        "jit_cache_path": os.environ.get("CUDA_CACHE_PATH"),  # what this child compiled into
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


def serve_lengths(batch: int) -> list[int]:
    """Frames of each utterance of a served batch: SERVE_FRAMES for the first, then evenly down
    to SERVE_SHORTEST of it, so every row but the longest is padded and a provider that ignored
    the LSTM's `sequence_lens` would answer differently from one that does not."""
    if batch == 1:
        return [SERVE_FRAMES]
    shortest = SERVE_SHORTEST * SERVE_FRAMES
    return [round(SERVE_FRAMES - (SERVE_FRAMES - shortest) * i / (batch - 1)) for i in range(batch)]


def real_frames_diff(a: tuple, b: tuple) -> float:
    """max |a - b| over the real (unpadded) frames of two (probabilities, lengths) runs."""
    import numpy as np

    (pa, lengths), (pb, _) = a, b
    return max(float(np.abs(pa[i, :n] - pb[i, :n]).max()) for i, n in enumerate(lengths))


def serve_figures(model: Path, require_cuda: bool = True) -> dict:
    """CUDA against CPU provider on batches of mixed lengths: parity, padding and median
    latency at each batch size.

    `require_cuda=False` lets the same code run where CUDA is missing (the session then falls
    back to the CPU provider, and the figures say so): the tests rehearse it on CPU. Both run
    through the runtime (`OfflineModel`), as the server runs them.
    """
    import numpy as np
    import onnxruntime

    from deepspeech.audio import STEP_SECONDS
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
    stride = cpu.metadata.features.stride
    rng = np.random.default_rng(0)
    rows = []
    for batch in SERVE_BATCHES:
        lengths = serve_lengths(batch)
        feeds = [rng.standard_normal((n, width)).astype(np.float32) for n in lengths]
        timings = {}
        outputs = {}
        for name, runtime in (("cpu", cpu), ("cuda", cuda)):
            outputs[name] = runtime.run(feeds)  # warm-up
            seconds = []
            for _ in range(SERVE_REPEATS):
                start = time.perf_counter()
                runtime.run(feeds)
                seconds.append(time.perf_counter() - start)
            timings[name] = statistics.median(seconds)
        # Padding on CUDA: each utterance of the batch against itself run alone.
        probs, _ = outputs["cuda"]
        padding = 0.0
        for i, feed in enumerate(feeds if batch > 1 else []):
            alone = cuda.run([feed])[0][0]
            padding = max(padding, float(np.abs(probs[i, : len(feed)] - alone).max()))
        rows.append(
            {
                "batch": batch,
                "frames": lengths,
                "audio_seconds": sum(lengths) * STEP_SECONDS * stride,
                "cpu_ms": 1e3 * timings["cpu"],
                "cuda_ms": 1e3 * timings["cuda"],
                "speedup": timings["cpu"] / timings["cuda"],
                "max_diff": real_frames_diff(outputs["cpu"], outputs["cuda"]),
                "padding_diff": padding,
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
    print(f"gpu-check: {' '.join(args)}", file=sys.stderr, flush=True)
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )
    if result.returncode != 0:
        raise SystemExit(f"gpu-check: child {args[0]} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def gpu_details() -> str:
    if not shutil.which("nvidia-smi"):
        return "unknown (no nvidia-smi)"
    query = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,compute_cap,driver_version,memory.total",
            "--format=csv,noheader",
        ],
        capture_output=True,
        text=True,
    )
    return "; ".join(query.stdout.strip().splitlines()) if query.returncode == 0 else "unknown"


def kernel_report(stack: Mapping, train: Sequence[dict], cache: Mapping) -> str:
    """Whether TensorFlow's build has machine code for the GPUs, what the first step cost, and
    the JIT cache before and after the run."""
    archs = stack["tensorflow_archs"]
    steps = ", ".join(
        f"{r['first_step_seconds']:.1f} s / {1e3 * r['step_seconds']:.0f} ms ({r['precision']})"
        for r in train
    )
    lines = []
    for capability in sorted(set(stack["compute_capabilities"])) or ["unknown"]:
        if capability == "unknown":
            lines.append("compute capability unknown (no nvidia-smi, no GPU seen by TensorFlow)")
            continue
        kind, arch = kernel_code(capability, archs)
        wanted = "sm_" + capability.replace(".", "")
        if kind == "machine code":
            what = f"machine code ({arch}) in TensorFlow's build: no JIT compilation"
        elif kind == "PTX":
            what = (
                f"NO {wanted} machine code in TensorFlow's build: its kernels are JIT-compiled "
                f"from {arch} PTX at first use"
            )
        else:
            what = "NO code at all for it in TensorFlow's build: TensorFlow cannot run on it"
        lines.append(f"compute capability {capability}: {what}")
    mb = 2**20
    state = (
        "disabled (CUDA_CACHE_DISABLE=1)"
        if cache["disabled"]
        else (
            f"`{cache['path']}`, {cache['before_bytes'] / mb:.0f} MB before this run, "
            f"{cache['bytes'] / mb:.0f} MB after (at most {cache['max_bytes'] / 2**30:.0f} GiB)"
        )
    )
    return (
        f"TensorFlow {stack['tensorflow']} is built for CUDA {stack['tensorflow_cuda']}, cuDNN "
        f"{stack['tensorflow_cudnn']}, with code for {', '.join(archs) or 'no GPU'}; "
        f"{'; '.join(lines)}. The first training step against a steady one: {steps} (the "
        f"first traces, autotunes and compiles whatever the JIT cache lacks); JIT cache {state}."
    )


def markdown(train: list[dict], export: dict, serve: dict, stack: dict, cache: dict) -> str:
    full, mixed = train
    gpus = full["gpus"]

    def loss_scale(r: dict) -> str:
        if r["loss_scale"] is None:
            return "none"
        return f"{r['loss_scale']:g}, {r['skipped_steps']} of {r['checkpoint_steps']} skipped"

    rows = [
        f"| {r['precision']} ({r['policy']}) | {r['samples_per_second']:.1f} | "
        f"{r['audio_seconds_per_second'] / gpus:.0f} | {r['first_step_seconds']:.1f} s | "
        f"{1e3 * r['step_seconds']:.0f} ms | {r['pipeline_share']:.1%} | {loss_scale(r)} | "
        f"{', '.join(r['lstm_ops']) or 'none'} |"
        for r in train
    ]
    serving = [
        f"| {r['batch']} | {r['audio_seconds']:.1f} s ({min(r['frames'])}-{max(r['frames'])}) | "
        f"{r['cpu_ms']:.0f} ms | {r['cuda_ms']:.1f} ms | {r['speedup']:.1f}× | "
        f"{r['max_diff']:.1e} | {r['padding_diff']:.1e} |"
        for r in serve["rows"]
    ]
    cudnn = all("CudnnRNNV3" in r["lstm_ops"] for r in train)
    per_gpu = mixed["audio_seconds_per_second"] / gpus
    batch16 = next(r for r in serve["rows"] if r["batch"] == 16)
    parity = max(max(r["max_diff"], r["padding_diff"]) for r in serve["rows"])
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
        f"{verdict(batch16['speedup'] >= 20)}), parity {parity:.1e} on mixed lengths (target "
        f"≤ 1e-3: {verdict(parity <= 1e-3)}), LSTM nodes on {', '.join(serve['lstm_providers'])}"
        f"{'' if lstm_on_cuda else ' (NOT all on CUDA)'}."
    )
    ort_build = f"CUDA {stack['onnxruntime_cuda']}" if stack.get("onnxruntime_cuda") else "CPU"
    return "\n".join(
        [
            HEADING,
            "",
            f"BiRNN n_hidden {N_HIDDEN}, feature stride 1, batch {BATCH_PER_GPU} per GPU, "
            f"`--devices all` ({gpus} GPU{'s' if gpus > 1 else ''}), sample corpus; "
            f"{full['timed_steps']} timed steps after {WARMUP_STEPS} warm-up steps (the first "
            "step timed apart), each precision in its own process; audio s/s from the real "
            "frames of the timed batches. Export with `export_model`; onnxruntime on "
            f"utterances of mixed lengths (the longest {SERVE_FRAMES} frames), median of "
            f"{SERVE_REPEATS} runs.",
            "",
            "- Command: `make gpu-check` (`.venv/bin/python benchmarks/gpu.py`)",
            f"- Date: {datetime.date.today().isoformat()}",
            f"- GPUs: {gpu_details()}",
            f"- Python {platform.python_version()}, TensorFlow {stack['tensorflow']} (CUDA "
            f"{stack['tensorflow_cuda']}), onnxruntime {serve['onnxruntime']} ({ort_build} build; "
            f"{', '.join(serve['providers'])})",
            "",
            "| precision | samples/s | audio s/s per GPU | first step | steady step "
            "| input pipeline / step | loss scale (end), skipped steps "
            "| LSTM ops in the training graph |",
            "|---|---:|---:|---:|---:|---:|---|---|",
            *rows,
            "",
            kernel_report(stack, train, cache),
            "",
            f"Export: {export['seconds']:.0f} s, max |Keras - onnxruntime| "
            f"{export['parity_max_diff']:.1e}.",
            "",
            "| batch | audio (frames) | CPU provider | CUDA provider | CUDA speed-up "
            "| max \\|CUDA - CPU\\| | max \\|batched - alone\\| (CUDA) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
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
            figures = train_child(Path(rest[0]), Path(rest[1]), rest[2], n_hidden, batch)
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
    stack = cuda_stack()
    problems = stack_problems(stack)
    if problems:
        raise SystemExit("gpu-check: not one CUDA stack: " + "; ".join(problems))
    stray = stray_cuda_wheels(stack)
    if stray:
        print(
            f"gpu-check: unused CUDA wheels of another version: {' '.join(stray)}", file=sys.stderr
        )
    print(f"gpu-check: TensorFlow sees {len(seen)} GPU(s): {found}", file=sys.stderr)
    cache = jit_cache(child_environment())
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
    cache = {**jit_cache(child_environment()), "before_bytes": cache["bytes"]}
    section = markdown(train, export, serve, stack, cache)
    write_section(args.results, section)
    print(section)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
