"""Feature cache -> tf.data batches: length-bucketed, shuffled per epoch from the seed, per worker.

Which utterances form which batch is planned in NumPy from the cache's index (frame counts
only, no features), as a pure function of (seed, epoch, worker): a resumed epoch skips exactly
the steps it already trained, and every worker can compute every other worker's plan, so all
agree on the number of steps without talking. tf.data then executes the plan natively (no
Python generator): it reads a *window* of shards at a time (about WINDOW_SECONDS of audio,
some 10 MB of MFCC), and cuts that window's batches by gathering frames, so memory holds one window,
whatever the size of the corpus.

An epoch: worker w of W owns the shards k with k % W == w (it reads only those); its shards
are shuffled into windows; inside a window utterances are sorted by length (random ties) and
cut into steps of batch x replicas utterances, whose order is shuffled. The remainder of each
window is left for that epoch (a new shuffle changes which).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from deepspeech.data.augment_spec import Augmentation
from deepspeech.data.cache import CachedSet
from deepspeech.data.spec_augment import apply_feature_augmentations

logger = logging.getLogger(__name__)

EPOCH_SEEDS = 100_000  # SpecAugment's stateless seed is (seed * EPOCH_SEEDS + epoch, utterance)
WINDOW_SECONDS = 1800.0  # audio read together and bucketed by length: the memory bound
EVAL_BATCH_SIZE = 32
NO_UTTERANCE = -1  # fills the short last evaluation batch; dropped when the batch is cut


@dataclass(frozen=True)
class Window:
    """Shards read together, and the steps cut from them: (n_steps, replicas, batch) ids."""

    shards: np.ndarray  # (k,) shard numbers, in read order
    steps: np.ndarray  # (n_steps, replicas, batch) utterance ids; NO_UTTERANCE pads


@dataclass(frozen=True)
class Plan:
    """The batches one input pipeline delivers, window by window."""

    windows: tuple[Window, ...]
    replicas: int
    batch_size: int  # per replica

    @property
    def steps(self) -> int:
        return sum(len(w.steps) for w in self.windows)

    def step_ids(self) -> np.ndarray:
        """(steps, replicas, batch) utterance ids, in the order they are delivered."""
        empty = np.zeros((0, self.replicas, self.batch_size), np.int64)
        return np.concatenate([empty, *(w.steps for w in self.windows)])

    def skip(self, n: int) -> Plan:
        """The plan without its first `n` steps (a resumed epoch)."""
        return self._cut(n, self.steps)

    def take(self, n: int) -> Plan:
        """The plan's first `n` steps (all workers must run the same number)."""
        return self._cut(0, n)

    def _cut(self, start: int, stop: int) -> Plan:
        windows, position = [], 0
        for window in self.windows:
            lo, hi = max(start - position, 0), min(stop - position, len(window.steps))
            if lo < hi:
                windows.append(Window(window.shards, window.steps[lo:hi]))
            position += len(window.steps)
        return Plan(tuple(windows), self.replicas, self.batch_size)


