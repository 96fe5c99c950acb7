"""The LSTM as training runs it on a CPU: the same weights and the same arithmetic as Keras'
`LSTM` layer, in about a sixth of the ops per frame (forward and backward, `benchmarks/training.py`
counts them in the traced graph).

Why: without a GPU, Keras 3 runs its LSTM as `backend.rnn`, a `tf.while_loop` calling
`LSTMCell.call` once per frame, with the input product x·W inside the loop and the mask applied
with `tf.where` to the output and both states at every frame. Each frame of each direction then
runs about 200 ops forward and backward (`benchmarks/training.py` counts them), and at make
run's sizes their fixed cost per op is about a third of a step: a step's time hardly halves
when its batch does. Here:

- x·W (and the bias) is one product over all frames before the loop; the loop runs h·R and
  the gates only, with one sigmoid for all four gates (tanh(z) = 2·sigmoid(2z) − 1, so the
  cell gate's columns of W, R and the bias are doubled outside the loop).
- There is no mask in the loop: a batch is right-padded, so the forward direction reaches
  every real frame before any padding, and the backward direction runs over each utterance
  reversed in place (`tf.reverse_sequence` by its length), which puts its padding last too.
  Real frames get exactly what the masked Keras layer computes; padded frames get values the
  loss never reads (`ctc_loss` cuts them from the gradient), where Keras gives zeros.
- The gradient is backpropagation through time written out (`tf.custom_gradient`): what each
  frame's gate gradients need from the forward pass is computed for all frames at once before
  the backward loop, which then runs one h-gradient product and a few element-wise ops a frame,
  and R's gradient is one product after it. TensorFlow's own gradient of the same forward loop
  ran 71 ops a frame; a step took a fifth less time without it.

`tests/test_lstm_loop.py` checks outputs and gradients against the Keras layer.

Training and its dev and test reports run this on CPUs (under bfloat16, Keras' loop made the
reports take twice as long); on a GPU Keras runs cuDNN's fused kernel (`CudnnRNNV3`), which
this would only slow down, and the export and streaming graphs keep the Keras layer (tf2onnx
turns it into the fused ONNX LSTM op).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf


def lstm_frames(x: tf.Tensor, cell: keras.layers.LSTMCell) -> tf.Tensor:
    """x (T, B, n_in) time-major -> h (T, B, n) from zero state: `cell`'s LSTM over every frame.

    Gates in Keras' order (input, forget, cell, output), sigmoid gates and tanh activations,
    as Keras' defaults that `BiRNN` keeps."""
    dtype = x.dtype
    n = cell.recurrent_kernel.shape[0]
    # Doubles the cell gate's pre-activation: sigmoid(2z) gives its tanh(z) as 2·s − 1.
    scale = tf.concat([tf.ones([2 * n], dtype), tf.fill([n], tf.cast(2, dtype)),
                       tf.ones([n], dtype)], 0)  # fmt: skip
    kernel = tf.cast(cell.kernel, dtype) * scale
    frames, batch = tf.shape(x)[0], tf.shape(x)[1]
    inputs = tf.reshape(x, [-1, x.shape[-1]]) @ kernel + tf.cast(cell.bias, dtype) * scale
    inputs = tf.reshape(inputs, [frames, batch, 4 * n])
    return _recurrence(inputs, tf.cast(cell.recurrent_kernel, dtype) * scale)


@tf.custom_gradient
def _recurrence(inputs: tf.Tensor, recurrent: tf.Tensor) -> tuple[tf.Tensor, Callable]:
    """inputs (T, B, 4n): x·W + b; recurrent (n, 4n): R (both with the cell gate doubled)
    -> h (T, B, n), and the gradient of both."""
    dtype = inputs.dtype
    n = recurrent.shape[0]
    frames, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
    zero = tf.zeros([batch, n], dtype)
    per_frame = tf.TensorArray(dtype, size=frames).unstack(inputs)
    saved = tuple(tf.TensorArray(dtype, size=frames) for _ in "hcg")  # h, c, the 4 gates

    def step(t: tf.Tensor, h: tf.Tensor, c: tf.Tensor, saved: tuple) -> tuple:
        gates = tf.sigmoid(per_frame.read(t) + h @ recurrent)
        i, f, s, o = tf.split(gates, 4, axis=1)
        c = f * c + i * (2 * s - 1)
        h = o * tf.tanh(c)
        hs, cs, all_gates = saved
        return t + 1, h, c, (hs.write(t, h), cs.write(t, c), all_gates.write(t, gates))

    _, _, _, saved = tf.while_loop(
        lambda t, *_: t < frames, step, (tf.constant(0), zero, zero, saved)
    )
    h_all, c_all, gates = (array.stack() for array in saved)

    def gradient(dh_all: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Backpropagation through time: dh (T, B, n) -> d inputs (T, B, 4n), d recurrent."""
        i, f, s, o = tf.split(gates, 4, axis=2)
        tanh_c = tf.tanh(c_all)
        c_before = tf.concat([zero[None], c_all[:-1]], axis=0)
        # A frame's gate pre-activations get [dc, dc, dc, dh] times these (the gates' own
        # inputs to c and h, times the sigmoid's slope); dc gets dh times `through` from h.
        slopes = tf.concat([2 * s - 1, c_before, 2 * i, tanh_c], axis=2) * gates * (1 - gates)
        through = o * (1 - tanh_c * tanh_c)
        read = [tf.TensorArray(dtype, size=frames).unstack(v) for v in (dh_all, slopes, through, f)]
        upstream, slope, into_c, forget = read
        transposed = tf.transpose(recurrent)

        def back(t: tf.Tensor, dh: tf.Tensor, dc: tf.Tensor, dz: tf.TensorArray) -> tuple:
            dh = dh + upstream.read(t)  # from the output, and from the next frame's h·R
            dc = dc + dh * into_c.read(t)
            dz_t = tf.concat([dc, dc, dc, dh], axis=1) * slope.read(t)
            return t - 1, dz_t @ transposed, dc * forget.read(t), dz.write(t, dz_t)

        _, _, _, dz = tf.while_loop(
            lambda t, *_: t >= 0,
            back,
            (frames - 1, zero, zero, tf.TensorArray(dtype, size=frames)),
        )
        dz = dz.stack()
        h_before = tf.concat([zero[None], h_all[:-1]], axis=0)
        d_recurrent = tf.matmul(
            tf.reshape(h_before, [-1, n]), tf.reshape(dz, [-1, 4 * n]), transpose_a=True
        )
        return dz, d_recurrent

    return h_all, gradient


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
