"""onnxruntime sessions: the one place a session is opened, on CUDA where it really works.

onnxruntime-gpu lists the CUDA provider on every machine, so the providers a session actually
got are what is reported. Asking for CUDA where it does not work logs one warning and runs on
CPU. A CUDA session is also checked node by node: the warm-up batch is profiled and the
execution provider of each LSTM node read back, since onnxruntime silently places an op
without a CUDA kernel (the int8 DynamicQuantizeLSTM has none) on the CPU. Its arena grows by
what is asked for (kSameAsRequested), not by doubling, so batches of ever-new shapes do not
inflate it, and it may be capped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime

from deepspeech.errors import ModelLoadError
from deepspeech.parallel import available_cpus

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when it really works, else CPU
RECURRENT_OPS = ("LSTM", "DynamicQuantizeLSTM")  # nodes whose placement is checked on CUDA
_NVIDIA_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version")

ModelSource = str | os.PathLike[str] | bytes  # a file, or a serialized model in memory
WarmUp = Callable[[onnxruntime.InferenceSession], None]


@dataclass(frozen=True)
class Placement:
    """Where a session runs: the device ('auto', 'cpu' or 'cuda'), its intra-op threads
    (None: the usable CPUs), which GPU, and a cap on onnxruntime's CUDA arena."""

    device: str = "cpu"
    threads: int | None = None
    device_id: int = 0
    gpu_mem_limit_bytes: int | None = None


def gpu_present() -> bool:
    """An NVIDIA driver is loaded; without one, trying CUDA only prints loader errors."""
    return any(os.path.exists(path) for path in _NVIDIA_DEVICE_FILES)


def cuda_provider_options(device_id: int = 0, gpu_mem_limit_bytes: int | None = None) -> dict:
    """CUDA provider options: which GPU, an arena that grows only by what each allocation
    asks for, and an optional cap on it."""
    options: dict[str, Any] = {
        "device_id": device_id,
        "arena_extend_strategy": "kSameAsRequested",
    }
    if gpu_mem_limit_bytes:
        options["gpu_mem_limit"] = gpu_mem_limit_bytes
    return options


def session_options(threads: int | None) -> onnxruntime.SessionOptions:
    """Intra-op threads (None or 0: the usable CPUs), every graph optimization, errors only
    in the log (provider fallbacks are reported by us)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or available_cpus()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _session(
    source: ModelSource, options: onnxruntime.SessionOptions, providers: list
) -> onnxruntime.InferenceSession:
    model = source if isinstance(source, bytes) else os.fspath(source)
    return onnxruntime.InferenceSession(model, options, providers=providers)


def source_label(source: ModelSource) -> str:
    """How errors name a model: its path, or that it is in memory."""
    return "<model in memory>" if isinstance(source, bytes) else os.fspath(source)


def open_session(
    source: ModelSource, placement: Placement = Placement(), warm_up: WarmUp | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime session on CUDA when asked for (or 'auto') and it really runs, else CPU.

    'Really runs' means the session reports the CUDA provider and a profiled `warm_up` run
    succeeds; an LSTM node that ran on the CPU is logged as a warning. Otherwise CPU is used,
    with a warning when CUDA was asked for ('cuda'); 'auto' tries CUDA only where a driver is.
    `warm_up` runs once at load, so no request pays for the first run's allocations.
    """
    asked = placement.device == "cuda"
    want_cuda = asked or (
        placement.device == "auto"
        and CUDA_PROVIDER in onnxruntime.get_available_providers()
        and gpu_present()
    )
    if want_cuda:
        outcome = _try_cuda(source, placement, warm_up)
        if not isinstance(outcome, str):
            return outcome
        if asked:
            logger.warning("CUDA was asked for but %s; running on CPU (CPUExecutionProvider)",
                           outcome)  # fmt: skip
        else:
            logger.info("CUDA is not usable (%s); running on CPU", outcome)
    try:
        session = _session(source, session_options(placement.threads), [CPU_PROVIDER])
        if warm_up is not None:
            warm_up(session)
    except ModelLoadError:
        raise
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(
            f"{source_label(source)}: onnxruntime cannot run this model: {e}"
        ) from e
    return session


def recurrent_node_providers(
    source: ModelSource, providers: list, threads: int | None, warm_up: WarmUp | None
) -> tuple[onnxruntime.InferenceSession, dict[str, set[str]]]:
    """(a warmed-up session, {recurrent op type: execution providers its nodes ran on}),
    read from onnxruntime's profile of the warm-up run."""
    with tempfile.TemporaryDirectory(prefix="deepspeech-profile-") as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "warmup")
        session = _session(source, options, providers)
        if warm_up is not None:
            warm_up(session)
        with open(session.end_profiling()) as profile:
            events = json.load(profile)
    placed: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and args.get("op_name") in RECURRENT_OPS:
            placed.setdefault(args["op_name"], set()).add(args.get("provider", "?"))
    return session, placed


def _try_cuda(
    source: ModelSource, placement: Placement, warm_up: WarmUp | None
) -> onnxruntime.InferenceSession | str:
    """A checked CUDA session, or why there is none."""
    if CUDA_PROVIDER not in onnxruntime.get_available_providers():
        return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    if not gpu_present():
        return "no NVIDIA driver is loaded (no /dev/nvidiactl)"
    options = cuda_provider_options(placement.device_id, placement.gpu_mem_limit_bytes)
    providers = [(CUDA_PROVIDER, options), CPU_PROVIDER]
    try:
        if hasattr(onnxruntime, "preload_dlls"):
            onnxruntime.preload_dlls()  # CUDA libraries from pip's nvidia-* wheels, if any
        session, placed = recurrent_node_providers(source, providers, placement.threads, warm_up)
    except Exception as e:  # onnxruntime raises its own untyped errors
        return f"the CUDA session failed ({e})"
    if CUDA_PROVIDER not in session.get_providers():
        return "onnxruntime fell back to CPU (CUDA or cuDNN libraries missing?)"
    on_cpu = sorted(op for op, where in placed.items() if CUDA_PROVIDER not in where)
    if on_cpu:
        logger.warning(
            "%s nodes run on the CPU, not CUDA (no CUDA kernel; an int8 model's LSTM has none): "
            "serve the fp32 model on GPUs",
            ", ".join(on_cpu),
        )
    else:
        logger.info("LSTM nodes run on CUDA device %d", placement.device_id)
    return session


def optimize_to_file(source: ModelSource, output: Path) -> None:
    """Write `source` with onnxruntime's basic (provider-independent) graph optimizations
    applied, constant subgraphs folded into initializers, to `output`."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = os.fspath(output)
    _session(source, options, [CPU_PROVIDER])
