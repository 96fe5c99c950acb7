"""The model's input normalisation (deepspeech/model/birnn.py `FeatureNormalization`): the
training set's mean, or the utterance's causal running mean, in Keras and in the ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_model

from deepspeech.audio import N_CEPSTRUM
from deepspeech.config import ModelConfig, TrainConfig
from deepspeech.errors import ConfigError
from deepspeech.model.birnn import FeatureNormalization
from deepspeech.model.export import check_parity, convert_to_onnx
from deepspeech.text import Alphabet

RNG = np.random.default_rng(3)
MEAN = RNG.normal(0.0, 5.0, N_CEPSTRUM).astype(np.float32)
STD = RNG.uniform(2.0, 10.0, N_CEPSTRUM).astype(np.float32)


def normalize(frames: float, features: np.ndarray, lengths: list[int]) -> np.ndarray:
    layer = FeatureNormalization(N_CEPSTRUM, frames)
    layer.build(None)
    layer.set_statistics(MEAN, STD)
    batch = len(features)
    normalised, _, _ = layer(
        tf.constant(features),
        tf.constant(lengths),
        tf.zeros((batch, N_CEPSTRUM)),
        tf.zeros((batch,)),
    )
    return normalised.numpy()


def test_running_mean_is_the_prior_weighted_mean_of_the_frames_so_far() -> None:
    features = RNG.normal(3.0, 4.0, (1, 30, N_CEPSTRUM)).astype(np.float32)
    out = normalize(8.0, features, [30])[0]
    for t in (0, 1, 7, 29):
        mean = (8.0 * MEAN + features[0, : t + 1].sum(axis=0)) / (8.0 + t + 1)
        np.testing.assert_allclose(out[t], (features[0, t] - mean) / STD, rtol=1e-5, atol=1e-5)


def test_without_running_mean_the_training_mean_is_used() -> None:
    features = RNG.normal(3.0, 4.0, (1, 12, N_CEPSTRUM)).astype(np.float32)
    np.testing.assert_allclose(normalize(0.0, features, [12])[0], (features[0] - MEAN) / STD)


def test_a_channel_offset_fades_from_the_running_mean_normalised_frames() -> None:
    """A constant cepstral offset (a microphone, a voice's average spectrum): the training
    mean removes none of it, the running mean all but N / (N + t + 1) of it at frame t."""
    features = RNG.normal(0.0, 4.0, (1, 100, N_CEPSTRUM)).astype(np.float32)
    offset = RNG.normal(0.0, 3.0, N_CEPSTRUM).astype(np.float32)
    shifted = features + offset
    global_shift = normalize(0.0, shifted, [100]) - normalize(0.0, features, [100])
    running_shift = normalize(8.0, shifted, [100]) - normalize(8.0, features, [100])
    np.testing.assert_allclose(global_shift[0, -1], offset / STD, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        running_shift[0, -1], offset / STD * 8.0 / 108.0, rtol=1e-3, atol=1e-5
    )


def test_padding_is_zero_and_does_not_enter_the_mean() -> None:
    """A padded batch row equals the utterance alone; frames past its length are zero."""
    short = RNG.normal(3.0, 4.0, (9, N_CEPSTRUM)).astype(np.float32)
    batch = np.stack([np.pad(short, [(0, 11), (0, 0)], constant_values=7.0), RNG.normal(
        0.0, 4.0, (20, N_CEPSTRUM)).astype(np.float32)])  # fmt: skip
    out = normalize(4.0, batch, [9, 20])
    np.testing.assert_allclose(out[0, :9], normalize(4.0, short[None], [9])[0], atol=1e-6)
    assert not out[0, 9:].any()


def test_chunks_carrying_sum_and_count_equal_the_whole_utterance() -> None:
    layer = FeatureNormalization(N_CEPSTRUM, 5.0)
    layer.build(None)
    layer.set_statistics(MEAN, STD)
    features = RNG.normal(3.0, 4.0, (1, 23, N_CEPSTRUM)).astype(np.float32)
    whole = normalize(5.0, features, [23])
    frame_sum, count, parts = tf.zeros((1, N_CEPSTRUM)), tf.zeros((1,)), []
    for start in range(0, 23, 4):
        chunk = features[:, start : start + 4]
        out, frame_sum, count = layer(
            tf.constant(chunk), tf.constant([chunk.shape[1]]), frame_sum, count
        )
        parts.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-5, atol=1e-5)
    assert float(count[0]) == 23.0


def test_onnx_graph_computes_the_running_mean_as_keras_does() -> None:
    config = ModelConfig(Alphabet.default().num_classes, n_hidden=32, running_mean_frames=6.0)
    model = random_model(config, seed=4)
    proto, _ = convert_to_onnx(model)
    utterances = [RNG.normal(0.0, 5.0, (n, N_CEPSTRUM)).astype(np.float32) for n in (7, 40)]
    assert check_parity(model, proto.SerializeToString(), utterances) <= 1e-4


def test_running_mean_frames_is_checked_and_reaches_the_model() -> None:
    assert TrainConfig(running_mean_frames=50).model(29).running_mean_frames == 50
    with pytest.raises(ConfigError, match=r"running_mean_frames -1\.0 must be >= 0"):
        TrainConfig(running_mean_frames=-1.0)
