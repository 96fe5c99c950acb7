"""Manifests -> on-disk feature cache: per-frame MFCC and labels in shards that tf.data reads.

One cache entry per (manifest contents, numcep, alphabet): a folder `<manifest>-<key>` under
the cache directory. Features are stored at stride 1 (the stride is applied when batches are
cut), so runs with other strides or widths share the entry; a changed manifest, numcep or
alphabet gives a new key, hence a fresh entry. Each shard holds a fixed, contiguous run of the
manifest's utterances as three files:

- `shard-NNNNN.feat`: float16 MFCC frames, (sum of frames, numcep) row-major. Half precision
  halves the cache (about 19 MB per audio hour) and loses nothing a 26-coefficient MFCC
  carries (relative error 5e-4, far below the frame-to-frame variation).
- `shard-NNNNN.lab`: int16 label ids of every transcript, concatenated.
- `shard-NNNNN.json`: frames, label lengths, CTC minimum frames and seconds per utterance,
  and per-coefficient sums and squares (for the model's normalisation). Written last: a shard
  without its JSON is incomplete and rebuilt, so a kill -9 mid-write never leaves a shard
  that reads as complete. Every file is written to a temporary name and renamed into place.

`index.json` (all shards' JSON in one file, written once every shard exists) makes opening
a large entry one read. No TensorFlow here: the feature processes stay light.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from deepspeech.audio import SAMPLE_RATE, audio_to_features, load_wav
from deepspeech.data.manifest import Utterance, parse_manifest_list, read_manifest
from deepspeech.errors import ConfigError
from deepspeech.files import atomic_write
from deepspeech.parallel import (
    available_cpus,
    limit_blas_threads,
    limit_blas_threads_idle_priority,
)
from deepspeech.text import Alphabet

DEFAULT_FEATURE_CACHE = "runs/feature-cache"  # beside the default checkpoints, under runs/

logger = logging.getLogger(__name__)

CACHE_FORMAT = 3  # bump when the files' layout or features change: old entries are then ignored
FEATURE_DTYPE = np.dtype("<f2")  # float16, little-endian (what tf.io.decode_raw reads)
LABEL_DTYPE = np.dtype("<i2")  # int16: alphabets of up to 32767 characters
SHARD_SECONDS = 300.0  # audio per shard: 5 min, 1.6 MB; small shards mix well into windows
TARGET_SHARDS = 32  # small manifests still get enough shards to split across workers
WAV_HEADER_BYTES = 44  # to estimate a manifest's durations from its file sizes
INDEX_FILE = "index.json"


def ctc_min_frames(labels: np.ndarray) -> int:
    """Frames CTC needs for a label sequence: one per label plus a blank between repeats."""
    return int(labels.size + np.count_nonzero(labels[1:] == labels[:-1]))


def shard_bounds(utterances: Sequence[Utterance]) -> list[tuple[int, int]]:
    """(first, end) of each shard: consecutive utterances holding about SHARD_SECONDS of audio
    (less for small manifests, so they still split into TARGET_SHARDS), from the manifest's
    file sizes alone (16-bit mono 16 kHz PCM), before any audio is read."""
    seconds = np.array(
        [max(u.wav_filesize - WAV_HEADER_BYTES, 0) / (2 * SAMPLE_RATE) for u in utterances]
    )
    per_shard = min(SHARD_SECONDS, max(float(seconds.sum()) / TARGET_SHARDS, 1e-9))
    shard_of = np.floor((np.cumsum(seconds) - seconds) / per_shard).astype(np.int64)
    starts = np.flatnonzero(np.diff(shard_of, prepend=-1))
    return list(zip(starts.tolist(), [*starts[1:].tolist(), len(utterances)], strict=True))


@dataclass(frozen=True)
class Shard:
    """One shard's files and what its JSON says about each of its utterances."""

    feature_file: Path
    label_file: Path
    first: int  # position of its first utterance in the manifest
    frames: np.ndarray  # (n,) int64 MFCC frames at stride 1
    label_lengths: np.ndarray  # (n,) int64
    min_frames: np.ndarray  # (n,) int64 frames CTC needs (labels + repeats)
    seconds: float  # audio in the shard
    sums: np.ndarray  # (numcep,) float64 sum of every frame
    squares: np.ndarray  # (numcep,) float64 sum of every frame squared

    @property
    def nbytes(self) -> int:
        return self.feature_file.stat().st_size + self.label_file.stat().st_size

    def to_dict(self) -> dict:
        return {
            "first": self.first,
            "frames": self.frames.tolist(),
            "label_lengths": self.label_lengths.tolist(),
            "min_frames": self.min_frames.tolist(),
            "seconds": self.seconds,
            "sums": self.sums.tolist(),
            "squares": self.squares.tolist(),
        }

    @classmethod
    def from_dict(cls, folder: Path, name: str, data: dict) -> Shard:
        return cls(
            feature_file=folder / f"{name}.feat",
            label_file=folder / f"{name}.lab",
            first=int(data["first"]),
            frames=np.asarray(data["frames"], np.int64),
            label_lengths=np.asarray(data["label_lengths"], np.int64),
            min_frames=np.asarray(data["min_frames"], np.int64),
            seconds=float(data["seconds"]),
            sums=np.asarray(data["sums"], np.float64),
            squares=np.asarray(data["squares"], np.float64),
        )


