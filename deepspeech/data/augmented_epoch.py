"""Waveform augmentation for one training epoch: a worker's shards featurized again from
augmented audio into a scratch folder, never into the feature cache.

DeepSpeech's feature cache silently froze augmentation after the first epoch (augmented
features were what it cached). Here the cache holds clean MFCC only; each epoch, every shard a
worker owns is read again, augmented with a draw seeded by (seed, epoch, utterance), featurized
in parallel processes and read by the same tf.data pipeline. The scratch folder is replaced
every epoch, so a resumed epoch rebuilds exactly the draws it had.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepspeech.audio import load_wav, n_feature_frames
from deepspeech.data.augment import apply_waveform_augmentations
from deepspeech.data.augment_spec import Augmentation
from deepspeech.data.cache import CachedSet, ShardTask, read_shard, run_shard_tasks
from deepspeech.text import Alphabet

BABBLE_POOL = 256  # training clips babble noise is mixed from (kept small: tasks are pickled)


@dataclass(frozen=True)
class WaveformAugmenter:
    """The per-utterance audio transform of one epoch (picklable for the feature processes)."""

    augmentations: tuple[Augmentation, ...]
    seed: int
    epoch: int
    stride: int
    babble_paths: tuple[str, ...]

    def __call__(self, audio: np.ndarray, index: int, min_frames: int) -> np.ndarray:
        """Augmented (n,) float32 audio; the clean audio when the draw (a fast `speed`) would
        leave fewer frames than CTC needs for the transcript."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        augmented = apply_waveform_augmentations(
            audio, self.augmentations, rng, babble_source=self._babble
        )
        if -(-n_feature_frames(augmented.size) // self.stride) < min_frames:
            return audio
        return augmented

    def _babble(self, rng: np.random.Generator) -> np.ndarray:
        return load_wav(self.babble_paths[int(rng.integers(len(self.babble_paths)))])


def augment_epoch(
    train: CachedSet,
    shards: Sequence[int],
    augmentations: Sequence[Augmentation],
    alphabet: Alphabet,
    *,
    seed: int,
    epoch: int,
    stride: int,
    folder: Path,
    workers: int | None = None,
    progress: Callable[..., None] | None = None,
) -> CachedSet:
    """`train` with `shards` re-featurized from audio under this epoch's waveform draws.

    Other shards keep their clean cache files (this worker never reads them). Utterances keep
    their shard and position, so the epoch's plan (made from the clean frame counts) applies.
    """
    if folder.exists():
        shutil.rmtree(folder)
    paths = [str(u.wav_path) for u in train.utterances]
    pool = np.random.default_rng([seed, epoch]).choice(
        len(paths), min(len(paths), BABBLE_POOL), replace=False
    )
    augmenter = WaveformAugmenter(
        tuple(a for a in augmentations if a.domain == "waveform"),
        seed,
        epoch,
        stride,
        tuple(paths[i] for i in sorted(pool)),
    )
    tasks = []
    for k in shards:
        shard = train.shards[k]
        chosen = train.utterances[shard.first : shard.first + len(shard.frames)]
        tasks.append(
            ShardTask(
                folder,
                shard.feature_file.stem,
                shard.first,
                tuple(str(u.wav_path) for u in chosen),
                tuple(u.transcript for u in chosen),
                train.numcep,
                alphabet,
                augmenter,
            )
        )
    run_shard_tasks(tasks, workers, progress)
    replaced = list(train.shards)
    for k in shards:
        replaced[k] = dataclasses.replace(
            read_shard(folder, train.shards[k].feature_file.stem), first=train.shards[k].first
        )
    return dataclasses.replace(train, shards=replaced)
