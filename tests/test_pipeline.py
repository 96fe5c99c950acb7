"""Tests for deepspeech/data/pipeline.py: plans from the cache index, tf.data batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import audio_to_features, load_wav
from deepspeech.data.cache import open_cached_set, read_manifests
from deepspeech.data.pipeline import (
    NO_UTTERANCE,
    epoch_plan,
    evaluation_plan,
    feasible,
    make_dataset,
    training_plans,
)
from deepspeech.text import Alphabet

ALPHABET = Alphabet.default()


@pytest.fixture(scope="module")
def cached(tiny_corpus: Path, feature_cache: Path):
    return open_cached_set(
        read_manifests(tiny_corpus / "train.csv", ALPHABET), feature_cache, 26, ALPHABET
    )


def owner_of(cached, ids: np.ndarray, num_workers: int) -> set[int]:
    firsts = np.array([s.first for s in cached.shards])
    return {int(k) % num_workers for k in np.searchsorted(firsts, ids, side="right") - 1}


def test_an_epoch_uses_each_feasible_utterance_at_most_once(cached) -> None:
    plan = epoch_plan(cached, batch_size=8, replicas=1, stride=2, seed=1, epoch=0)
    ids = plan.step_ids().reshape(-1)
    assert len(set(ids.tolist())) == ids.size
    assert feasible(cached, 2)[ids].all()
    assert ids.size > 0.8 * len(cached)  # only each window's remainder is left out


def test_batches_are_length_bucketed_and_shuffled(cached) -> None:
    plan = epoch_plan(cached, batch_size=8, replicas=1, stride=1, seed=1, epoch=0)
    frames = cached.frames[plan.step_ids()[:, 0]]  # (steps, 8)
    spread = (frames.max(axis=1) - frames.min(axis=1)).mean()
    assert spread < 0.25 * (cached.frames.max() - cached.frames.min())
    assert not np.all(np.diff(frames.min(axis=1)) >= 0), "batch order should not follow length"


def test_plans_are_a_function_of_seed_and_epoch(cached) -> None:
    def ids(seed: int, epoch: int) -> list:
        plan = epoch_plan(cached, batch_size=8, replicas=1, stride=2, seed=seed, epoch=epoch)
        return plan.step_ids().tolist()

    assert ids(1, 0) == ids(1, 0)
    assert ids(1, 0) != ids(1, 1) and ids(1, 0) != ids(2, 0)


def test_replicas_split_the_same_global_batches(cached) -> None:
    """2 devices x 4 see exactly the global batches 1 device x 8 sees."""
    one = epoch_plan(cached, batch_size=8, replicas=1, stride=2, seed=1, epoch=3)
    two = epoch_plan(cached, batch_size=4, replicas=2, stride=2, seed=1, epoch=3)
    np.testing.assert_array_equal(
        one.step_ids().reshape(one.steps, -1), two.step_ids().reshape(two.steps, -1)
    )


def test_workers_own_disjoint_shards_and_run_as_many_steps(cached) -> None:
    plans = training_plans(
        cached, batch_size=4, replicas_per_worker=1, stride=2, seed=1, epoch=0, num_workers=2
    )
    assert plans[0].steps == plans[1].steps > 0
    shares = [set(p.step_ids().reshape(-1).tolist()) for p in plans]
    assert not shares[0] & shares[1]
    for worker, plan in enumerate(plans):
        assert owner_of(cached, plan.step_ids().reshape(-1), 2) == {worker}
        assert {int(k) % 2 for w in plan.windows for k in w.shards} == {worker}


def test_a_resumed_epoch_delivers_exactly_the_remaining_steps(cached) -> None:
    plan = epoch_plan(cached, batch_size=4, replicas=1, stride=2, seed=5, epoch=2)
    for k in (0, 1, plan.steps // 2, plan.steps - 1, plan.steps):
        rest = plan.skip(k)
        assert rest.steps == plan.steps - k
        np.testing.assert_array_equal(rest.step_ids(), plan.step_ids()[k:].reshape(-1, 1, 4))
    delivered = [b[4].numpy() for b in make_dataset(cached, plan.skip(3), stride=2)]
    np.testing.assert_array_equal(np.stack(delivered), plan.step_ids()[3:, 0])


def test_batches_hold_the_strided_features_and_labels_zero_padded(cached) -> None:
    plan = epoch_plan(cached, batch_size=4, replicas=1, stride=2, seed=1, epoch=0).take(3)
    for features, lengths, labels, label_lengths, ids in make_dataset(cached, plan, stride=2):
        assert features.shape[0] == 4 and features.shape[2] == 26
        for row, i in enumerate(ids.numpy()):
            utterance = cached.utterances[i]
            expected = audio_to_features(load_wav(utterance.wav_path), stride=2)
            n = int(lengths[row])
            assert n == len(expected)
            np.testing.assert_allclose(features[row, :n], expected, rtol=2e-3, atol=2e-2)
            assert not np.any(features[row, n:])
            encoded = ALPHABET.encode(utterance.transcript)
            assert int(label_lengths[row]) == encoded.size
            np.testing.assert_array_equal(labels[row, : encoded.size], encoded)
            assert not np.any(labels[row, encoded.size :])


def test_evaluation_covers_every_feasible_utterance_once(cached) -> None:
    plan = evaluation_plan(cached, stride=2, batch_size=16)
    ids = plan.step_ids().reshape(-1)
    ids = ids[ids != NO_UTTERANCE]
    assert sorted(ids.tolist()) == np.flatnonzero(feasible(cached, 2)).tolist()
    delivered = np.concatenate([b[4].numpy() for b in make_dataset(cached, plan, stride=2)])
    assert sorted(delivered.tolist()) == sorted(ids.tolist())


def test_more_workers_than_shards_plan_no_steps_instead_of_failing(cached) -> None:
    """A worker that owns no shard has nothing to read; every worker then runs 0 steps, which
    `train` reports as a batch that does not fill (rather than an error from NumPy)."""
    workers = len(cached.shards) + 1
    plans = training_plans(
        cached, batch_size=1, replicas_per_worker=1, stride=2, seed=1, epoch=0, num_workers=workers
    )
    assert [p.steps for p in plans] == [0] * workers
