"""The model's input normalisation (deepspeech/model/birnn.py `FeatureNormalization`): the
training set's statistics, or the utterance's causal running mean and deviation, in Keras and
in the ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from random_models import random_model

from deepspeech.audio import N_CEPSTRUM, FeatureConfig
from deepspeech.errors import ConfigError
from deepspeech.export.convert import convert_to_onnx, write_metadata
from deepspeech.export.parity import check_parity
from deepspeech.model.birnn import FeatureNormalization, RunningSums
from deepspeech.model.config import ModelConfig
from deepspeech.runtime.graph import ModelMetadata
from deepspeech.runtime.offline import OfflineModel
from deepspeech.text import Alphabet
from deepspeech.training.config import TrainConfig

RNG = np.random.default_rng(3)
MEAN = RNG.normal(0.0, 5.0, N_CEPSTRUM).astype(np.float32)
STD = RNG.uniform(2.0, 10.0, N_CEPSTRUM).astype(np.float32)


def layer_with(frames: float, variance: bool = False) -> FeatureNormalization:
    layer = FeatureNormalization(N_CEPSTRUM, frames, variance)
    layer.build(None)
    layer.set_statistics(MEAN, STD)
    return layer


def normalize(
    frames: float, features: np.ndarray, lengths: list[int], variance: bool = False
) -> np.ndarray:
    start = RunningSums.zeros(len(features), N_CEPSTRUM)
    normalised, _ = layer_with(frames, variance)(tf.constant(features), tf.constant(lengths), start)
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


@pytest.mark.parametrize("variance", [False, True])
def test_chunks_carrying_the_sums_equal_the_whole_utterance(variance: bool) -> None:
    layer = layer_with(5.0, variance)
    features = RNG.normal(3.0, 4.0, (1, 23, N_CEPSTRUM)).astype(np.float32)
    whole = normalize(5.0, features, [23], variance)
    sums, parts = RunningSums.zeros(1, N_CEPSTRUM), []
    for start in range(0, 23, 4):
        chunk = features[:, start : start + 4]
        out, sums = layer(tf.constant(chunk), tf.constant([chunk.shape[1]]), sums)
        parts.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-5, atol=1e-5)
    assert float(sums.count[0]) == 23.0
    np.testing.assert_allclose(sums.squares[0], np.square(features[0]).sum(axis=0), rtol=1e-5)


def test_running_variance_is_the_prior_weighted_variance_of_the_frames_so_far() -> None:
    features = RNG.normal(3.0, 4.0, (1, 30, N_CEPSTRUM)).astype(np.float32)
    out = normalize(8.0, features, [30], variance=True)[0]
    for t in (0, 1, 7, 29):
        seen = features[0, : t + 1].astype(np.float64)
        mean = (8.0 * MEAN + seen.sum(axis=0)) / (8.0 + t + 1)
        mean_square = (8.0 * (STD**2 + MEAN**2) + np.square(seen).sum(axis=0)) / (8.0 + t + 1)
        std = np.sqrt(np.maximum(mean_square - mean**2, 0.01 * STD**2))
        np.testing.assert_allclose(out[t], (features[0, t] - mean) / std, rtol=1e-4, atol=1e-4)


def test_a_voice_twice_as_lively_normalises_like_the_original() -> None:
    """Frames moving twice as far about their mean: the running deviation takes the scale
    out, all but what the prior still holds; the training deviation keeps it."""
    features = RNG.normal(MEAN, 4.0, (1, 400, N_CEPSTRUM)).astype(np.float32)
    lively = MEAN + 2.0 * (features - MEAN)
    original = normalize(8.0, features, [400], variance=True)[0, -100:]
    scaled = normalize(8.0, lively, [400], variance=True)[0, -100:]
    assert np.abs(scaled / original - 1.0).mean() < 0.05
    kept = normalize(8.0, lively, [400])[0, -100:] / normalize(8.0, features, [400])[0, -100:]
    assert np.abs(kept - 2.0).mean() < 0.1


def test_constant_frames_are_not_divided_by_a_vanishing_deviation() -> None:
    """Digital silence for a minute: the deviation stops at 1 % of the training variance."""
    silence = np.broadcast_to(MEAN - 3.0, (1, 3000, N_CEPSTRUM)).astype(np.float32)
    out = normalize(8.0, silence, [3000], variance=True)[0]
    assert np.isfinite(out).all() and np.abs(out).max() <= 30.0


@pytest.mark.parametrize("variance", [False, True])
def test_onnx_graph_computes_the_running_statistics_as_keras_does(variance: bool) -> None:
    config = ModelConfig(
        Alphabet.default().num_classes,
        n_hidden=32,
        running_mean_frames=6.0,
        running_variance=variance,
    )
    model = random_model(config, seed=4)
    proto, _ = convert_to_onnx(model)
    write_metadata(proto, ModelMetadata(Alphabet.default(), FeatureConfig(), n_hidden=32))
    exported = OfflineModel.load(proto.SerializeToString())
    utterances = [RNG.normal(0.0, 5.0, (n, N_CEPSTRUM)).astype(np.float32) for n in (7, 40)]
    assert check_parity(model, exported, utterances) <= 1e-4


def test_running_statistics_options_are_checked_and_reach_the_model() -> None:
    model = TrainConfig(running_mean_frames=50, running_variance=True).model(29)
    assert (model.running_mean_frames, model.running_variance) == (50, True)
    with pytest.raises(ConfigError, match=r"running_mean_frames -1\.0 must be >= 0"):
        TrainConfig(running_mean_frames=-1.0)
    with pytest.raises(ConfigError, match="running_variance needs running_mean_frames > 0"):
        TrainConfig(running_variance=True)