@dataclass(frozen=True)
class FeatureAugmentation:
    """SpecAugment for one epoch's training batches.

    Masks write zeros, which mean "no information" only for normalised features: batches are
    normalised with the model's own statistics, augmented, and mapped back to MFCC.
    """

    augmentations: tuple[Augmentation, ...]  # the feature-domain ones are applied
    mean: np.ndarray  # (numcep,) the model's normalisation
    std: np.ndarray  # (numcep,)
    seed: int
    epoch: int

    def apply(self, features: tf.Tensor, lengths: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        """(B, T, numcep) MFCC -> the same, each utterance masked/warped by its own draw."""
        normalised = (features - self.mean) / self.std
        epoch_seed = tf.constant(self.seed * EPOCH_SEEDS + self.epoch, tf.int64)

        def one(row):
            frames, length, utterance = row
            seed = tf.stack([epoch_seed, utterance])
            return apply_feature_augmentations(frames, self.augmentations, seed, length)

        augmented = tf.map_fn(one, (normalised, lengths, ids), fn_output_signature=tf.float32)
        valid = tf.sequence_mask(lengths, tf.shape(features)[1], tf.float32)[..., None]
        return (augmented * self.std + self.mean) * valid


def feasible(cached: CachedSet, stride: int) -> np.ndarray:
    """(n,) bool: utterances with enough frames at `stride` for CTC to align their labels."""
    return -(-cached.frames // stride) >= cached.min_frames


def _window_shards(cached: CachedSet, shards: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of `shards` holding about WINDOW_SECONDS of audio each."""
    if not len(shards):  # a worker of a manifest with fewer shards than workers
        return []
    seconds = np.array([cached.shards[k].seconds for k in shards])
    window_of = np.floor((np.cumsum(seconds) - seconds) / WINDOW_SECONDS).astype(np.int64)
    starts = np.flatnonzero(np.diff(window_of, prepend=-1))
    return np.split(shards, starts[1:])


def _shard_ids(cached: CachedSet, shards: np.ndarray, usable: np.ndarray) -> np.ndarray:
    ids = np.concatenate(
        [
            np.arange(cached.shards[k].first, cached.shards[k].first + len(cached.shards[k].frames))
            for k in shards
        ]
    )
    return ids[usable[ids]]


def epoch_plan(
    cached: CachedSet,
    *,
    batch_size: int,
    replicas: int,
    stride: int,
    seed: int,
    epoch: int,
    worker: int = 0,
    num_workers: int = 1,
) -> Plan:
    """One worker's training steps for `epoch` (see the module docstring for the recipe)."""
    rng = np.random.default_rng([seed, epoch, worker])
    usable = feasible(cached, stride)
    frames = cached.frames
    owned = np.arange(worker, len(cached.shards), num_workers)
    step_size = batch_size * replicas
    windows = []
    for shards in _window_shards(cached, rng.permutation(owned)):
        ids = _shard_ids(cached, shards, usable)
        ids = ids[np.lexsort((rng.random(ids.size), frames[ids]))]
        n_steps = ids.size // step_size
        steps = ids[: n_steps * step_size].reshape(n_steps, replicas, batch_size)
        if n_steps:
            windows.append(Window(shards, steps[rng.permutation(n_steps)]))
    return Plan(tuple(windows), replicas, batch_size)


def training_plans(
    cached: CachedSet,
    *,
    batch_size: int,
    replicas_per_worker: int,
    stride: int,
    seed: int,
    epoch: int,
    num_workers: int,
) -> list[Plan]:
    """Every worker's plan for `epoch`, cut to the same number of steps (the fewest)."""
    plans = [
        epoch_plan(
            cached,
            batch_size=batch_size,
            replicas=replicas_per_worker,
            stride=stride,
            seed=seed,
            epoch=epoch,
            worker=w,
            num_workers=num_workers,
        )
        for w in range(num_workers)
    ]
    steps = min(p.steps for p in plans)
    return [p.take(steps) for p in plans]


def evaluation_plan(cached: CachedSet, stride: int, batch_size: int = EVAL_BATCH_SIZE) -> Plan:
    """Every CTC-feasible utterance once, shards in order, length-sorted inside each window."""
    usable = feasible(cached, stride)
    frames = cached.frames
    windows = []
    for shards in _window_shards(cached, np.arange(len(cached.shards))):
        ids = _shard_ids(cached, shards, usable)
        ids = ids[np.argsort(frames[ids], kind="stable")]
        n_batches = -(-ids.size // batch_size)
        if not n_batches:
            continue
        padded = np.full(n_batches * batch_size, NO_UTTERANCE, np.int64)
        padded[: ids.size] = ids
        windows.append(Window(shards, padded.reshape(n_batches, 1, batch_size)))
    return Plan(tuple(windows), 1, batch_size)


def batch_signature(numcep: int) -> tuple[tf.TensorSpec, ...]:
    """What every batch holds: MFCC frames, their counts, labels, label counts, utterance ids."""
    return (
        tf.TensorSpec((None, None, numcep), tf.float32, name="features"),
        tf.TensorSpec((None,), tf.int32, name="feature_lengths"),
        tf.TensorSpec((None, None), tf.int32, name="labels"),
        tf.TensorSpec((None,), tf.int32, name="label_lengths"),
        tf.TensorSpec((None,), tf.int64, name="ids"),
    )


def _plan_tensors(cached: CachedSet, plan: Plan) -> tuple[tf.RaggedTensor, ...]:
    """Per window: feature files, label files, and per-replica batches of
    (frame offset, frames, label offset, label count, id) rows, offsets within the window."""
    frames, label_lengths = cached.frames, cached.label_lengths
    counts = cached.shard_counts
    shard_of = np.repeat(np.arange(len(counts)), counts)  # (n,) shard of each utterance
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def within_shard(lengths: np.ndarray) -> np.ndarray:
        ends = np.cumsum(lengths)
        return ends - lengths - np.concatenate([[0], ends])[firsts][shard_of]

    frame_in_shard, label_in_shard = within_shard(frames), within_shard(label_lengths)
    shard_frames = np.bincount(shard_of, frames, len(counts)).astype(np.int64)
    shard_labels = np.bincount(shard_of, label_lengths, len(counts)).astype(np.int64)
    feature_files, label_files, rows = [], [], []
    for window in plan.windows:
        frame_base = np.zeros(len(counts), np.int64)
        label_base = np.zeros(len(counts), np.int64)
        frame_base[window.shards] = (
            np.cumsum(shard_frames[window.shards]) - shard_frames[window.shards]
        )
        label_base[window.shards] = (
            np.cumsum(shard_labels[window.shards]) - shard_labels[window.shards]
        )
        feature_files += [str(cached.shards[k].feature_file) for k in window.shards]
        label_files += [str(cached.shards[k].label_file) for k in window.shards]
        ids = window.steps.reshape(-1, plan.batch_size)  # (steps * replicas, batch)
        safe = np.maximum(ids, 0)
        shard = shard_of[safe]
        rows.append(
            np.stack(
                [
                    frame_base[shard] + frame_in_shard[safe],
                    frames[safe],
                    label_base[shard] + label_in_shard[safe],
                    label_lengths[safe],
                    ids,
                ],
                axis=-1,
            )
        )
    n_files = [len(w.shards) for w in plan.windows]
    values = np.concatenate([np.zeros((0, plan.batch_size, 5), np.int64), *rows])
    return (
        tf.RaggedTensor.from_row_lengths(tf.constant(feature_files, tf.string), n_files),
        tf.RaggedTensor.from_row_lengths(tf.constant(label_files, tf.string), n_files),
        tf.RaggedTensor.from_row_lengths(values, [len(r) for r in rows]),
    )


def _read_concatenated(files: tf.Tensor) -> tf.Tensor:
    return tf.strings.reduce_join(tf.map_fn(tf.io.read_file, files, fn_output_signature=tf.string))


def make_dataset(
    cached: CachedSet,
    plan: Plan,
    stride: int,
    augmentation: FeatureAugmentation | None = None,
) -> tf.data.Dataset:
    """The plan's per-replica batches as a tf.data pipeline (elements: `batch_signature`)."""
    numcep = cached.numcep
    feature_files, label_files, rows = _plan_tensors(cached, plan)

    def cut_batch(window_frames, window_labels, batch_rows):
        batch_rows = tf.boolean_mask(batch_rows, batch_rows[:, 4] != NO_UTTERANCE)
        offsets, n_frames, label_offsets, label_lengths, ids = tf.unstack(batch_rows, axis=1)
        lengths = (n_frames + stride - 1) // stride  # frames kept at this stride
        t = tf.range(tf.reduce_max(lengths), dtype=tf.int64)
        valid = t[None, :] < lengths[:, None]  # (B, T)
        where = tf.where(valid, offsets[:, None] + t[None, :] * stride, 0)
        features = tf.cast(tf.gather(window_frames, where), tf.float32)  # (B, T, numcep)
        features *= tf.cast(valid, tf.float32)[..., None]
        if augmentation is not None:
            features = augmentation.apply(features, lengths, ids)
        j = tf.range(tf.reduce_max(label_lengths), dtype=tf.int64)
        label_valid = j[None, :] < label_lengths[:, None]
        label_where = tf.where(label_valid, label_offsets[:, None] + j[None, :], 0)
        labels = tf.where(label_valid, tf.gather(window_labels, label_where), 0)
        return (
            features,
            tf.cast(lengths, tf.int32),
            labels,
            tf.cast(label_lengths, tf.int32),
            ids,
        )

    def read_window(features_of, labels_of, window_rows):
        frames = tf.reshape(
            tf.io.decode_raw(_read_concatenated(features_of), tf.float16), (-1, numcep)
        )
        labels = tf.cast(tf.io.decode_raw(_read_concatenated(labels_of), tf.int16), tf.int32)
        return (frames, labels, window_rows)

    def window_batches(frames, labels, window_rows):
        # Each batch refers to its window's tensors (no copy), so the one parallel map below
        # cuts batches across window boundaries without stalling at each new window.
        return tf.data.Dataset.from_tensor_slices(window_rows).map(lambda r: (frames, labels, r))

    dataset = tf.data.Dataset.from_tensor_slices((feature_files, label_files, rows))
    return (
        dataset.map(read_window)
        .prefetch(1)  # the next window is read while this one's batches are cut
        .flat_map(window_batches)
        .map(cut_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    cached: CachedSet,
    plans: Sequence[Plan],
    stride: int,
    augmentation: FeatureAugmentation | None = None,
) -> tf.distribute.DistributedDataset:
    """Each input pipeline (one per worker) runs its own plan; each element is one global step.

    A pipeline's plan lists `replicas` consecutive per-replica batches per step, which
    tf.distribute hands to that worker's replicas in order.
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = make_dataset(cached, plans[context.input_pipeline_id], stride, augmentation)
        options = tf.data.Options()
        # Each pipeline reads only its own shards already: no further sharding by tf.data.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        # Without a GPU, no autotuning: its thread sleeps up to 60 s between runs, and a spent
        # iterator's destruction waits for it. The last epoch's is joined before training
        # returns, which kept make run idle for 18-21 s at its end. The pipeline is not
        # slower without it (0.6 ms an element either way, against a step of 90 ms); GPUs,
        # which want the fastest pipeline and train for hours, keep it.
        options.autotune.enabled = on_gpu
        return dataset.with_options(options)

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    # Fetching to the device prefetches onto each GPU; on CPUs the elements are already where
    # the replicas read them. Its per-device prefetch datasets take default options (autotuning
    # on), and on CPUs the last epoch's spent iterator then took 28-35 s to destroy in 2 of 7
    # short runs (0 of 3 without; benchmarks/notes/make_run.md).
    fetch = tf.distribute.InputOptions(experimental_fetch_to_device=on_gpu)
    return strategy.distribute_datasets_from_function(dataset_fn, options=fetch)
