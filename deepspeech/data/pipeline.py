"""Batches -> tf.data input pipelines for tf.distribute (batching: `deepspeech.data.batching`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from deepspeech.data.batching import FeaturizedSet, pad_batch


def batch_signature(n_input: int) -> tuple[tf.TensorSpec, ...]:
    return (
        tf.TensorSpec((None, None, n_input), tf.float32, name="features"),
        tf.TensorSpec((None,), tf.int32, name="feature_lengths"),
        tf.TensorSpec((None, None), tf.int32, name="labels"),
        tf.TensorSpec((None,), tf.int32, name="label_lengths"),
    )


def replica_batches(
    data: FeaturizedSet,
    batches: Sequence[np.ndarray],
    *,
    pipeline_index: int,
    num_pipelines: int,
    replicas_per_pipeline: int,
    start: int = 0,
) -> Iterator[tuple[np.ndarray, ...]]:
    """This input pipeline's share of each global batch, split into per-replica batches.

    Worker w of W takes rows [w*B*R, (w+1)*B*R) of every global batch and yields them as R
    consecutive per-replica batches, which tf.distribute hands to its replicas in order.
    """
    for indices in batches[start:]:
        share = np.array_split(indices, num_pipelines)[pipeline_index]
        for part in np.array_split(share, replicas_per_pipeline):
            b = pad_batch(data, part)
            yield b.features, b.feature_lengths, b.labels, b.label_lengths


def distributed_dataset(
    strategy: tf.distribute.Strategy,
    data: FeaturizedSet,
    batches: Sequence[np.ndarray],
    start: int = 0,
) -> tf.distribute.DistributedDataset:
    """A distributed dataset over `batches[start:]`; each element is one global step."""
    n_input = data.features[0].shape[1]

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        replicas = context.num_replicas_in_sync // context.num_input_pipelines

        def generate() -> Iterator[tuple[np.ndarray, ...]]:
            yield from replica_batches(
                data,
                batches,
                pipeline_index=context.input_pipeline_id,
                num_pipelines=context.num_input_pipelines,
                replicas_per_pipeline=replicas,
                start=start,
            )

        dataset = tf.data.Dataset.from_generator(
            generate, output_signature=batch_signature(n_input)
        )
        options = tf.data.Options()
        # Each pipeline already yields only its own share: no further sharding by tf.data.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)
