"""`benchmarks/gpu.py` (`make gpu-check`): its no-GPU path, and its GPU path's code rehearsed on
CPU with a tiny model (no GPU is lent to CI; the figures come from a run on a CUDA machine)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "benchmarks"))  # last: benchmarks/serving.py must not shadow serving

import gpu  # noqa: E402

needs_no_gpu = pytest.mark.skipif(bool(gpu.gpus_present()), reason="this machine has a GPU")
NO_GPU_LINE = "gpu-check: no NVIDIA GPU on this machine; nothing to check\n"


@needs_no_gpu
def test_without_a_gpu_it_says_so_in_one_line_before_importing_tensorflow(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['gpu.py', '--results', {str(results)!r}]\n"
        f"runpy.run_path({str(ROOT / 'benchmarks' / 'gpu.py')!r}, run_name='__main__')\n"
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == NO_GPU_LINE
    assert not results.exists()


@needs_no_gpu
def test_make_gpu_check_is_that_command() -> None:
    result = subprocess.run(["make", "-s", "gpu-check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(NO_GPU_LINE)


def test_the_gpu_section_replaces_its_old_self_and_nothing_else(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Features\n\nf\n\n## Serving\n\ns\n")
    gpu.write_section(results, "## GPU\n\nfirst")
    gpu.write_section(results, "## GPU\n\nsecond")
    text = results.read_text()
    assert text.endswith("## Serving\n\ns\n\n## GPU\n\nsecond\n")
    assert "first" not in text and "## Features\n\nf\n\n## Serving" in text
    results.write_text("# Benchmark results\n\n## GPU\n\nold\n\n## Serving\n\ns\n")
    gpu.write_section(results, "## GPU\n\nnew")
    assert results.read_text() == "# Benchmark results\n\n## GPU\n\nnew\n\n## Serving\n\ns\n"


def test_the_cudnn_check_sees_the_generic_loop_on_cpu() -> None:
    """On CPU training runs the LSTM as a loop (`model/lstm_loop.py`'s `tf.while_loop`, a
    StatelessWhile); on a GPU the same check must find CudnnRNNV3 (the GPU section reports
    which it found)."""
    from deepspeech.model.config import ModelConfig

    config = ModelConfig(n_classes=29, n_hidden=16)
    for mixed in (False, True):
        ops = gpu.lstm_ops(config, mixed)
        assert ops & {"While", "StatelessWhile"} and "CudnnRNNV3" not in ops, ops


def timed_frames(corpus: Path, work: Path, figures: dict, batch: int) -> int:
    """Real frames (stride 1) of the utterances in the steps `train_child` timed, from the plan
    `train` follows and the feature cache's own lengths: not from the pipeline's batches."""
    from deepspeech.data.cache import open_cached_set, read_manifests
    from deepspeech.data.pipeline import training_plans
    from deepspeech.training.config import TrainConfig

    config = TrainConfig(train_files=str(corpus / "train.csv"), batch_size=batch)
    alphabet = config.read_alphabet()
    data = open_cached_set(
        read_manifests(config.train_files, alphabet),
        work / "feature-cache",
        config.features.numcep,
        alphabet,
    )
    (plan,) = training_plans(
        data,
        batch_size=batch,
        replicas_per_worker=1,
        stride=1,
        seed=config.seed,
        epoch=0,
        num_workers=1,
    )
    ids = plan.step_ids()[gpu.WARMUP_STEPS + 1 :]
    assert len(ids) == figures["timed_steps"]
    return int(data.frames[ids].sum())


@pytest.mark.slow
def test_the_gpu_path_runs_on_cpu_with_a_tiny_model(
    tiny_corpus: Path, random_onnx: Path, tmp_path: Path
) -> None:
    """Training (timed through `train`'s progress hook), pipeline share, serving and the
    markdown: the code of the GPU path, on CPU, so it is not first run on a GPU. The second
    run trains as a GPU's `--mixed-precision` does (float16, dynamic loss scaling), forced."""
    train = [
        gpu.run_child("train", str(tiny_corpus), str(tmp_path), p, "32", "8")
        for p in ("float32", "float16")
    ]
    for figures in train:
        assert figures["timed_steps"] == figures["steps"] - gpu.WARMUP_STEPS - 1
        assert figures["samples_per_second"] > 0 and 0 < figures["pipeline_share"] < 1
        assert figures["audio_seconds_per_second"] > figures["samples_per_second"]  # > 1 s each
        # (b) audio from the frames of exactly the timed batches (10 ms each at stride 1)...
        frames = timed_frames(tiny_corpus, tmp_path, figures, batch=8)
        assert figures["timed_audio_seconds"] == pytest.approx(frames * 0.01)
        # ... and audio s/s over samples/s is the mean length of those utterances, not the
        # manifest's mean.
        per_utterance = figures["timed_audio_seconds"] / (figures["timed_steps"] * 8)
        assert figures["audio_seconds_per_second"] / figures["samples_per_second"] == (
            pytest.approx(per_utterance)
        )
        assert figures["first_step_seconds"] > 0  # (e) the first step, timed apart
        assert figures["jit_cache_path"] == str(gpu.CUDA_CACHE_PATH)  # (e) the children's cache
    full, half = train
    assert full["policy"] == "float32" and full["loss_scale"] is None
    assert full["skipped_steps"] == 0
    # (c) float16: the loss scale starts at 2**15, halves at each skipped (non-finite) step and
    # doubles only after 2,000 finite ones; a CTC loss in the hundreds overflows float16 at
    # 2**15, so the first steps are skipped until the scale fits.
    assert half["policy"] == "mixed_float16"
    assert half["checkpoint_steps"] == half["steps"]
    assert 1 <= half["skipped_steps"] < half["steps"]
    assert half["loss_scale"] == 2.0 ** (15 - half["skipped_steps"])
    serve = gpu.serve_figures(random_onnx, require_cuda=False)
    assert serve["lstm_providers"] == ["CPUExecutionProvider"]
    assert [r["batch"] for r in serve["rows"]] == list(gpu.SERVE_BATCHES)
    assert all(r["max_diff"] == 0.0 for r in serve["rows"])  # the same provider twice
    batch16 = next(r for r in serve["rows"] if r["batch"] == 16)
    assert len(set(batch16["frames"])) == 16  # (a) mixed lengths: sequence_lens is exercised
    assert batch16["padding_diff"] < 1e-4  # each utterance as if run alone
    stack = gpu.cuda_stack()
    cache = {**gpu.jit_cache(gpu.child_environment()), "before_bytes": 0}
    section = gpu.markdown(train, {"seconds": 1.0, "parity_max_diff": 1e-6}, serve, stack, cache)
    assert section.startswith("## GPU\n") and "does NOT run on cuDNN" in section
    assert "LSTM nodes on CPUExecutionProvider (NOT all on CUDA)" in section
    assert "| float16 (mixed_float16) |" in section
    assert f"{half['loss_scale']:g}, {half['skipped_steps']} of {half['steps']} skipped" in section
    assert (
        "compute capability unknown" in section
        and "The first training step against a steady one" in section
    )
    assert str(gpu.CUDA_CACHE_PATH) in section


def test_a_served_batch_has_mixed_lengths_that_catch_ignored_sequence_lens(
    random_onnx: Path,
) -> None:
    """(a) The parity batch's rows differ in length, and on such a batch a run that ignores the
    real lengths (every row taken as full length) answers differently on the real frames: an
    execution provider that dropped `sequence_lens` would show in the parity figure."""
    from deepspeech.runtime.graph import FEATURES_INPUT, LENGTHS_INPUT, PROBABILITIES_OUTPUT
    from deepspeech.runtime.offline import OfflineModel

    lengths = gpu.serve_lengths(16)
    assert lengths[0] == gpu.SERVE_FRAMES and len(set(lengths)) == 16
    assert min(lengths) == round(gpu.SERVE_SHORTEST * gpu.SERVE_FRAMES)
    assert gpu.serve_lengths(1) == [gpu.SERVE_FRAMES]
    model = OfflineModel.load(random_onnx)
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((n // 10, model.metadata.input_width)).astype(np.float32)
             for n in lengths]  # fmt: skip
    right = model.run(feeds)
    batch, real = right[1], right[0]
    padded = np.zeros((len(feeds), max(len(f) for f in feeds), feeds[0].shape[1]), np.float32)
    for i, f in enumerate(feeds):
        padded[i, : len(f)] = f
    full = np.full(len(feeds), padded.shape[1], batch.dtype)
    (ignored,) = model.session.run(
        [PROBABILITIES_OUTPUT], {FEATURES_INPUT: padded, LENGTHS_INPUT: full}
    )
    assert gpu.real_frames_diff(right, right) == 0.0
    assert gpu.real_frames_diff(right, (ignored, batch)) > 1e-3
    assert real.shape[0] == 16


def test_the_children_share_a_large_jit_cache_under_runs() -> None:
    """(e) First-use compilation of PTX (TensorFlow 2.21 has no sm_90 code) lands in a cache
    kept under runs/ across runs, at the driver's largest size; a user's own choice is kept."""
    env = gpu.child_environment({"PATH": "/bin"})
    assert env["CUDA_CACHE_PATH"] == str(ROOT / "runs" / "cuda-cache")
    assert int(env["CUDA_CACHE_MAXSIZE"]) == 4 * 2**30
    assert env["PATH"] == "/bin" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    own = gpu.child_environment({"CUDA_CACHE_PATH": "/scratch/jit", "CUDA_CACHE_MAXSIZE": "1"})
    assert own["CUDA_CACHE_PATH"] == "/scratch/jit" and own["CUDA_CACHE_MAXSIZE"] == "1"


def test_which_gpus_tensorflow_has_machine_code_for() -> None:
    """(e) TensorFlow 2.21's build (tf.sysconfig.get_build_info()): sm_60/70/80/89 cubins and
    compute_90 PTX. A cubin runs on its major version at an equal or higher minor one; PTX on
    any capability at or above its own, compiled by the driver at first use."""
    archs = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
    assert gpu.kernel_code("9.0", archs) == ("PTX", "compute_90")  # H100: JIT
    assert gpu.kernel_code("12.0", archs) == ("PTX", "compute_90")  # Blackwell: JIT
    assert gpu.kernel_code("8.0", archs) == ("machine code", "sm_80")  # A100
    assert gpu.kernel_code("8.6", archs) == ("machine code", "sm_80")  # A10, RTX 30x0
    assert gpu.kernel_code("8.9", archs) == ("machine code", "sm_89")  # L4, L40
    assert gpu.kernel_code("7.5", archs) == ("machine code", "sm_70")  # T4
    assert gpu.kernel_code("5.2", archs) == ("none", None)
    assert gpu.kernel_code("9.0", ["sm_90a"]) == ("machine code", "sm_90a")
    assert gpu.kernel_code("10.0", ["sm_90a", "compute_90a"]) == ("none", None)
    import tensorflow as tf

    built = tf.sysconfig.get_build_info().get("cuda_compute_capabilities", [])
    if tf.__version__.startswith("2.21."):
        assert built == archs


def test_the_stack_check_refuses_two_cudnn_wheels_and_mixed_cuda_builds() -> None:
    one = {
        "tensorflow": "2.21.0",
        "tensorflow_cuda": "12.5.1",
        "onnxruntime": "1.26.0",
        "onnxruntime_cuda": "12.8",
        "nvidia_wheels": {"nvidia-cudnn-cu12": "9.28.0.42", "nvidia-cublas-cu12": "12.9.3.13"},
    }
    assert gpu.stack_problems(one) == [] and gpu.stray_cuda_wheels(one) == []
    mixed = {
        **one,
        "onnxruntime": "1.31.1",
        "onnxruntime_cuda": "13.0",
        "nvidia_wheels": {
            **one["nvidia_wheels"],
            "nvidia-cudnn-cu13": "9.28.1.4",
            "nvidia-cuda-runtime": "13.5.37",
        },
    }
    problems = gpu.stack_problems(mixed)
    assert len(problems) == 2
    assert "built for CUDA 13.0 but TensorFlow 2.21.0 for CUDA 12.5.1" in problems[0]
    assert "nvidia/cudnn/lib" in problems[1] and "uninstall -y nvidia-cudnn-cu13" in problems[1]
    assert "nvidia-cudnn-cu12==9.28.0.42" in problems[1]
    assert gpu.stray_cuda_wheels(mixed) == ["nvidia-cuda-runtime", "nvidia-cudnn-cu13"]
    # A CPU-only onnxruntime (no cuda_version) is no mismatch.
    assert gpu.stack_problems({**one, "onnxruntime_cuda": None}) == []


def test_the_stack_is_read_without_a_gpu() -> None:
    stack = gpu.cuda_stack()
    version, cuda = gpu.onnxruntime_build()
    import onnxruntime

    assert version == onnxruntime.__version__ == stack["onnxruntime"]
    assert stack["onnxruntime_cuda"] == cuda
    assert stack["tensorflow_cuda"] and stack["tensorflow_archs"]
    assert all(name.startswith("nvidia-") for name in stack["nvidia_wheels"])


def test_the_loss_scale_and_skipped_steps_come_from_a_training_checkpoint(tmp_path: Path) -> None:
    """(c) On the checkpoint layout `train` writes (its `build_state`), with the GPU's float16
    policy forced: two steps whose gradients are not finite are skipped and halve the scale."""
    import tensorflow as tf

    from deepspeech.text import Alphabet
    from deepspeech.training.config import TrainConfig
    from deepspeech.training.loop import build_state
    from deepspeech.training.placement import make_placement

    config = TrainConfig(n_hidden=16, checkpoint_dir=str(tmp_path), mixed_precision=True)
    with gpu.forced_float16():
        state = build_state(
            config, config.model(Alphabet.default().num_classes), make_placement("1")
        )
    variables = state.model.trainable_variables
    for finite in (True, False, True, False, True):
        grads = [tf.zeros_like(v) if finite else tf.fill(v.shape, math.inf) for v in variables]
        state.optimizer.apply_gradients(zip(grads, variables, strict=True))
        state.counters["step"].assign_add(1)
    state.manager.save()
    figures = gpu.loss_scaling(tmp_path)
    assert figures == {"loss_scale": 2.0**13, "skipped_steps": 2, "checkpoint_steps": 5}
    plain = TrainConfig(n_hidden=16, checkpoint_dir=str(tmp_path / "plain"))
    state = build_state(plain, plain.model(Alphabet.default().num_classes), make_placement("1"))
    state.manager.save()
    assert gpu.loss_scaling(tmp_path / "plain") == {
        "loss_scale": None,
        "skipped_steps": 0,
        "checkpoint_steps": 0,
    }


@needs_no_gpu
def test_make_gpu_check_installs_only_the_gpu_extra() -> None:
    """(d) `make gpu-check` makes its own .venv and installs `.[gpu]`, not the dev extras."""
    result = subprocess.run(
        ["make", "-n", "gpu-check"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "pip install --quiet -e '.[gpu]'" in result.stdout
    assert "[dev]" not in result.stdout and "installed-stamp" not in result.stdout
    assert "-m venv .venv" in result.stdout


# The gpu extra's CUDA rule, from the wheels' metadata (docs/gpu.md, "One CUDA stack"): which
# CUDA each onnxruntime-gpu release on PyPI is built for (capi/build_and_package_info.py) and
# what its [cuda,cudnn] extras require (METADATA). Releases not read here are not admitted.
ONNXRUNTIME_GPU_CUDA = {
    "1.26.0": "12.8",  # extras: nvidia-{cuda-nvrtc,cuda-runtime,cufft,curand,cudnn}-cu12
    "1.27.0": "13.0",  # extras: nvidia-*-cu13, nvidia-cudnn-cu13
    "1.28.0": "13.0",  # extras: nvidia-{cuda-nvrtc,cuda-runtime,cufft,curand} (cu13), -cudnn-cu13
    "1.30.0": "13.0",
    "1.31.1": "13.0",
}
ONNXRUNTIME_GPU_RELEASES = [
    "1.15.0",
    "1.15.1",
    "1.16.0",
    "1.16.3",
    "1.17.0",
    "1.17.1",
    "1.18.0",
    "1.18.1",
    "1.19.0",
    "1.19.2",
    "1.20.0",
    "1.20.2",
    "1.21.0",
    "1.21.1",
    "1.22.0",
    "1.23.0",
    "1.23.2",
    "1.24.1",
    "1.24.4",
    "1.25.0",
    "1.25.1",
    "1.26.0",
    "1.27.0",
    "1.28.0",
    "1.29.0",
    "1.30.0",
    "1.31.0",
    "1.31.1",
    "1.32.0",
    "2.0.0",
]  # `pip index versions onnxruntime-gpu` on 2026-12-06, and two not yet released
# TensorFlow 2.21's and-cuda extra: nvidia-{cublas,cuda-cupti,cuda-nvcc,cuda-nvrtc,
# cuda-runtime,cusparse,nvjitlink}-cu12 >=12.5,<13, nvidia-cudnn-cu12 >=9.3,<10,
# nvidia-cufft-cu12 >=11.2,<12, nvidia-curand-cu12 >=10.3,<11, cusolver-cu12, nccl-cu12.
TENSORFLOW_AND_CUDA = {"2.21": "12"}
TENSORFLOW_RELEASES = [
    "2.16.1",
    "2.17.0",
    "2.18.0",
    "2.19.0",
    "2.20.0",
    "2.21.0",
    "2.21.1",
    "2.22.0",
    "3.0.0",
]


def project_requirements() -> tuple[list, list]:
    """([project] dependencies, [project.optional-dependencies] gpu) as Requirements."""
    import tomllib  # the project's .venv is Python 3.11 (make setup)
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return (
        [Requirement(r) for r in project["dependencies"]],
        [Requirement(r) for r in project["optional-dependencies"]["gpu"]],
    )


def test_the_gpu_extra_is_one_cuda_12_stack() -> None:
    """(item 2) TensorFlow's [and-cuda] wheels are CUDA 12 (nvidia-*-cu12); the onnxruntime-gpu
    of the gpu extra must be a CUDA 12 build whose [cuda,cudnn] extras name those same
    distributions, so pip installs one of each. A CUDA 13 onnxruntime-gpu brings
    nvidia-cudnn-cu13, which overwrites TensorFlow's nvidia/cudnn/lib/libcudnn*.so.9."""
    base, extra = project_requirements()
    # nvidia-ml-py (GPU system metrics) binds the driver's libnvidia-ml.so: no CUDA libraries.
    extra = [r for r in extra if r.name != "nvidia-ml-py"]
    by_name = {r.name: r for r in extra}
    assert set(by_name) == {"tensorflow", "onnxruntime-gpu"}, "gpu extra: a package more or less"
    tensorflow, onnxruntime = by_name["tensorflow"], by_name["onnxruntime-gpu"]
    assert tensorflow.extras == {"and-cuda"}

    admitted_tf = [v for v in TENSORFLOW_RELEASES if tensorflow.specifier.contains(v)]
    assert admitted_tf, "no TensorFlow release admitted"
    for version in admitted_tf:
        series = ".".join(version.split(".")[:2])
        assert TENSORFLOW_AND_CUDA.get(series) == "12", f"tensorflow {version}: CUDA not read"

    admitted_ort = [v for v in ONNXRUNTIME_GPU_RELEASES if onnxruntime.specifier.contains(v)]
    assert admitted_ort, "no onnxruntime-gpu release admitted"
    for version in admitted_ort:
        cuda = ONNXRUNTIME_GPU_CUDA.get(version)
        assert cuda is not None, f"onnxruntime-gpu {version}: its CUDA build was not read"
        assert cuda.split(".")[0] == "12", f"onnxruntime-gpu {version} is a CUDA {cuda} build"
    # [symbolic] is sympy: 1.26's onnxruntime.quantization, which export imports, needs it.
    assert onnxruntime.extras == {"cuda", "cudnn", "symbolic"}

    # No CUDA wheel of another major version named directly either.
    for requirement in extra:
        assert not re.search(r"-cu(?!12$)\d+$", requirement.name), requirement
        assert requirement.name not in gpu.UNSUFFIXED_CUDA13_WHEELS, requirement

    # Within the base dependencies (the extra may only narrow them), on the same platforms.
    base_by_name = {r.name: r for r in base}
    for requirement in extra:
        wider = base_by_name[requirement.name]
        admitted = admitted_tf if requirement.name == "tensorflow" else admitted_ort
        assert all(wider.specifier.contains(v) for v in admitted), (requirement, wider)
        assert str(requirement.marker) == str(wider.marker), (requirement, wider)
