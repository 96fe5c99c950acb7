"""Waveform augmentation for one training epoch: a worker's shards featurized again from
augmented audio into a scratch folder, never into the feature cache.

DeepSpeech's feature cache silently froze augmentation after the first epoch (augmented
features were what it cached). Here the cache holds clean MFCC only; each epoch, every shard a
worker owns is read again, augmented with a draw seeded by (seed, epoch, utterance), featurized
in parallel processes and read by the same tf.data pipeline; each epoch's set is prepared
while the epoch before it trains, at idle priority (`AugmentedEpochs`). A resumed epoch
rebuilds exactly the draws it had.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepspeech.audio import load_wav, n_feature_frames
from deepspeech.data.augment import apply_waveform_augmentations
from deepspeech.data.augment_spec import Augmentation
from deepspeech.data.cache import CachedSet, ShardTask, read_shard, run_shard_tasks
from deepspeech.text import Alphabet

logger = logging.getLogger(__name__)

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
        return _babble_clip(self.babble_paths[int(rng.integers(len(self.babble_paths)))])


@functools.lru_cache(maxsize=BABBLE_POOL)
def _babble_clip(path: str) -> np.ndarray:
    """A clip of the babble pool, read once per feature process: an epoch draws each of them
    about a dozen times (3-6 layers per babble draw). Read-only, as it is shared."""
    audio = load_wav(path)
    audio.flags.writeable = False
    return audio


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
    background: bool = False,
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
    run_shard_tasks(tasks, workers, progress, background=background)
    replaced = list(train.shards)
    for k in shards:
        replaced[k] = dataclasses.replace(
            read_shard(folder, train.shards[k].feature_file.stem), first=train.shards[k].first
        )
    return dataclasses.replace(train, shards=replaced)


class AugmentedEpochs:
    """Each epoch's training set under the waveform augmentations, prepared in the background
    while the epoch before it trains, by feature processes at idle priority (nice 19).

    Why ahead of time: re-featurizing the audio is CPU work training would otherwise wait for
    at the start of every epoch (the whole corpus each time: on LibriSpeech far longer than
    anything else GPUs wait for). At idle priority it takes only CPU the training leaves idle,
    which matters where the model itself runs on the same cores: on 2 CPU cores, at normal
    priority the first epoch took 113 s instead of 95 s with no gain after it; niced, make
    run's epochs took about 4 s longer each and the 10 s of featurizing before each was gone,
    a net 17 s less for the `train` stage. One epoch ahead, no more: each prepared set is a copy
    of this worker's features on disk. The draws depend on (seed, epoch, utterance) only, so
    when a set is prepared changes nothing in it.
    """

    def __init__(
        self,
        train: CachedSet,
        shards: Sequence[int],
        augmentations: Sequence[Augmentation],
        alphabet: Alphabet,
        *,
        seed: int,
        stride: int,
        epochs: int,
        folder: Path,
        progress: Callable[[str, int | None], AbstractContextManager[Callable[..., None]]],
        workers: int | None = None,
    ) -> None:
        self._featurize = functools.partial(
            augment_epoch, train, shards, augmentations, alphabet,
            seed=seed, stride=stride, workers=workers,
        )  # fmt: skip
        self.epochs, self.folder, self.progress = epochs, folder, progress
        self.utterances = int(train.shard_counts[list(shards)].sum())
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="augment-next-epoch")
        self._next: tuple[int, Future[CachedSet]] | None = None

    def epoch_folder(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch}"

    def epoch_set(self, epoch: int) -> CachedSet:
        """Epoch `epoch`'s set (waiting for it if it is still being prepared); then, `ahead`,
        starts preparing the next epoch's. Earlier epochs' sets are deleted: their reading is
        done."""
        if self._next and self._next[0] == epoch:
            future = self._next[1]
            if not future.done():
                logger.info("waiting for epoch %d's augmented audio", epoch + 1)
            train = future.result()
        else:
            self._wait_for_next()  # another epoch's (none in a normal run)
            with self.progress(f"augment epoch {epoch + 1}", self.utterances) as advance:
                train = self._featurize(
                    epoch=epoch, folder=self.epoch_folder(epoch), progress=advance
                )
        self._next = None
        for old in self.folder.glob("epoch-*"):
            if old != self.epoch_folder(epoch):
                shutil.rmtree(old)
        if epoch + 1 < self.epochs:
            future = self._executor.submit(
                self._featurize,
                epoch=epoch + 1,
                folder=self.epoch_folder(epoch + 1),
                background=True,
            )
            self._next = (epoch + 1, future)
        return train

    def close(self) -> None:
        """Wait for a set still being prepared (a run that stopped early), delete every set."""
        self._wait_for_next()
        self._executor.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _wait_for_next(self) -> None:
        if self._next:
            self._next[1].exception()  # waits; its error, if any, belongs to an unused epoch
            self._next = None
