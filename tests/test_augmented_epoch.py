"""Augmentations wired into training: waveform draws per epoch (deepspeech/data/augmented_epoch.py)
and SpecAugment inside the tf.data pipeline; neither ever reaches the feature cache."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from deepspeech.data.augment_spec import parse_augmentations
from deepspeech.data.augmented_epoch import AugmentedEpochs, augment_epoch
from deepspeech.data.cache import FEATURE_DTYPE, open_cached_set, read_manifests
from deepspeech.data.pipeline import FeatureAugmentation, epoch_plan, make_dataset
from deepspeech.parallel import limit_blas_threads_idle_priority
from deepspeech.text import Alphabet

ALPHABET = Alphabet.default()
WAVEFORM = parse_augmentations(["noise[snr=5:10]", "speed[factor=0.8:1.2]"])
SPEC = parse_augmentations(["freq_mask[n=2,size=3]", "time_mask[n=2,size=4]"])


@pytest.fixture(scope="module")
def cached(tiny_corpus: Path, feature_cache: Path):
    return open_cached_set(
        read_manifests(tiny_corpus / "train.csv", ALPHABET), feature_cache, 26, ALPHABET
    )


def shard_bytes(cached, k: int) -> bytes:
    return cached.shards[k].feature_file.read_bytes()


def augmented(cached, folder: Path, epoch: int, shards=(0, 2)):
    return augment_epoch(
        cached, list(shards), WAVEFORM, ALPHABET, seed=4, epoch=epoch, stride=2, folder=folder,
        workers=1,
    )  # fmt: skip


def test_waveform_draws_are_new_each_epoch_and_never_cached(cached, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in cached.shards[0].feature_file.parent.iterdir()}
    first = augmented(cached, tmp_path / "a", epoch=0)
    again = augmented(cached, tmp_path / "b", epoch=0)
    later = augmented(cached, tmp_path / "c", epoch=1)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the cache is untouched
    assert shard_bytes(first, 0) == shard_bytes(again, 0)  # deterministic per (seed, epoch)
    assert shard_bytes(first, 0) != shard_bytes(later, 0)  # a new draw every epoch
    assert shard_bytes(first, 0) != shard_bytes(cached, 0)  # and not the clean features
    assert first.shards[1] is cached.shards[1]  # shards this worker does not own stay as they are


def augmented_epochs(
    cached, folder: Path, *, shards, epochs: int
) -> tuple[AugmentedEpochs, list[str]]:
    """The object, and the progress bars it has shown (a list that grows)."""
    shown: list[str] = []

    @contextmanager
    def progress(description: str, total: int | None):
        shown.append(description)
        yield lambda *args: None

    made = AugmentedEpochs(
        cached, list(shards), WAVEFORM, ALPHABET, seed=4, stride=2, epochs=epochs,
        folder=folder, progress=progress, workers=1,
    )  # fmt: skip
    return made, shown


def test_each_epoch_is_prepared_while_the_one_before_trains(cached, tmp_path: Path) -> None:
    folder = tmp_path / "augmented"
    epochs, shown = augmented_epochs(cached, folder, shards=[0, 2], epochs=3)
    first = shard_bytes(epochs.epoch_set(0), 0)
    assert shown == ["augment epoch 1"]  # the first epoch has nothing to overlap with
    second = shard_bytes(epochs.epoch_set(1), 0)
    assert shown == ["augment epoch 1"]  # epoch 2's was ready: prepared in the background
    assert not epochs.epoch_folder(0).exists()  # epoch 1 has been read: its copy is gone
    epochs.epoch_set(2)
    assert not epochs.epoch_folder(3).exists()  # nothing prepared past the last epoch
    # The same draws as featurized on the spot: when a set is prepared changes nothing.
    assert first == shard_bytes(augmented(cached, tmp_path / "a", epoch=0), 0)
    assert second == shard_bytes(augmented(cached, tmp_path / "b", epoch=1), 0)
    epochs.close()
    assert not folder.exists()


def test_ahead_of_time_the_feature_processes_run_at_idle_priority(cached, tmp_path: Path) -> None:
    """What is prepared while an epoch trains takes only the CPU training leaves idle, and
    makes the same files as featurizing on the spot."""
    with ProcessPoolExecutor(
        1, mp_context=get_context("spawn"), initializer=limit_blas_threads_idle_priority
    ) as pool:
        assert pool.submit(os.nice, 0).result() == 19
    background = augment_epoch(
        cached, [0, 2], WAVEFORM, ALPHABET, seed=4, epoch=1, stride=2, folder=tmp_path / "bg",
        workers=2, background=True,
    )  # fmt: skip
    spot = augmented(cached, tmp_path / "spot", epoch=1)
    assert shard_bytes(background, 0) == shard_bytes(spot, 0)
    assert shard_bytes(background, 2) == shard_bytes(spot, 2)


def test_a_resumed_or_stopped_run_gets_the_right_epoch_and_leaves_nothing(
    cached, tmp_path: Path
) -> None:
    folder = tmp_path / "augmented"
    epochs, _ = augmented_epochs(cached, folder, shards=[0], epochs=5)
    resumed = shard_bytes(epochs.epoch_set(3), 0)  # a run resumed in its 4th epoch
    assert resumed == shard_bytes(augmented(cached, tmp_path / "a", epoch=3, shards=[0]), 0)
    epochs.close()  # stopped early: epoch 5's set was being prepared
    assert not folder.exists()


def test_augmented_epoch_keeps_every_utterance_trainable(cached, tmp_path: Path) -> None:
    result = augmented(cached, tmp_path / "a", epoch=3, shards=range(len(cached.shards)))
    assert (-(-result.frames // 2) >= result.min_frames).all()  # a fast speed never breaks CTC
    plan = epoch_plan(cached, batch_size=8, replicas=1, stride=2, seed=4, epoch=3)
    batches = list(make_dataset(result, plan, stride=2))
    assert len(batches) == plan.steps
    frames = np.fromfile(result.shards[0].feature_file, FEATURE_DTYPE)
    assert np.isfinite(frames).all()


def test_spec_augment_masks_in_the_pipeline_deterministically(cached) -> None:
    plan = epoch_plan(cached, batch_size=8, replicas=1, stride=2, seed=4, epoch=0).take(2)
    mean, std = cached.normalization()

    def batches(epoch: int | None):
        augmentation = None if epoch is None else FeatureAugmentation(SPEC, mean, std, 4, epoch)
        return [b for b in make_dataset(cached, plan, 2, augmentation)]

    clean, first, again, later = batches(None), batches(0), batches(0), batches(1)
    for c, a, b, d in zip(clean, first, again, later, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], d[0])
        lengths = c[1].numpy()
        for row, n in enumerate(lengths):
            masked = np.isclose(a[0][row, :n], mean, atol=1e-4)  # a masked value is the mean
            assert masked.any() and not np.allclose(a[0][row, :n], c[0][row, :n])
            assert not np.any(a[0][row, n:]), "padding must stay zero"
