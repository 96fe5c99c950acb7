"""The DeepSpeech BiRNN (2017 `BiRNN`): three clipped-ReLU dense layers, a bidirectional LSTM,
one more dense layer and the output layer over the alphabet plus the CTC blank.

Layers are named h1, h2, h3, lstm, h5, h6 like the 2017 variables, so tracked statistics read
the same. Padded frames are masked out of the LSTM, so the backward direction starts at each
utterance's real last frame and an utterance gets the same scores alone or in a padded batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from deepspeech.config import ModelConfig


class BiRNN(keras.Model):
    """(B, T, n_input) features + (B,) lengths -> (B, T, n_classes) logits."""

    def __init__(self, config: ModelConfig, **kwargs: object) -> None:
        super().__init__(name="birnn", **kwargs)
        self.config = config
        self.h1 = keras.layers.Dense(config.n_hidden, name="h1")
        self.h2 = keras.layers.Dense(config.n_hidden, name="h2")
        self.h3 = keras.layers.Dense(config.n_hidden, name="h3")
        self.lstm = keras.layers.Bidirectional(
            # Named, or Keras numbers it per process (lstm_1, ...) and the tracked statistics
            # names would depend on how many models the process built before.
            keras.layers.LSTM(config.n_hidden, return_sequences=True, name="lstm"),
            merge_mode="concat",
            name="lstm",
        )
        self.h5 = keras.layers.Dense(config.n_hidden, name="h5")
        self.h6 = keras.layers.Dense(config.n_classes, name="h6", dtype="float32")  # logits, loss
        self.dropout = keras.layers.Dropout(config.dropout_rate)

    def _clipped_relu(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        x = tf.minimum(tf.nn.relu(x), self.config.relu_clip)
        return self.dropout(x, training=training)

    def call(self, features: tf.Tensor, lengths: tf.Tensor, training: bool = False) -> tf.Tensor:
        # features: (B, T, n_input); lengths: (B,) real frames per utterance
        x = self._clipped_relu(self.h1(features), training)  # (B, T, n_hidden)
        x = self._clipped_relu(self.h2(x), training)
        x = self._clipped_relu(self.h3(x), training)
        mask = tf.sequence_mask(lengths, maxlen=tf.shape(features)[1])  # (B, T)
        x = self.lstm(x, mask=mask, training=training)  # (B, T, 2 * n_hidden)
        x = self._clipped_relu(self.h5(x), training)
        return self.h6(x)  # (B, T, n_classes) logits; the blank is the last class


def build_birnn(config: ModelConfig) -> BiRNN:
    """Create the model and its variables (a subclassed Keras model has none until called)."""
    model = BiRNN(config)
    model(tf.zeros((1, 1, config.n_input)), tf.ones((1,), tf.int32))
    return model


def count_parameters(model: keras.Model) -> int:
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))


def ctc_loss(
    labels: tf.Tensor, label_lengths: tf.Tensor, logits: tf.Tensor, logit_lengths: tf.Tensor
) -> tf.Tensor:
    """Per-utterance CTC loss (B,), with labels as a SparseTensor.

    Dense labels were about 15x slower here and logged graph errors; the sparse path uses the
    fused CTC kernel. labels: (B, L) padded, label_lengths: (B,), logits: (B, T, n_classes).
    """
    mask = tf.sequence_mask(label_lengths, maxlen=tf.shape(labels)[1])
    indices = tf.where(mask)
    sparse = tf.SparseTensor(
        indices, tf.gather_nd(labels, indices), tf.cast(tf.shape(labels), tf.int64)
    )
    return tf.nn.ctc_loss(
        labels=sparse,
        logits=logits,
        label_length=None,
        logit_length=logit_lengths,
        logits_time_major=False,
        blank_index=-1,
    )
