"""SpecAugment (Park et al. 2019) on one utterance's MFCC frames, as TensorFlow ops.

Feature-domain augmentations run in the tf.data pipeline on cached features (`Dataset.map`),
so the cache stays clean and every epoch draws new masks. Everything is a pure function of a
stateless seed, a (2,) int tensor: the same (seed, utterance) gives the same masks on any
worker, and a re-run repeats them. Padding frames (index >= `length`) are never touched, so
padded and unpadded features augment alike.

Masks write zeros: meant for features normalised to mean 0 (where zero is "no information"),
as SpecAugment masks its normalised log-mel input.

Shapes: features (T, numcep) float32; `length` a scalar, the utterance's real frame count.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from deepspeech.data.augment_spec import Augmentation, FreqMask, IntRange, TimeMask, TimeWarp


def apply_feature_augmentations(
    features: tf.Tensor,
    augmentations: Sequence[Augmentation],
    seed: tf.Tensor,
    length: tf.Tensor | int | None = None,
) -> tf.Tensor:
    """Apply the feature-domain augmentations in order, each with its probability p.

    features (T, numcep) float32 -> (T, numcep) float32; waveform augmentations in the list
    are skipped (`augment.apply_waveform_augmentations` runs them). `seed` is a (2,) int32 or
    int64 tensor, e.g. `tf.stack([seed * EPOCH_STRIDE + epoch, utterance_index])`; `length`
    the real frame count (default: all T frames).
    """
    features = tf.convert_to_tensor(features, tf.float32)
    frames = tf.shape(features)[0]
    length = frames if length is None else tf.minimum(tf.cast(length, tf.int32), frames)
    chosen = [a for a in augmentations if a.domain == "feature"]
    if not chosen:
        return features
    seeds = tf.random.experimental.stateless_split(seed, num=len(chosen))
    for index, augmentation in enumerate(chosen):
        apply_seed, draw_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[index]))
        apply = tf.random.stateless_uniform([], apply_seed) < augmentation.p
        augmented = augment_features(features, augmentation, draw_seed, length)
        features = tf.where(apply, augmented, features)
    return features


def augment_features(
    features: tf.Tensor, augmentation: Augmentation, seed: tf.Tensor, length: tf.Tensor
) -> tf.Tensor:
    """Apply one feature augmentation (always: p is the caller's), drawn from `seed`.

    features (T, numcep) float32 -> (T, numcep) float32.
    """
    if isinstance(augmentation, FreqMask):
        numcep = tf.shape(features)[1]
        masked = random_mask(numcep, numcep, augmentation.n, augmentation.size, seed)
        real = tf.range(tf.shape(features)[0]) < length
        masked = real[:, tf.newaxis] & masked[tf.newaxis, :]
        return tf.where(masked, tf.zeros_like(features), features)
    if isinstance(augmentation, TimeMask):
        masked = random_mask(tf.shape(features)[0], length, augmentation.n, augmentation.size, seed)
        return tf.where(masked[:, tf.newaxis], tf.zeros_like(features), features)
    if isinstance(augmentation, TimeWarp):
        return random_time_warp(features, length, augmentation.w, seed)
    raise ValueError(f"{augmentation.name} is a {augmentation.domain} augmentation")


def random_mask(
    size: tf.Tensor, extent: tf.Tensor, count: IntRange, width: IntRange, seed: tf.Tensor
) -> tf.Tensor:
    """A random set of masked bands: -> (size,) bool, True where masked.

    Draws a number of bands in `count` (LO:HI), each of a width in `width` (cut to `extent`)
    starting uniformly so that it ends within [0, extent); bands may overlap, as in SpecAugment.
    Indices at or past `extent` are never masked.
    """
    count_seed, width_seed, start_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    extent = tf.cast(extent, tf.int32)
    n = _uniform_ints([], count_seed, *count)
    widths = tf.minimum(_uniform_ints([count[1]], width_seed, *width), extent)
    room = tf.cast(extent - widths + 1, tf.float32)
    starts = tf.cast(tf.random.stateless_uniform([count[1]], start_seed) * room, tf.int32)
    starts = tf.minimum(starts, extent - widths)
    positions = tf.range(size)[tf.newaxis, :]
    inside = (positions >= starts[:, tf.newaxis]) & (positions < (starts + widths)[:, tf.newaxis])
    active = tf.range(count[1]) < n
    return tf.reduce_any(inside & active[:, tf.newaxis], axis=0)


def warp_time(
    features: tf.Tensor, length: tf.Tensor, center: tf.Tensor, shift: tf.Tensor
) -> tf.Tensor:
    """Move frame `center` to `center + shift`, stretching the frames on either side linearly.

    features (T, numcep) -> (T, numcep). Frames 0 and length-1 stay where they are, and so do
    padding frames; output frame j reads the input at a fractional position, linearly
    interpolated. Needs 0 < center, center + shift < length - 1.
    """
    frames = tf.shape(features)[0]
    j = tf.cast(tf.range(frames), tf.float32)
    last = tf.cast(length - 1, tf.float32)
    c = tf.cast(center, tf.float32)
    target = c + tf.cast(shift, tf.float32)
    left = j * c / tf.maximum(target, 1.0)
    right = c + (j - target) * (last - c) / tf.maximum(last - target, 1.0)
    source = tf.where(j < target, left, right)
    source = tf.clip_by_value(tf.where(j <= last, source, j), 0.0, tf.cast(frames - 1, tf.float32))
    below = tf.cast(tf.floor(source), tf.int32)
    above = tf.minimum(below + 1, frames - 1)
    fraction = (source - tf.floor(source))[:, tf.newaxis]
    return (1.0 - fraction) * tf.gather(features, below) + fraction * tf.gather(features, above)


def random_time_warp(features: tf.Tensor, length: tf.Tensor, w: int, seed: tf.Tensor) -> tf.Tensor:
    """SpecAugment's time warp: a frame in [w+1, length-2-w] moves by a shift in [-w, w].

    features (T, numcep) -> (T, numcep); utterances shorter than 2w + 3 frames are left as
    they are (there is no room to warp them).
    """
    center_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed))
    length = tf.cast(length, tf.int32)
    center = _uniform_ints([], center_seed, w + 1, tf.maximum(length - 2 - w, w + 1))
    shift = _uniform_ints([], shift_seed, -w, w)
    warped = warp_time(features, length, center, shift)
    return tf.where(length >= 2 * w + 3, warped, features)


def _uniform_ints(
    shape: list[int], seed: tf.Tensor, low: tf.Tensor | int, high: tf.Tensor | int
) -> tf.Tensor:
    """Whole numbers uniform in [low, high], both included: -> int32 of `shape`."""
    low = tf.cast(low, tf.int32)
    span = tf.cast(tf.cast(high, tf.int32) - low + 1, tf.float32)
    draws = tf.cast(tf.random.stateless_uniform(shape, seed) * span, tf.int32)
    return low + tf.minimum(draws, tf.cast(span, tf.int32) - 1)
