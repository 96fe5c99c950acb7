"""Tests for deepspeech/data/spec_augment.py: SpecAugment masks and warp on MFCC frames."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepspeech.data.augment_spec import parse_augmentation, parse_augmentations
from deepspeech.data.spec_augment import (
    apply_feature_augmentations,
    augment_features,
    random_time_warp,
    warp_time,
)

FRAMES, NUMCEP, LENGTH = 60, 26, 50  # rows LENGTH..FRAMES-1 are padding


def ones() -> tf.Tensor:
    return tf.ones((FRAMES, NUMCEP), tf.float32)


def ramp() -> tf.Tensor:
    """Frame t holds t + 1 in every coefficient: a warp shows as where each value moved."""
    return tf.tile(tf.range(1, FRAMES + 1, dtype=tf.float32)[:, tf.newaxis], [1, NUMCEP])


def augment(spec: str, seed: int, features: tf.Tensor | None = None) -> np.ndarray:
    return apply_feature_augmentations(
        ones() if features is None else features,
        parse_augmentations([spec]),
        tf.constant([seed, 0], tf.int64),
        length=LENGTH,
    ).numpy()


def zeros(out: np.ndarray) -> np.ndarray:
    return out == 0.0


@pytest.mark.parametrize("size", [1, 3, 7])
def test_a_frequency_mask_zeroes_the_asked_number_of_coefficients(size: int) -> None:
    for seed in range(10):
        out = augment(f"freq_mask[n=1,size={size}]", seed)
        columns = np.flatnonzero(zeros(out).any(axis=0))
        assert len(columns) == size and np.all(np.diff(columns) == 1)  # one band
        assert zeros(out[:LENGTH, columns]).all()
        assert not zeros(out[LENGTH:]).any()  # padding untouched
        assert (out[:, np.setdiff1d(np.arange(NUMCEP), columns)] == 1.0).all()


@pytest.mark.parametrize("size", [1, 4, 12])
def test_a_time_mask_zeroes_the_asked_number_of_frames_within_the_utterance(size: int) -> None:
    for seed in range(10):
        out = augment(f"time_mask[n=1,size={size}]", seed)
        rows = np.flatnonzero(zeros(out).all(axis=1))
        assert len(rows) == size and np.all(np.diff(rows) == 1)
        assert rows[-1] < LENGTH
        assert zeros(out).sum() == size * NUMCEP


def test_several_masks_stay_within_their_counts_and_sizes() -> None:
    masked_rows = set()
    for seed in range(20):
        out = augment("time_mask[n=2:3,size=2:5]", seed)
        rows = np.flatnonzero(zeros(out).all(axis=1))
        assert 2 <= len(rows) <= 15  # masks may overlap, as in SpecAugment
        masked_rows.add(len(rows))
        columns = np.flatnonzero(zeros(augment("freq_mask[n=2,size=1:2]", seed)).any(axis=0))
        assert 1 <= len(columns) <= 4
    assert len(masked_rows) > 3


def test_a_mask_longer_than_the_utterance_is_cut_to_it() -> None:
    out = augment("time_mask[n=1,size=80]", 0)
    assert zeros(out[:LENGTH]).all() and not zeros(out[LENGTH:]).any()


def test_zero_masks_change_nothing() -> None:
    assert (augment("time_mask[n=0]", 0) == 1.0).all()
    assert (augment("freq_mask[size=0]", 0) == 1.0).all()


def test_the_length_defaults_to_every_frame() -> None:
    features = ones()
    out = apply_feature_augmentations(
        features, parse_augmentations(["time_mask[n=1,size=80]"]), tf.constant([0, 0])
    )
    assert zeros(out.numpy()).all()


def test_warp_moves_the_centre_and_keeps_the_ends_and_padding() -> None:
    features = ramp()
    out = warp_time(features, LENGTH, center=20, shift=6).numpy()
    assert out.shape == (FRAMES, NUMCEP)
    column = out[:, 0]
    assert column[26] == pytest.approx(21.0)  # frame 20 (value 21) now sits at 26
    assert column[0] == 1.0 and column[LENGTH - 1] == LENGTH
    assert np.array_equal(column[LENGTH:], np.arange(LENGTH + 1, FRAMES + 1))
    assert np.all(np.diff(column[:LENGTH]) > 0)  # order kept, linear on either side
    assert np.allclose(np.diff(column[:27]), 20 / 26)
    assert np.array_equal(warp_time(features, LENGTH, 20, 0).numpy(), features.numpy())


def test_random_warp_shifts_within_w_and_skips_short_utterances() -> None:
    features = ramp()
    shifts = set()
    for seed in range(30):
        out = random_time_warp(features, LENGTH, 4, tf.constant([seed, 1])).numpy()[:, 0]
        # Where a frame's value moved: value v = t + 1 sits at position p.
        moved = np.interp(np.arange(1, LENGTH + 1), out[:LENGTH], np.arange(LENGTH))
        shift = moved - np.arange(LENGTH)
        assert np.max(np.abs(shift)) <= 4 + 1e-4
        shifts.add(round(float(shift[np.argmax(np.abs(shift))])))
        assert np.array_equal(out[LENGTH:], np.arange(LENGTH + 1, FRAMES + 1))
    assert len(shifts) >= 5
    short = random_time_warp(features, 10, 4, tf.constant([0, 1])).numpy()
    assert np.array_equal(short, features.numpy())


ALL = ["time_warp[p=0.9,w=5]", "freq_mask[p=0.9,n=1:2]", "time_mask[p=0.9]"]


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    augmentations = parse_augmentations(ALL)
    features = ramp()

    def run(seed: list[int]) -> np.ndarray:
        return apply_feature_augmentations(features, augmentations, tf.constant(seed), 45).numpy()

    assert np.array_equal(run([3, 7]), run([3, 7]))
    outputs = {run([3, s]).tobytes() for s in range(8)} | {run([4, 7]).tobytes()}
    assert len(outputs) == 9


def test_probability_decides_how_often_a_mask_applies() -> None:
    never = [augment("time_mask[p=0,n=1,size=5]", s) for s in range(10)]
    assert all((out == 1.0).all() for out in never)
    applied = sum(zeros(augment("time_mask[p=0.5,n=1,size=5]", s)).any() for s in range(100))
    assert 30 <= applied <= 70  # 50 expected; standard deviation 5


def test_waveform_augmentations_are_skipped() -> None:
    augmentations = parse_augmentations(["noise", "speed", "volume"])
    out = apply_feature_augmentations(ramp(), augmentations, tf.constant([0, 0]))
    assert np.array_equal(out.numpy(), ramp().numpy())
    with pytest.raises(ValueError, match="noise is a waveform augmentation"):
        augment_features(ramp(), parse_augmentation("noise"), tf.constant([0, 0]), LENGTH)


def test_runs_inside_a_tf_data_map_with_the_same_result_as_eagerly() -> None:
    augmentations = parse_augmentations(ALL)
    batch = tf.stack([ramp(), 2 * ramp(), 3 * ramp()])
    lengths = tf.constant([60, 45, 30])

    def seeded(index: tf.Tensor, features: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(11, tf.int64), index])
        return apply_feature_augmentations(features, augmentations, seed, length)

    dataset = tf.data.Dataset.from_tensor_slices((batch, lengths)).enumerate()
    dataset = dataset.map(lambda i, item: seeded(i, *item), num_parallel_calls=2)
    mapped = [out.numpy() for out in dataset]
    eager = [seeded(tf.constant(i, tf.int64), batch[i], lengths[i]).numpy() for i in range(3)]
    assert all(np.array_equal(m, e) for m, e in zip(mapped, eager, strict=True))
    assert not np.array_equal(mapped[0], batch[0].numpy())
