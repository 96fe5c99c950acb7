"""Mixed precision for `train --mixed-precision`: float16 with dynamic loss scaling on GPUs,
bfloat16 on CPUs with bfloat16 instructions (its float32 exponent range needs no loss scaling),
float32 on other CPUs.

Why not bfloat16 on every CPU: without AVX512_BF16 or AMX (x86) or BF16 (Arm) each product
would convert to and from float32 around float32 arithmetic, slower than float32 alone. With
them, make run's training step took about 15 % less time on an AMD EPYC with AVX512_BF16.

Variables stay float32; layers compute in the 16-bit type. The output layer (`h6`, built with
`dtype="float32"` in `model/birnn.py`) and so the logits, the CTC loss and the gradients'
statistics stay float32. The policy is set only while the model is built (`mixed_precision`),
so a later `export` or evaluation in the same process builds a float32 model.

On a GPU the BiRNN's LSTM takes the cuDNN kernel (`CudnnRNNV3`) in float16 as in float32:
Keras picks it when the layer keeps its default arguments (tanh, sigmoid, no recurrent
dropout, no unroll, with bias) and the mask is right-padded, as `tf.sequence_mask` makes it
(an utterance of 0 frames would fail cuDNN's mask check: batches never hold one).
`benchmarks/gpu.py` checks that the op is in the traced training graph.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

FLOAT16 = "mixed_float16"  # GPUs: tensor cores; needs loss scaling (float16 underflows)
BFLOAT16 = "mixed_bfloat16"  # CPUs (and GPUs that prefer it): float32's exponent range
FULL = "float32"
# Linux's names for bfloat16 instructions: x86 `flags` (AVX512_BF16, AMX's), Arm `Features`.
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def has_bfloat16(cpuinfo: str) -> bool:
    """Whether a `/proc/cpuinfo` text names bfloat16 instructions for its CPUs."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and BFLOAT16_FLAGS & set(value.split()):
            return True
    return False


@functools.cache
def cpu_has_bfloat16() -> bool:
    """This CPU's bfloat16 instructions (False where /proc/cpuinfo cannot be read)."""
    try:
        return has_bfloat16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def policy_name(enabled: bool) -> str:
    """The Keras dtype policy `--mixed-precision` means on this process's devices."""
    if not enabled:
        return FULL
    if tf.config.list_physical_devices("GPU"):
        return FLOAT16
    return BFLOAT16 if cpu_has_bfloat16() else FULL


@contextmanager
def mixed_precision(enabled: bool) -> Iterator[str]:
    """Build layers under the policy (each layer keeps the policy it was built with); the
    global policy is restored afterwards."""
    previous = keras.mixed_precision.global_policy()
    name = policy_name(enabled)
    keras.mixed_precision.set_global_policy(name)
    if enabled and name == FULL:
        logger.warning(
            "mixed precision: this CPU has no bfloat16 instructions, so training stays in "
            "float32 (bfloat16 would only be slower here)"
        )
    elif enabled:
        logger.info("mixed precision: %s (variables, logits and loss in float32)", name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(previous)


def with_loss_scaling(
    optimizer: keras.optimizers.Optimizer, enabled: bool
) -> keras.optimizers.Optimizer:
    """Wrap the optimizer in dynamic loss scaling where the policy is float16."""
    if policy_name(enabled) != FLOAT16:
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def scale_loss(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: times the loss scale under loss scaling, else as is."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def unscale_gradients(
    optimizer: keras.optimizers.Optimizer, total: list[tf.Tensor], grads: list[tf.Tensor]
) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """(true global gradient, the gradients for `apply_gradients`).

    `total`, the all-reduced gradient, is divided by the loss scale (for clipping norms and
    statistics). `grads` stay scaled (the LossScaleOptimizer unscales them), but become NaN
    when `total` is not finite, so all replicas skip the step and lower the scale together.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return total, grads
    scale = tf.cast(optimizer.dynamic_scale, tf.float32)
    total = [t / scale for t in total]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in total])
    poison = tf.where(finite, 0.0, float("nan"))
    return total, [g + poison for g in grads]
