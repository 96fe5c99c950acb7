"""`train --mixed-precision`: 16-bit compute, float32 variables, logits and loss; loss scaling."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import deepspeech.training.precision as precision
from deepspeech.model.birnn import build_birnn, ctc_loss
from deepspeech.model.config import ModelConfig
from deepspeech.training.precision import (
    BFLOAT16,
    FLOAT16,
    FULL,
    has_bfloat16,
    mixed_precision,
    policy_name,
    scale_loss,
    unscale_gradients,
    with_loss_scaling,
)

CONFIG = ModelConfig(n_classes=29, n_hidden=32, dropout_rate=0.0)


@pytest.fixture(autouse=True)
def bfloat16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compute in 16 bits whatever CPU runs them (emulated bfloat16 is slow, not
    wrong); the fallback to float32 has its own test."""
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)


def test_a_cpu_without_bfloat16_instructions_trains_in_float32(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert has_bfloat16("processor : 0\nflags\t\t: fpu sse avx512f avx512_bf16 fma\n")
    assert has_bfloat16("flags : fpu amx_bf16 amx_tile\n")
    assert has_bfloat16("Features\t: fp asimd bf16 i8mm\n")  # Arm
    assert not has_bfloat16("flags : fpu sse avx2 avx512f fma\nbugs : bf16\n")
    # A CPU-only process, whatever this machine has (a GPU would compute in float16).
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [] if kind == "GPU" else real(kind)
    )
    assert policy_name(True) == BFLOAT16
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert policy_name(True) == FULL and policy_name(False) == FULL
    with caplog.at_level("WARNING"), mixed_precision(True) as name:
        model = build_birnn(CONFIG)
    assert name == FULL and model.h1.compute_dtype == "float32"
    assert "no bfloat16 instructions" in caplog.text


def batch() -> tuple[tf.Tensor, ...]:
    """(MFCC (4, 40, numcep), lengths (4,), labels (4, 6), label lengths (4,), ids (4,))."""
    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=(4, 40, CONFIG.numcep)), tf.float32)
    labels = tf.constant(rng.integers(0, 28, size=(4, 6)), tf.int32)
    ids = tf.constant([0, 1, 2, 3], tf.int64)
    return features, tf.constant([40, 33, 25, 18]), labels, tf.constant([6, 5, 4, 3]), ids


def test_the_model_computes_in_16_bits_but_keeps_float32_variables_and_logits() -> None:
    with mixed_precision(True) as name:
        model = build_birnn(CONFIG)
    assert name == policy_name(True) and name != "float32"
    assert keras.mixed_precision.global_policy().name == "float32", "the policy leaked"
    compute = name.removeprefix("mixed_")
    assert model.h1.compute_dtype == compute
    assert model.lstm.forward_layer.compute_dtype == compute
    assert {v.dtype for v in model.weights} == {"float32"}
    features, lengths, *_ = batch()
    assert model(features, lengths).dtype == tf.float32
    assert build_birnn(CONFIG).h1.compute_dtype == "float32"  # built after the block


def float16_model_and_optimizer() -> tuple[keras.Model, keras.optimizers.Optimizer]:
    """The GPU's choice (float16 with loss scaling), forced on whatever device runs the test."""
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy(FLOAT16)
    try:
        model = build_birnn(CONFIG)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Starting at 2**15, a CTC loss in the hundreds overflows float16 at first; the dynamic
    # scale would halve until it fits (the next test): start where it fits.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2**7)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def test_loss_scaling_gives_the_true_gradient() -> None:
    model, optimizer = float16_model_and_optimizer()
    features, lengths, labels, label_lengths, _ = batch()
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_mean(ctc_loss(labels, label_lengths, model(features, lengths), lengths))
        scaled = scale_loss(optimizer, loss)
    assert float(scaled) == pytest.approx(float(loss) * float(optimizer.dynamic_scale))
    plain = tape.gradient(loss, model.trainable_variables)
    grads = tape.gradient(scaled, model.trainable_variables)
    total, grads = unscale_gradients(optimizer, list(grads), list(grads))
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    for true, unscaled in zip(plain, total, strict=True):
        # float16 gradients below ~6e-8 flush to zero without the scale; compare the rest.
        np.testing.assert_allclose(unscaled.numpy(), true.numpy(), rtol=2e-2, atol=1e-4)