@dataclass(frozen=True)
class CachedSet:
    """One or more manifests' cache entries, seen as one list of utterances and shards.

    Per-utterance arrays are in manifest order (manifests concatenated); shard `k` holds the
    utterances `shard_first[k] : shard_first[k] + shard_count[k]`.
    """

    utterances: list[Utterance]
    shards: list[Shard]
    numcep: int

    @functools.cached_property
    def frames(self) -> np.ndarray:
        """(n,) int64 MFCC frames (stride 1) of every utterance."""
        return np.concatenate([s.frames for s in self.shards])

    @functools.cached_property
    def label_lengths(self) -> np.ndarray:
        return np.concatenate([s.label_lengths for s in self.shards])

    @functools.cached_property
    def min_frames(self) -> np.ndarray:
        return np.concatenate([s.min_frames for s in self.shards])

    @functools.cached_property
    def shard_counts(self) -> np.ndarray:
        return np.array([s.frames.size for s in self.shards], np.int64)

    @property
    def audio_hours(self) -> float:
        return sum(s.seconds for s in self.shards) / 3600

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.shards)

    @property
    def megabytes_per_audio_hour(self) -> float:
        return self.nbytes / 1e6 / max(self.audio_hours, 1e-9)

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coefficient (mean, std) over every frame, both (numcep,) float32.

        The model normalises with these; they depend only on the training data, so they can
        run frame by frame (streaming) and are stored with the checkpoint and in the ONNX graph.
        """
        n = float(sum(int(s.frames.sum()) for s in self.shards))
        if n == 0:
            raise ConfigError("the feature cache holds no frames to normalise with")
        mean = sum(s.sums for s in self.shards) / n
        variance = np.maximum(sum(s.squares for s in self.shards) / n - mean**2, 0.0)
        std = np.sqrt(variance)
        std[std < 1e-6] = 1.0  # a constant coefficient is only centred
        return mean.astype(np.float32), std.astype(np.float32)

    def __len__(self) -> int:
        return len(self.utterances)


def cache_key(manifest: Path, numcep: int, alphabet: Alphabet) -> str:
    """What decides an entry's contents: the manifest's bytes and folder, numcep, alphabet."""
    digest = hashlib.sha256()
    for part in (
        f"format {CACHE_FORMAT}",
        f"numcep {numcep}",
        json.dumps(list(alphabet.labels)),
        str(manifest.resolve().parent),  # relative WAV paths resolve against it
    ):
        digest.update(part.encode() + b"\0")
    digest.update(manifest.read_bytes())
    return digest.hexdigest()[:16]


def entry_folder(cache_dir: Path, manifest: Path, numcep: int, alphabet: Alphabet) -> Path:
    return Path(cache_dir) / f"{manifest.stem}-{cache_key(manifest, numcep, alphabet)}"


class AudioTransform(Protocol):
    """Changes an utterance's audio before its MFCC (waveform augmentation); picklable."""

    def __call__(self, audio: np.ndarray, index: int, min_frames: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ShardTask:
    """One shard to featurize: its utterances, where to write, and an optional transform."""

    folder: Path
    name: str
    first: int
    paths: tuple[str, ...]
    transcripts: tuple[str, ...]
    numcep: int
    alphabet: Alphabet
    transform: AudioTransform | None = None  # never used for the cache itself


def write_shard(task: ShardTask) -> int:
    """Featurize one shard's utterances and write its three files (the JSON last)."""
    features, labels, seconds = [], [], 0.0
    for offset, (path, transcript) in enumerate(zip(task.paths, task.transcripts, strict=True)):
        audio = load_wav(path)
        encoded = task.alphabet.encode(transcript)
        if task.transform is not None:
            audio = task.transform(audio, task.first + offset, ctc_min_frames(encoded))
        seconds += audio.size / SAMPLE_RATE
        features.append(audio_to_features(audio, task.numcep))
        labels.append(encoded)
    frames = np.concatenate(features).astype(np.float64)
    with atomic_write(task.folder / f"{task.name}.feat", "wb") as stream:
        stream.write(frames.astype(FEATURE_DTYPE).tobytes())
    with atomic_write(task.folder / f"{task.name}.lab", "wb") as stream:
        stream.write(np.concatenate(labels).astype(LABEL_DTYPE).tobytes())
    shard = Shard(
        feature_file=task.folder / f"{task.name}.feat",
        label_file=task.folder / f"{task.name}.lab",
        first=task.first,
        frames=np.array([f.shape[0] for f in features], np.int64),
        label_lengths=np.array([lab.size for lab in labels], np.int64),
        min_frames=np.array([ctc_min_frames(lab) for lab in labels], np.int64),
        seconds=seconds,
        sums=frames.sum(axis=0),
        squares=np.square(frames).sum(axis=0),
    )
    with atomic_write(task.folder / f"{task.name}.json", encoding="utf-8") as stream:
        json.dump(shard.to_dict(), stream)
    return len(task.paths)


def _shard_names(utterances: Sequence[Utterance]) -> list[tuple[str, int, int]]:
    """(name, first, end) of every shard of a manifest."""
    return [
        (f"shard-{k:05d}", first, end) for k, (first, end) in enumerate(shard_bounds(utterances))
    ]


def read_shard(folder: Path, name: str) -> Shard:
    """A shard as its JSON describes it (present once its files are complete)."""
    return Shard.from_dict(folder, name, json.loads((folder / f"{name}.json").read_text("utf-8")))


def _read_complete(folder: Path, names: Sequence[tuple[str, int, int]]) -> dict[str, Shard]:
    """Shards whose JSON exists (hence whose feature and label files were renamed in first)."""
    index = folder / INDEX_FILE
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        return {name: Shard.from_dict(folder, name, d) for name, d in data["shards"].items()}
    done = {}
    for name, _, _ in names:
        if (folder / f"{name}.json").is_file():
            done[name] = read_shard(folder, name)
    return done


def run_shard_tasks(
    tasks: Sequence[ShardTask],
    workers: int | None,
    progress: Callable[..., None] | None,
    *,
    background: bool = False,
) -> None:
    """Write the shards, in a pool of processes (one BLAS thread each) when there are several.

    Each process writes its own shard's files, so only shard counts cross process boundaries.
    `background`: the processes run at idle priority (nice 19), for work done beside training
    (one worker runs in this process, at its priority).
    """
    for task in tasks:
        task.folder.mkdir(parents=True, exist_ok=True)
    workers = min(workers or available_cpus(), len(tasks))
    if workers <= 1:
        with threadpool_limits(limits=1):
            for task in tasks:
                count = write_shard(task)
                if progress:
                    progress(count)
        return
    # spawn: forking a process that has started TensorFlow's threads can deadlock.
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=limit_blas_threads_idle_priority if background else limit_blas_threads,
    ) as pool:
        for count in pool.map(write_shard, tasks):
            if progress:
                progress(count)


