"""`benchmarks/gpu.py` (`make gpu-check`): its no-GPU path, and its GPU path's code rehearsed on
CPU with a tiny model (no GPU is lent to CI; the figures come from a run on a CUDA machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    """On CPU Keras runs the LSTM as a While loop; on a GPU the same check must find
    CudnnRNNV3 (the GPU section reports which it found)."""
    from deepspeech.model.config import ModelConfig

    config = ModelConfig(n_classes=29, n_hidden=16)
    for mixed in (False, True):
        ops = gpu.lstm_ops(config, mixed)
        assert "While" in ops and "CudnnRNNV3" not in ops, ops


@pytest.mark.slow
def test_the_gpu_path_runs_on_cpu_with_a_tiny_model(
    tiny_corpus: Path, random_onnx: Path, tmp_path: Path
) -> None:
    """Training (timed through `train`'s progress hook), pipeline share, serving and the
    markdown: the code of the GPU path, on CPU, so it is not first run on a GPU."""
    train = [
        gpu.run_child("train", str(tiny_corpus), str(tmp_path), p, "32", "8")
        for p in ("float32", "mixed")
    ]
    for figures in train:
        assert figures["timed_steps"] == figures["steps"] - gpu.WARMUP_STEPS - 1
        assert figures["samples_per_second"] > 0 and 0 < figures["pipeline_share"] < 1
        assert figures["audio_seconds_per_second"] > figures["samples_per_second"]  # > 1 s each
    serve = gpu.serve_figures(random_onnx, require_cuda=False)
    assert serve["lstm_providers"] == ["CPUExecutionProvider"]
    assert [r["batch"] for r in serve["rows"]] == list(gpu.SERVE_BATCHES)
    assert all(r["max_diff"] == 0.0 for r in serve["rows"])  # the same provider twice
    section = gpu.markdown(train, {"seconds": 1.0, "parity_max_diff": 1e-6}, serve)
    assert section.startswith("## GPU\n") and "does NOT run on cuDNN" in section
    assert "LSTM nodes on CPUExecutionProvider (NOT all on CUDA)" in section
