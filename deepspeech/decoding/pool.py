"""Beam search on every core: utterances decoded in worker processes, one decoder each.

flashlight's lexicon-free search calls back into Python (`_WordLM.score`) for every
hypothesis, label and frame, so a beam search with the LM holds the GIL nearly all the time:
threads would take turns, not share the work. Worker processes do share it. Each builds its
decoder once per `DecoderConfig` (the LM read once per process, `load_language_model` caches
it) and decodes whole utterances, so only scores go out and texts come back.

Used where many utterances are decoded at once: `deepspeech evaluate`, training's reports
(beam search when it has `--lm`) and `deepspeech lm tune`. Serving keeps its in-process
decoder: its requests come one by one, and its threads already overlap them with the model.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from types import TracebackType
from typing import TypeVar

import numpy as np

from deepspeech.decoding.decoders import (
    Decoder,
    DecoderConfig,
    ScoreKind,
    make_decoder,
)
from deepspeech.parallel import available_cpus, limit_blas_threads
from deepspeech.text import Alphabet

T = TypeVar("T")


class DecoderPool:
    """`make_decoder(config, alphabet, kind)` run in `workers` processes, behind the same
    `Decoder` interface; `decode_many` decodes under another config (lm tune's grid).

    A context manager: the processes start on entry (else on first use) and stop on exit.
    Results are in input order and equal the in-process decoder's (each utterance is decoded
    alone).
    """

    def __init__(
        self,
        config: DecoderConfig,
        alphabet: Alphabet,
        kind: ScoreKind = "auto",
        workers: int | None = None,
    ) -> None:
        self.config, self.alphabet, self.kind = config, alphabet, kind
        self.workers = max(1, workers or available_cpus())
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, scores: np.ndarray, length: int | None = None) -> str:
        return self.decode_many([scores[: scores.shape[0] if length is None else length]])[0]

    def decode_batch(self, scores: np.ndarray, lengths: Sequence[int] | np.ndarray) -> list[str]:
        """A padded batch (batch, n_frames, n_classes) with its lengths (batch,) -> texts."""
        return self.submit_batch(scores, lengths)()

    def decode_many(
        self, matrices: Sequence[np.ndarray], config: DecoderConfig | None = None
    ) -> list[str]:
        """Each (n_frames, n_classes) score matrix -> its text, under `config` (default: the
        pool's). Utterances are dealt out in chunks of about equal frames, one per worker."""
        return self._submit(matrices, config)()

    def submit_batch(
        self, scores: np.ndarray, lengths: Sequence[int] | np.ndarray
    ) -> Callable[[], list[str]]:
        """`decode_batch`, started: returns at once, and the call it returns waits for the
        texts. The caller computes its next batch meanwhile (`evaluate_set` does)."""
        return self._submit([s[: int(n)] for s, n in zip(scores, lengths, strict=True)])

    def _submit(
        self, matrices: Sequence[np.ndarray], config: DecoderConfig | None = None
    ) -> Callable[[], list[str]]:
        config = config or self.config
        chunks = _balanced_chunks([m.shape[0] for m in matrices], self.workers)
        pool = self._start()
        futures = [
            pool.submit(_decode, config, self.alphabet, self.kind, [matrices[i] for i in chunk])
            for chunk in chunks
        ]

        def texts() -> list[str]:
            result: list[str] = [""] * len(matrices)
            for chunk, future in zip(chunks, futures, strict=True):
                for i, text in zip(chunk, future.result(), strict=True):
                    result[i] = text
            return result

        return texts

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> DecoderPool:
        """Start the workers now, so each imports the decoder and reads the LM while the
        caller is still loading its model, not when the first batch waits for them."""
        pool = self._start()
        for _ in range(self.workers):
            pool.submit(_warm_up, self.config, self.alphabet, self.kind)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that has started TensorFlow's threads can deadlock.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=get_context("spawn"), initializer=limit_blas_threads
            )
        return self._pool


@contextmanager
def batch_decoder(
    config: DecoderConfig, alphabet: Alphabet, kind: ScoreKind, workers: int | None = None
) -> Iterator[Decoder]:
    """The decoder to decode a whole set with: a `DecoderPool` for beam search on several
    cores (stopped on exit), else the in-process decoder (greedy decoding is too cheap to
    ship anywhere)."""
    workers = workers or available_cpus()
    if config.decoder != "beam" or workers <= 1:
        yield make_decoder(config, alphabet, kind)
        return
    with DecoderPool(config, alphabet, kind, workers) as pool:
        yield pool


# Batches handed to a pool and not yet collected: the one being decoded and the next, queued,
# so a worker that finishes its chunk of one batch starts on the next at once.
BATCHES_IN_FLIGHT = 2


def decode_batches(
    decoder: Decoder, batches: Iterable[tuple[T, np.ndarray, np.ndarray]]
) -> Iterator[tuple[T, list[str]]]:
    """Each (context, padded scores, lengths) -> (context, texts), in order.

    A `DecoderPool` is handed up to BATCHES_IN_FLIGHT batches more than the caller has taken,
    so `batches` (the model scoring them) and the caller's use of the texts run while the
    workers decode. Any other decoder decodes each batch when it comes.
    """
    if not isinstance(decoder, DecoderPool):
        for context, scores, lengths in batches:
            yield context, decoder.decode_batch(scores, lengths)
        return
    in_flight: deque[tuple[T, Callable[[], list[str]]]] = deque()
    for context, scores, lengths in batches:
        in_flight.append((context, decoder.submit_batch(scores, lengths)))
        if len(in_flight) > BATCHES_IN_FLIGHT:
            context, texts = in_flight.popleft()
            yield context, texts()
    while in_flight:
        context, texts = in_flight.popleft()
        yield context, texts()


def _balanced_chunks(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Indices split into at most `parts` chunks of about equal total size (longest first,
    each to the lightest chunk so far); empty chunks are dropped."""
    chunks: list[list[int]] = [[] for _ in range(max(1, parts))]
    loads = [0] * len(chunks)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        lightest = loads.index(min(loads))
        chunks[lightest].append(i)
        loads[lightest] += sizes[i]
    return [sorted(c) for c in chunks if c]


def _decode(
    config: DecoderConfig, alphabet: Alphabet, kind: ScoreKind, matrices: list[np.ndarray]
) -> list[str]:
    decoder = _cached_decoder(config, alphabet, kind)
    return [decoder(m) for m in matrices]


def _warm_up(config: DecoderConfig, alphabet: Alphabet, kind: ScoreKind) -> None:
    """Build a worker's decoder ahead of its first chunk (an error waits for that chunk)."""
    _cached_decoder(config, alphabet, kind)


@functools.lru_cache(maxsize=4)
def _cached_decoder(config: DecoderConfig, alphabet: Alphabet, kind: ScoreKind) -> Decoder:
    """One decoder per config in each worker (kept for the next chunk, and the next batch)."""
    return make_decoder(config, alphabet, kind)