def build_entry(
    manifest: Path,
    utterances: Sequence[Utterance],
    cache_dir: Path,
    numcep: int,
    alphabet: Alphabet,
    *,
    workers: int | None = None,
    progress: Callable[..., None] | None = None,
) -> list[Shard]:
    """Make sure one manifest's entry is complete (featurizing only missing shards); its shards."""
    folder = entry_folder(cache_dir, manifest, numcep, alphabet)
    names = _shard_names(utterances)
    done = _read_complete(folder, names)
    todo = [
        ShardTask(
            folder,
            name,
            first,
            tuple(str(u.wav_path) for u in utterances[first:end]),
            tuple(u.transcript for u in utterances[first:end]),
            numcep,
            alphabet,
        )
        for name, first, end in names
        if name not in done
    ]
    if progress:
        progress(sum(len(s.frames) for s in done.values()))
    if todo:
        logger.info("featurizing %d shard(s) of %s into %s", len(todo), manifest, folder)
        run_shard_tasks(todo, workers, progress)
        done = _read_complete(folder, names)
    shards = [done[name] for name, _, _ in names]
    index = folder / INDEX_FILE
    if not index.is_file():
        with atomic_write(index, encoding="utf-8") as stream:
            json.dump(
                {
                    "format": CACHE_FORMAT,
                    "manifest": str(manifest.resolve()),
                    "numcep": numcep,
                    "alphabet": list(alphabet.labels),
                    "shards": {
                        name: s.to_dict() for (name, _, _), s in zip(names, shards, strict=True)
                    },
                },
                stream,
            )
    return shards


ReadManifests = list[tuple[Path, list[Utterance]]]


def read_manifests(spec: str | Path | Sequence[str | Path], alphabet: Alphabet) -> ReadManifests:
    """Each manifest of a comma-separated `spec` with its checked utterances.

    Checked means files present with their stated sizes and transcripts in the alphabet: read
    every set's manifests before featurizing any, so a bad one fails first, naming its line.
    """
    return [(m, read_manifest(m, alphabet)) for m in parse_manifest_list(spec)]


def open_cached_set(
    read: ReadManifests,
    cache_dir: Path,
    numcep: int,
    alphabet: Alphabet,
    *,
    workers: int | None = None,
    progress_factory: Callable[[str, int], object] | None = None,
) -> CachedSet:
    """Build whatever is missing of the manifests' cache entries; open them as one set."""
    utterances: list[Utterance] = []
    shards: list[Shard] = []
    for manifest, entries in read:
        if progress_factory is None:
            built = build_entry(manifest, entries, cache_dir, numcep, alphabet, workers=workers)
        else:
            with progress_factory(f"features {manifest.name}", len(entries)) as advance:
                built = build_entry(
                    manifest,
                    entries,
                    cache_dir,
                    numcep,
                    alphabet,
                    workers=workers,
                    progress=advance,
                )
        offset = len(utterances)
        shards.extend(dataclasses.replace(s, first=s.first + offset) for s in built)
        utterances.extend(entries)
    return CachedSet(utterances, shards, numcep)