def test_an_overflow_skips_the_step_on_every_replica_and_halves_the_scale() -> None:
    model, optimizer = float16_model_and_optimizer()
    before = [v.numpy() for v in model.trainable_variables]
    scale = float(optimizer.dynamic_scale)
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    total = [g * 2.0 for g in grads]
    total[3] = total[3] * math.inf  # another replica overflowed: only the sum shows it
    _, grads = unscale_gradients(optimizer, total, grads)
    assert all(np.isnan(g.numpy()).all() for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    for old, variable in zip(before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(old, variable.numpy())
    assert float(optimizer.dynamic_scale) == scale / 2


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-12))


def one_step(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> tuple:
    """One compiled training step (`training/step.py`) on `batch()`: (loss, norm, gradient)."""
    from deepspeech.training.step import make_train_step

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch()))
    step = make_train_step(
        strategy, model, optimizer, 4, 0.0, dataset.element_spec, with_gradients=True
    )
    return step(next(iter(dataset)))


def test_the_training_step_with_loss_scaling_matches_float32() -> None:
    """float16 + LossScaleOptimizer through the real step: the same update as float32 SGD,
    and the gradient it reports (for norms and statistics) is the unscaled one."""
    model16, optimizer16 = float16_model_and_optimizer()
    keras.utils.set_random_seed(1)
    model32 = build_birnn(CONFIG)
    for a, b in zip(model16.weights, model32.weights, strict=True):
        b.assign(a)
    optimizer32 = keras.optimizers.SGD(0.1)
    optimizer32.build(model32.trainable_variables)
    before = [v.numpy() for v in model32.trainable_variables]
    loss16, norm16, grads16 = one_step(model16, optimizer16)
    loss32, norm32, grads32 = one_step(model32, optimizer32)
    assert float(loss16) == pytest.approx(float(loss32), rel=1e-2)
    assert float(norm16) == pytest.approx(float(norm32), rel=2e-2)
    # float16 through an LSTM moves single elements by tens of per cent; the whole gradient
    # stays within a few per cent, while a loss scale left in (x128) or applied twice would be
    # off by orders of magnitude.
    for g16, g32 in zip(grads16, grads32, strict=True):
        assert relative_error(g16.numpy(), g32.numpy()) < 0.05
    for old, v16, v32 in zip(
        before, model16.trainable_variables, model32.trainable_variables, strict=True
    ):
        assert np.abs(v32.numpy() - old).max() > 0
        assert relative_error(v16.numpy() - old, v32.numpy() - old) < 0.05
    assert float(optimizer16.dynamic_scale) == 2**7  # a finite step keeps the scale


def test_loss_scaling_only_where_the_policy_is_float16() -> None:
    sgd = keras.optimizers.SGD(0.1)
    assert with_loss_scaling(sgd, False) is sgd
    wrapped = with_loss_scaling(sgd, True)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer) == (
        policy_name(True) == FLOAT16
    )


@pytest.mark.slow
def test_mixed_precision_training_learns_like_float32(tiny_corpus: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from test_train import checkpoint_weights, mlflow_runs, tiny_config

    from deepspeech.training.loop import train

    losses = {}
    for mixed in (False, True):
        folder = tmp_path / str(mixed)
        train(tiny_config(tiny_corpus, folder, epochs=1, dev_files="", mixed_precision=mixed))
        (run,) = mlflow_runs(folder)
        assert run.data.params["mixed_precision"] == str(mixed)
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        history = client.get_metric_history(run.info.run_id, "train_loss")
        losses[mixed] = [m.value for _, m in sorted((m.step, m) for m in history)]
        assert {str(w.dtype) for w in checkpoint_weights(folder / "ckpt").values()} == {"float32"}
    print(f"train_loss float32 {losses[False]}\nmixed {losses[True]}")
    assert all(math.isfinite(x) for x in losses[True])
    assert losses[True][-1] < 0.8 * losses[True][0], "mixed precision did not learn"
    np.testing.assert_allclose(losses[True], losses[False], rtol=0.05)
