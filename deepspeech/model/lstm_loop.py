"""The LSTM as training runs it on a CPU: the same weights and the same arithmetic as Keras'
`LSTM` layer, in a loop with about half the ops per frame.

Why: without a GPU, Keras 3 runs its LSTM as `backend.rnn`, a `tf.while_loop` calling
`LSTMCell.call` once per frame, with the input product x·W inside the loop and the mask applied
with `tf.where` to the output and both states at every frame. Each frame of each direction then
runs about 200 ops forward and backward (`benchmarks/training.py` counts them), and at make
run's sizes their fixed cost per op is about a third of a step: a step's time hardly halves
when its batch does. Here x·W (and the bias) is one product over all frames before the loop,
the loop runs h·R and the gates only, and there is no mask in it: a batch is right-padded, so
the forward direction reaches every real frame before any padding, and the backward direction
runs over each utterance reversed in place (`tf.reverse_sequence` by its length), which puts
its padding last too. Real frames get exactly what the masked Keras layer computes; padded
frames get values the loss never reads (`ctc_loss` cuts them from the gradient), where Keras
gives zeros. `tests/test_lstm_loop.py` checks outputs and gradients against the Keras layer.

Only training on CPUs runs this: on a GPU Keras runs cuDNN's fused kernel (`CudnnRNNV3`),
which this would only slow down, and the export and streaming graphs keep the Keras layer
(tf2onnx turns it into the fused ONNX LSTM op).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def lstm_frames(x: tf.Tensor, cell: keras.layers.LSTMCell) -> tf.Tensor:
    """x (T, B, n_in) time-major -> h (T, B, n) from zero state: `cell`'s LSTM over every frame.

    Gates in Keras' order (input, forget, cell, output), sigmoid gates and tanh activations,
    as Keras' defaults that `BiRNN` keeps."""
    dtype = x.dtype
    kernel = tf.cast(cell.kernel, dtype)
    recurrent = tf.cast(cell.recurrent_kernel, dtype)
    n = recurrent.shape[0]
    frames, batch = tf.shape(x)[0], tf.shape(x)[1]
    inputs = tf.reshape(x, [-1, x.shape[-1]]) @ kernel + tf.cast(cell.bias, dtype)
    inputs = tf.reshape(inputs, [frames, batch, 4 * n])
    zero = tf.zeros([batch, n], dtype)
    per_frame = tf.TensorArray(dtype, size=frames).unstack(inputs)
    outputs = tf.TensorArray(dtype, size=frames)

    def step(t: tf.Tensor, h: tf.Tensor, c: tf.Tensor, outputs: tf.TensorArray) -> tuple:
        i, f, g, o = tf.split(per_frame.read(t) + h @ recurrent, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return t + 1, h, c, outputs.write(t, h)

    _, _, _, outputs = tf.while_loop(
        lambda t, *_: t < frames, step, (tf.constant(0), zero, zero, outputs)
    )
    return outputs.stack()


def bidirectional_frames(x: tf.Tensor, lengths: tf.Tensor, layer: keras.layers.Layer) -> tf.Tensor:
    """x (B, T, n_in) right-padded, `lengths` (B,) -> (B, T, 2n): forward and backward outputs
    concatenated, as `Bidirectional(LSTM(...), merge_mode="concat")` with the padding masked."""
    x = tf.transpose(x, [1, 0, 2])
    forward = lstm_frames(x, layer.forward_layer.cell)
    reverse = tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)
    backward = lstm_frames(reverse, layer.backward_layer.cell)
    backward = tf.reverse_sequence(backward, lengths, seq_axis=0, batch_axis=1)
    return tf.transpose(tf.concat([forward, backward], axis=-1), [1, 0, 2])


def forward_frames(x: tf.Tensor, layer: keras.layers.LSTM) -> tf.Tensor:
    """x (B, T, n_in) right-padded -> (B, T, n): the forward-only LSTM's outputs."""
    return tf.transpose(lstm_frames(tf.transpose(x, [1, 0, 2]), layer.cell), [1, 0, 2])
