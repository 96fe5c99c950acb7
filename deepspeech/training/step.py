"""The compiled, distributed training step (the 2017 `get_tower_results` + `average_gradients`).

Each replica computes the CTC loss of its share scaled by the global batch, so summing the
replicas' gradients gives exactly the one-device gradient of the global batch. That sum is
all-reduced once, here: its norm drives clipping and the statistics, and the optimizer applies
it as it is. Keras 3's TensorFlow optimizers all-reduce in `apply_gradients` whatever they get
(Keras 2's `skip_gradients_aggregation` is gone), so the optimizers here skip that second
all-reduce; `tests/test_train.py` checks with plain SGD that each gradient counts once.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from deepspeech.model.birnn import ctc_loss
from deepspeech.training.precision import scale_loss, unscale_gradients

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer `name` ("adam" or "sgd"), taking gradients already summed over replicas.

    Build it inside the strategy's scope, like the model.
    """

    class PreReduced(OPTIMIZERS[name]):
        def _all_reduce_sum_gradients(self, grads_and_vars):
            # The step has summed the gradients over replicas already; Keras would sum the
            # (identical) sums again: one all-reduce more, and each gradient counted R times.
            return list(grads_and_vars)

    return PreReduced(learning_rate=learning_rate)


StepFunction = Callable[[object], tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]]


def make_train_step(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    global_batch_size: int,
    grad_clip_norm: float,
    element_spec: object,
    *,
    with_gradients: bool,
) -> StepFunction:
    """One global step: element (a distributed batch) -> (mean loss, gradient norm, gradients).

    The gradients (of the whole global batch, before clipping) are returned only
    `with_gradients`, for the statistics logged every few steps; fetching them every step
    would copy the model each time.
    """
    variables = model.trainable_variables

    def replica_step(features, feature_lengths, labels, label_lengths, ids):
        del ids  # which utterances: for tests and traces, not for the loss
        with tf.GradientTape() as tape:
            logits = model(features, feature_lengths, training=True)
            per_example = ctc_loss(labels, label_lengths, logits, feature_lengths)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            scaled_loss = scale_loss(optimizer, loss)  # under the tape, or it has no gradient
        grads = tape.gradient(scaled_loss, variables)
        # The one all-reduce: the gradient of the whole global batch, the same on every replica
        # (times the loss scale under float16 loss scaling, which the optimizer divides out).
        summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        total, to_apply = unscale_gradients(optimizer, summed, summed)
        norm = tf.linalg.global_norm(total)
        clipped = to_apply
        if grad_clip_norm > 0:
            scale = tf.minimum(1.0, grad_clip_norm / tf.maximum(norm, 1e-12))
            clipped = [g * scale for g in to_apply]

        optimizer.apply_gradients(zip(clipped, variables, strict=True))
        return loss, norm, total

    def step(element):
        loss, norm, total = strategy.run(replica_step, args=element)
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        norm = strategy.experimental_local_results(norm)[0]
        if not with_gradients:
            return loss, norm, []
        return loss, norm, [strategy.experimental_local_results(g)[0] for g in total]

    return tf.function(step, input_signature=[element_spec])
