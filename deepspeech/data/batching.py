"""Manifest utterances -> features in memory -> length-bucketed, padded batches (NumPy only).

Features are computed once per run (in parallel, with the same function serving uses) and kept
in memory, so epochs after the first cost no feature work. Batch order is a pure function of
(seed, epoch): a resumed run can skip exactly the batches it already trained on, and the same
global batches reach the model whatever the number of devices or workers. No TensorFlow here:
the feature processes stay light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from threadpoolctl import threadpool_limits

from deepspeech.audio import audio_to_input_vector, load_wav
from deepspeech.config import FeatureConfig
from deepspeech.data.manifest import Utterance
from deepspeech.parallel import available_cpus
from deepspeech.text import Alphabet

logger = logging.getLogger(__name__)

FEATURE_CHUNK = 32  # utterances per worker task: enough to amortise inter-process copies


def limit_blas_threads() -> None:
    """One BLAS thread per process: the MFCC's small matrix products ran 5x slower when BLAS
    threads competed for the cores that the feature processes already use."""
    threadpool_limits(limits=1)


@dataclass(frozen=True)
class FeaturizedSet:
    """A manifest's utterances as model inputs, in manifest order (CTC-infeasible ones dropped)."""

    features: list[np.ndarray]  # each (n_frames, n_input) float32
    labels: list[np.ndarray]  # each (n_chars,) int32
    utterances: list[Utterance]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def frame_counts(self) -> np.ndarray:
        return np.array([f.shape[0] for f in self.features], dtype=np.int64)


@dataclass(frozen=True)
class Batch:
    """Padded arrays for one (per-replica) batch."""

    features: np.ndarray  # (B, T_max, n_input) float32, zero-padded
    feature_lengths: np.ndarray  # (B,) int32
    labels: np.ndarray  # (B, L_max) int32, padded with 0 (lengths say what is real)
    label_lengths: np.ndarray  # (B,) int32
    indices: np.ndarray  # (B,) positions in the FeaturizedSet, to find transcripts again


def _featurize_chunk(paths: Sequence[str], feature_config: FeatureConfig) -> list[np.ndarray]:
    return [
        audio_to_input_vector(
            load_wav(path), feature_config.numcep, feature_config.numcontext, feature_config.stride
        )
        for path in paths
    ]


def ctc_min_frames(labels: np.ndarray) -> int:
    """Frames CTC needs for a label sequence: one per label plus a blank between repeats."""
    return int(labels.size + np.count_nonzero(labels[1:] == labels[:-1]))


def featurize(
    utterances: Sequence[Utterance],
    feature_config: FeatureConfig,
    alphabet: Alphabet,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> FeaturizedSet:
    """Compute every utterance's features in a process pool; keep those CTC can align.

    A transcript longer than its audio allows (more labels than feature frames) would give an
    infinite CTC loss, so such utterances are dropped with a warning naming how many.
    """
    workers = workers or available_cpus()
    paths = [str(u.wav_path) for u in utterances]
    chunks = [paths[i : i + FEATURE_CHUNK] for i in range(0, len(paths), FEATURE_CHUNK)]
    features: list[np.ndarray] = []
    if workers == 1 or len(chunks) <= 1:
        with threadpool_limits(limits=1):
            for chunk in chunks:
                features.extend(_featurize_chunk(chunk, feature_config))
                if progress:
                    progress(len(chunk))
    else:
        # spawn: forking a process that has started TensorFlow's threads can deadlock.
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=limit_blas_threads
        ) as pool:
            for chunk, result in zip(
                chunks,
                pool.map(_featurize_chunk, chunks, [feature_config] * len(chunks)),
                strict=True,
            ):
                features.extend(result)
                if progress:
                    progress(len(chunk))
    kept_features, kept_labels, kept_utterances = [], [], []
    for feats, utterance in zip(features, utterances, strict=True):
        labels = alphabet.encode(utterance.transcript)
        if feats.shape[0] < ctc_min_frames(labels):
            continue
        kept_features.append(feats)
        kept_labels.append(labels)
        kept_utterances.append(utterance)
    dropped = len(utterances) - len(kept_utterances)
    if dropped:
        logger.warning(
            "dropped %d of %d utterances whose transcript is too long for their audio",
            dropped,
            len(utterances),
        )
    return FeaturizedSet(kept_features, kept_labels, kept_utterances)


def pad_batch(data: FeaturizedSet, indices: np.ndarray) -> Batch:
    """Stack utterances into zero-padded arrays sized to the longest one in the batch."""
    feats = [data.features[i] for i in indices]
    labels = [data.labels[i] for i in indices]
    feature_lengths = np.array([f.shape[0] for f in feats], dtype=np.int32)
    label_lengths = np.array([lab.size for lab in labels], dtype=np.int32)
    n_input = feats[0].shape[1]
    padded = np.zeros((len(feats), int(feature_lengths.max()), n_input), dtype=np.float32)
    padded_labels = np.zeros((len(labels), max(int(label_lengths.max()), 1)), dtype=np.int32)
    for row, (f, lab) in enumerate(zip(feats, labels, strict=True)):
        padded[row, : f.shape[0]] = f
        padded_labels[row, : lab.size] = lab
    return Batch(padded, feature_lengths, padded_labels, label_lengths, np.asarray(indices))


def global_batches(
    frame_counts: np.ndarray, global_batch_size: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """Training batches for one epoch: bucketed by length, in a shuffled order.

    Sorting by length (with random tie-breaking) keeps padding small; shuffling the order of
    the batches keeps the model from seeing lengths in order. The remainder is dropped, since
    a replica handed an empty batch crashes.
    """
    rng = np.random.default_rng([seed, epoch])
    jitter = rng.random(frame_counts.size)
    order = np.lexsort((jitter, frame_counts))
    n_batches = frame_counts.size // global_batch_size
    batches = [order[i * global_batch_size : (i + 1) * global_batch_size] for i in range(n_batches)]
    rng.shuffle(batches)
    return batches


def evaluation_batches(frame_counts: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Every utterance once, sorted by length for little padding; the last batch may be short."""
    order = np.argsort(frame_counts, kind="stable")
    return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
