"""The DeepSpeech BiRNN (2017 `BiRNN`): MFCC in, normalised and stacked into context windows by
the model itself, then three clipped-ReLU dense layers, a bidirectional LSTM, one more dense
layer and the output layer over the alphabet plus the CTC blank. With `rnn="unidirectional"`
the LSTM runs forward only (DeepSpeech 0.6-0.9): future context then comes from the context
windows alone (numcontext frames), which is what lets the model stream.

The input is per-frame MFCC (B, T, numcep), what the feature cache holds and what serving
computes. The first two operations are fixed: per-coefficient normalisation with the training
set's mean and std (non-trainable weights, so they travel in checkpoints and in the ONNX
graph) or with the utterance's running mean and deviation (`running_mean_frames`,
`running_variance`; causal, so they stream), then the 2017 context windows (frames t-c..t+c
concatenated, zero frames past the edges). Padded frames are zeroed after normalisation, so
an utterance gets the same scores alone or in a padded batch.

Layers are named h1, h2, h3, lstm, h5, h6 like the 2017 variables, so tracked statistics read
the same. `forward` is the one definition of the pass; training and evaluation mask the LSTM (on
a CPU they run the LSTM layer's weights in `lstm_loop`'s leaner loop instead), the export runs it
unmasked (the
fused ONNX LSTM op gets the lengths instead). `forward_chunk` is the same
pass over one chunk of a stream, for the unidirectional model: it carries the last
2*numcontext normalised frames, the LSTM state and the running sums between calls
(`ChunkState`), so chunk by chunk it computes exactly what `forward` computes on the whole
utterance, numcontext frames later.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from deepspeech.model.config import ModelConfig
from deepspeech.model.lstm_loop import bidirectional_frames, forward_frames


class RunningSums(NamedTuple):
    """An utterance's real MFCC frames so far, for its running mean and variance."""

    total: tf.Tensor  # (B, numcep) their sum
    squares: tf.Tensor  # (B, numcep) the sum of their squares
    count: tf.Tensor  # (B,) how many

    @staticmethod
    def zeros(batch: tf.Tensor | int, numcep: int) -> RunningSums:
        """Before the first frame (the start of an utterance or a stream)."""
        return RunningSums(tf.zeros((batch, numcep)), tf.zeros((batch, numcep)), tf.zeros((batch,)))


