"""Choose the tf.distribute strategy: one device, mirrored over local devices, or multi-worker.

`--devices N` mirrors over N GPUs, or over N logical CPU devices on a machine without GPUs (the
way multi-device training is tested here); a `TF_CONFIG` naming more than one task switches to
`MultiWorkerMirroredStrategy`. Gradients are all-reduced and variables mirrored by TensorFlow:
the 2017 `average_gradients` and `variable_on_worker_level`, done by the engine.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import tensorflow as tf

from deepspeech.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """The strategy and what the run should record about it."""

    strategy: tf.distribute.Strategy
    description: str  # e.g. "2 x CPU (logical, mirrored)"; logged as the `devices` param
    num_replicas: int
    num_workers: int
    worker_index: int
    is_chief: bool  # only the chief logs to MLflow and owns the real checkpoint folder
    on_gpus: bool  # the model runs on GPUs: the CPU is free for input work meanwhile


def _cluster_from_env() -> tuple[int, int, bool] | None:
    """(num_workers, worker_index, is_chief) from TF_CONFIG, or None for a single process."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        tf_config = json.loads(raw)
        cluster = tf_config["cluster"]
        task = tf_config["task"]
        task_type, task_index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"TF_CONFIG is not valid: {e}; see the README's multi-worker section"
        ) from e
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    if workers <= 1:
        return None
    has_chief = "chief" in cluster
    is_chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_index == 0)
    index = task_index + (1 if has_chief and task_type == "worker" else 0)
    return workers, index, is_chief


def _split_cpu(n: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as e:
        # TensorFlow fixes devices at first use; a second split in one process is not possible.
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise ConfigError(
                f"cannot split the CPU into {n} devices after TensorFlow started: {e}"
            ) from e


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TensorFlow's thread pools (0 keeps TensorFlow's choice) before its first operation.

    Why a CPU run wants them: a small LSTM's step is a chain of small matmuls that one core
    computes about as fast as two, while its two directions are independent loops. On 2 cores,
    `intra_op 1, inter_op 2` runs the directions side by side, one core each: at n_hidden 256
    the LSTM alone took a third less time, a whole training step less (the dense layers, the
    loss and the optimizer lose their second core); benchmarks/training.py measures the step.
    """
    threading = tf.config.threading
    pools = (
        (
            "intra-op",
            intra_op,
            threading.get_intra_op_parallelism_threads,
            threading.set_intra_op_parallelism_threads,
        ),
        (
            "inter-op",
            inter_op,
            threading.get_inter_op_parallelism_threads,
            threading.set_inter_op_parallelism_threads,
        ),
    )
    for pool, threads, current, set_threads in pools:
        if not threads or current() == threads:
            continue
        try:
            set_threads(threads)
        except RuntimeError as e:
            # TensorFlow fixes its pools at first use, like its devices.
            raise ConfigError(
                f"cannot set {threads} {pool} threads after TensorFlow started: {e}; "
                "run the training in a new process"
            ) from e
        logger.info("TensorFlow %s threads: %d", pool, threads)


def collective_communication(on_gpus: bool) -> tf.distribute.experimental.CommunicationOptions:
    """How workers all-reduce: NCCL between GPUs; ring all-reduce over gRPC between CPUs.

    `MultiWorkerMirroredStrategy()` defaults to AUTO, which is the gRPC ring; on GPUs that
    copies every gradient through host memory and the network stack.
    """
    implementation = tf.distribute.experimental.CommunicationImplementation
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if on_gpus else implementation.RING
    )


def share_gpus(gpus: list) -> None:
    """Let processes share a GPU (`--gpus-per-worker` below 1): TensorFlow takes its memory as
    it needs it instead of all of it at start, which would leave nothing to the others."""
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        logger.info("GPU memory grows on demand: the GPU is shared with other workers")


def make_placement(devices: str, *, shared_gpu: bool = False) -> Placement:
    """Build the strategy for `--devices` ("N" or "all") and the TF_CONFIG environment.

    `shared_gpu`: this process gets a fraction of a GPU (Ray's `--gpus-per-worker` < 1).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if shared_gpu:
        share_gpus(gpus)
    cluster = _cluster_from_env()
    if cluster is not None:
        workers, index, is_chief = cluster
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=collective_communication(bool(gpus))
        )
        description = f"{workers} workers x {strategy.num_replicas_in_sync // workers} device(s)"
        logger.info("multi-worker training: worker %d of %d", index, workers)
        return Placement(
            strategy,
            description,
            strategy.num_replicas_in_sync,
            workers,
            index,
            is_chief,
            bool(gpus),
        )

    wanted = (len(gpus) or 1) if devices == "all" else int(devices)
    if gpus:
        if wanted > len(gpus):
            raise ConfigError(f"--devices {wanted} asks for more GPUs than the {len(gpus)} present")
        names = [f"/gpu:{i}" for i in range(wanted)]
        kind = "GPU"
    else:
        _split_cpu(wanted)
        names = [f"/cpu:{i}" for i in range(wanted)]
        kind = "CPU (logical)" if wanted > 1 else "CPU"
    if wanted == 1:
        strategy: tf.distribute.Strategy = tf.distribute.OneDeviceStrategy(names[0])
        return Placement(strategy, f"1 x {kind}", 1, 1, 0, True, bool(gpus))
    cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
    strategy = tf.distribute.MirroredStrategy(names, cross_device_ops=cross_device_ops)
    return Placement(strategy, f"{wanted} x {kind}, mirrored", wanted, 1, 0, True, bool(gpus))
