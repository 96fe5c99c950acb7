"""The compiled, distributed training step (the 2017 `get_tower_results` + `average_gradients`).

Each replica computes the CTC loss of its share scaled by the global batch, so summing the
replicas' gradients gives exactly the one-device gradient of the global batch; TensorFlow
all-reduces them and keeps the mirrored variables in step.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from deepspeech.model.birnn import ctc_loss
from deepspeech.training.precision import scale_loss, unscale_gradients

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

    The gradients (of the whole global batch) are returned only `with_gradients`, for the
    statistics logged every few steps; fetching them every step would copy the model each time.
    """
    variables = model.trainable_variables

    def replica_step(features, feature_lengths, labels, label_lengths):
        with tf.GradientTape() as tape:
            logits = model(features, feature_lengths, training=True)
            per_example = ctc_loss(labels, label_lengths, logits, feature_lengths)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            scaled_loss = scale_loss(optimizer, loss)  # under the tape, or it has no gradient
        grads = tape.gradient(scaled_loss, variables)
        # The gradient of the whole global batch, identical on every replica: its norm drives
        # clipping, and it is what the statistics describe.
        total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        total, grads = unscale_gradients(optimizer, total, grads)
        norm = tf.linalg.global_norm(total)
        if grad_clip_norm > 0:
            scale = tf.minimum(1.0, grad_clip_norm / tf.maximum(norm, 1e-12))
            grads = [g * scale for g in grads]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, norm, total

    def step(element):
        loss, norm, total = strategy.run(replica_step, args=element)
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        norm = strategy.experimental_local_results(norm)[0]
        if not with_gradients:
            return loss, norm, []
        return loss, norm, [strategy.experimental_local_results(g)[0] for g in total]

    return tf.function(step, input_signature=[element_spec])