class FeatureNormalization(keras.layers.Layer):
    """(x - mean) / std per MFCC coefficient, with the statistics of the training set; with
    `running_mean_frames` N > 0 the mean is the utterance's own, so far, and with
    `running_variance` the standard deviation too.

    Why: a voice, microphone or channel the training set never had shifts every frame's
    cepstrum by about the same vector (a filter multiplies the spectrum, the log turns that
    into a sum), and a flatter or livelier voice scales how far the frames move about;
    subtracting the utterance's own mean removes the shift, dividing by its own deviation the
    scale. Causal, so the streaming graph computes it exactly: frame t uses (N * training mean
    + frames 0..t summed) / (N + t + 1), and likewise for the mean square. The training
    statistics count as N frames so that the first frames of a stream are not normalised by
    the statistics of one or two frames. A stream carries the sums (`RunningSums`).
    """

    # The running variance never goes below this share of the training set's: a stretch of
    # constant frames (digital silence) must not be divided by a deviation of almost zero.
    MIN_VARIANCE_SHARE = 0.01

    def __init__(
        self,
        numcep: int,
        running_mean_frames: float = 0.0,
        running_variance: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.running_mean_frames = running_mean_frames
        self.running_variance = running_variance
        self.mean = self.add_weight(
            shape=(numcep,), initializer="zeros", trainable=False, name="mean"
        )
        self.std = self.add_weight(shape=(numcep,), initializer="ones", trainable=False, name="std")

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.assign(np.asarray(mean, np.float32))
        self.std.assign(np.asarray(std, np.float32))

    def call(
        self, features: tf.Tensor, lengths: tf.Tensor, before: RunningSums
    ) -> tuple[tf.Tensor, RunningSums]:
        """features (B, n, numcep), `lengths` (B,) real frames, and the sums of the frames
        before them -> the normalised frames (zero from `lengths` on: padding is zero after
        normalisation) and the sums including this call's real frames."""
        mask = tf.sequence_mask(lengths, maxlen=tf.shape(features)[1], dtype=features.dtype)
        real = features * mask[..., None]
        totals = before.total[:, None] + tf.cumsum(real, axis=1)  # (B, n, numcep)
        squares = before.squares[:, None] + tf.cumsum(tf.square(real), axis=1)
        counts = before.count[:, None] + tf.cumsum(mask, axis=1)  # (B, n)
        mean, std = self.mean, self.std
        if self.running_mean_frames > 0:
            prior = self.running_mean_frames
            weight = (prior + counts)[..., None]
            mean = (prior * self.mean + totals) / weight
            if self.running_variance:
                training_variance = tf.square(self.std)
                mean_square = (
                    prior * (training_variance + tf.square(self.mean)) + squares
                ) / weight
                variance = mean_square - tf.square(mean)
                std = tf.sqrt(tf.maximum(variance, self.MIN_VARIANCE_SHARE * training_variance))
        normalised = (features - mean) / std * mask[..., None]
        return normalised, RunningSums(totals[:, -1], squares[:, -1], counts[:, -1])


def add_context_windows(features: tf.Tensor, numcontext: int) -> tf.Tensor:
    """(B, T, numcep) -> (B, T, numcep * (2*numcontext + 1)): row t is frames t-c..t+c.

    Zero frames past either edge, as `deepspeech.audio.add_context_windows` (2017).
    """
    if numcontext == 0:
        return features
    padded = tf.pad(features, [[0, 0], [numcontext, numcontext], [0, 0]])
    return full_context_windows(padded, numcontext)


def full_context_windows(frames: tf.Tensor, numcontext: int) -> tf.Tensor:
    """(B, L, numcep) -> (B, L - 2*numcontext, numcep * (2*numcontext + 1)): whole windows only.

    Row j is frames j..j+2c of `frames`, i.e. centred on frame j+c: the windows that need no
    frame outside `frames`. Slices, no arithmetic, so the windows are exact; the whole-utterance
    path pads first, the streaming path prepends the frames it carried.
    """
    n_out = tf.shape(frames)[1] - 2 * numcontext
    width = 2 * numcontext + 1
    return tf.concat([frames[:, k : k + n_out] for k in range(width)], axis=-1)


class ChunkState(NamedTuple):
    """What a stream carries from one chunk to the next; batch rows are streams.

    At the start of a stream `context` is c zero frames (the left edge's padding) and the rest
    is zeros; after each call, what the call returned.
    """

    context: tf.Tensor  # (B, K, numcep) normalised frames: the last 2c once running
    state_h: tf.Tensor  # (B, n_hidden) LSTM output state
    state_c: tf.Tensor  # (B, n_hidden) LSTM cell state
    sums: RunningSums  # of the real MFCC frames so far


class BiRNN(keras.Model):
    """(B, T, numcep) MFCC + (B,) lengths -> (B, T, n_classes) logits."""

    def __init__(self, config: ModelConfig, **kwargs: object) -> None:
        super().__init__(name="birnn", **kwargs)
        self.config = config
        # float32 whatever the precision policy: the input statistics need full precision.
        self.normalization = FeatureNormalization(
            config.numcep,
            config.running_mean_frames,
            config.running_variance,
            name="normalization",
            dtype="float32",
        )
        self.h1 = keras.layers.Dense(config.n_hidden, name="h1")
        self.h2 = keras.layers.Dense(config.n_hidden, name="h2")
        self.h3 = keras.layers.Dense(config.n_hidden, name="h3")
        # Named, or Keras numbers it per process (lstm_1, ...) and the tracked statistics
        # names would depend on how many models the process built before.
        if config.rnn == "unidirectional":
            # The state is returned so a stream can carry it from one chunk to the next.
            self.lstm = keras.layers.LSTM(
                config.n_hidden, return_sequences=True, return_state=True, name="lstm"
            )
        else:
            self.lstm = keras.layers.Bidirectional(
                keras.layers.LSTM(config.n_hidden, return_sequences=True, name="lstm"),
                merge_mode="concat",
                name="lstm",
            )
        # Training on CPUs runs the LSTM's weights in lstm_loop's loops (about a sixth of Keras'
        # ops per frame); with a GPU visible Keras runs cuDNN's kernel, which is faster still.
        self.lstm_loop = not tf.config.list_physical_devices("GPU")
        self.h5 = keras.layers.Dense(config.n_hidden, name="h5")
        self.h6 = keras.layers.Dense(config.n_classes, name="h6", dtype="float32")  # logits, loss
        self.dropout = keras.layers.Dropout(config.dropout_rate)

    def lstm_layers(self) -> list[keras.layers.LSTM]:
        """The LSTM layers themselves (a Bidirectional wrapper holds one per direction)."""
        if isinstance(self.lstm, keras.layers.Bidirectional):
            return [self.lstm.forward_layer, self.lstm.backward_layer]
        return [self.lstm]

    def _clipped_relu(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        x = tf.minimum(tf.nn.relu(x), self.config.relu_clip)
        return self.dropout(x, training=training)

    def forward(
        self, features: tf.Tensor, lengths: tf.Tensor, *, training: bool, mask_lstm: bool
    ) -> tf.Tensor:
        """The pass. features: (B, T, numcep) MFCC; lengths: (B,) real frames -> logits.

        `mask_lstm=False` leaves the LSTM unmasked (what the ONNX export converts to the fused
        LSTM op, which then takes `lengths` as sequence_lens); everything else is identical.
        """
        mask = tf.sequence_mask(lengths, maxlen=tf.shape(features)[1])  # (B, T)
        start = RunningSums.zeros(tf.shape(features)[0], self.config.numcep)
        x, _ = self.normalization(features, lengths, start)
        x = add_context_windows(x, self.config.numcontext)  # (B, T, n_input)
        x = self._dense_in(x, training)  # (B, T, n_hidden)
        if mask_lstm and self.lstm_loop and self.lstm.built:
            # Padded frames' outputs differ from Keras' zeros; the CTC loss and the decoders
            # never read them.
            if self.config.rnn == "unidirectional":
                x = forward_frames(x, self.lstm)
            else:
                x = bidirectional_frames(x, lengths, self.lstm)
            return self._dense_out(x, training)
        x = self.lstm(x, mask=mask if mask_lstm else None, training=training)
        if self.config.rnn == "unidirectional":
            x = x[0]  # the sequence; the state matters only to streams
        return self._dense_out(x, training)  # (B, T, n_classes) logits; the blank is last

    def forward_chunk(
        self, features: tf.Tensor, lengths: tf.Tensor, state: ChunkState
    ) -> tuple[tf.Tensor, ChunkState]:
        """One chunk of a stream (unidirectional only, inference): the same pass as `forward`.

        features: (B, n, numcep) MFCC; frames at and after `lengths` (B,) are the zero frames
        past the end of the utterance (normalised zeros, as `forward` pads), fed once to flush.
        state: what the last call returned (`ChunkState` says what a stream starts with).
        Returns logits (B, K + n - 2c, n_classes) for the frames whose whole window is now
        known (the stream lags c frames), and the state for the next call.
        """
        c = self.config.numcontext
        normalised, sums = self.normalization(features, lengths, state.sums)
        frames = tf.concat([state.context, normalised], axis=1)
        new_context = frames[:, tf.shape(frames)[1] - 2 * c :]
        x = full_context_windows(frames, c)  # (B, K + n - 2c, n_input)
        x = self._dense_in(x, training=False)
        x, state_h, state_c = self.lstm(
            x, initial_state=[state.state_h, state.state_c], training=False
        )
        logits = self._dense_out(x, training=False)
        return logits, ChunkState(new_context, state_h, state_c, sums)

    def _dense_in(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """h1..h3 on context windows: (B, T, n_input) -> (B, T, n_hidden)."""
        x = self._clipped_relu(self.h1(x), training)
        x = self._clipped_relu(self.h2(x), training)
        return self._clipped_relu(self.h3(x), training)

    def _dense_out(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """h5 and the output layer on LSTM outputs -> (B, T, n_classes) logits."""
        return self.h6(self._clipped_relu(self.h5(x), training))

    def call(self, features: tf.Tensor, lengths: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.forward(features, lengths, training=training, mask_lstm=True)


def build_birnn(config: ModelConfig) -> BiRNN:
    """Create the model and its variables (a subclassed Keras model has none until called)."""
    model = BiRNN(config)
    model(tf.zeros((1, 1, config.numcep)), tf.ones((1,), tf.int32))
    return model


def count_parameters(model: keras.Model) -> int:
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))


def ctc_loss(
    labels: tf.Tensor, label_lengths: tf.Tensor, logits: tf.Tensor, logit_lengths: tf.Tensor
) -> tf.Tensor:
    """Per-utterance CTC loss (B,), with labels as a SparseTensor, on TensorFlow's own kernel.

    Dense labels were about 15x slower here and logged graph errors; the sparse path uses the
    fused CTC kernel. labels: (B, L) padded, label_lengths: (B,), logits: (B, T, n_classes),
    blank last.

    `tf.nn.ctc_loss` would also put cuDNN's CTC in the graph and run it on a GPU: cuDNN refuses
    label sequences over 255 ("cuDNN CTCLoss launch failure"; LibriSpeech has longer
    transcripts) and leaves gradients past `logit_lengths` (tensorflow#41280). TensorFlow's
    kernel (the one a CPU runs, and what `tf.nn.ctc_loss` computes there, to the bit) has
    neither limit; on a GPU it runs on the host, on (B, T, n_classes) logits, which is small
    next to the model. Padded frames are cut from the gradient here too, whatever the kernel.
    """
    mask = tf.sequence_mask(label_lengths, maxlen=tf.shape(labels)[1])
    indices = tf.where(mask)
    sparse = tf.SparseTensor(
        indices, tf.gather_nd(labels, indices), tf.cast(tf.shape(labels), tf.int64)
    )
    frames = tf.sequence_mask(logit_lengths, maxlen=tf.shape(logits)[1])[:, :, None]
    logits = tf.where(frames, logits, tf.stop_gradient(logits))
    return tf.compat.v1.nn.ctc_loss(
        labels=sparse,
        inputs=logits,
        sequence_length=logit_lengths,
        time_major=False,
    )
