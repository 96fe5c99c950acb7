"""CTC decoding carried across the chunks of a stream: each chunk's frames are decoded once.

Re-decoding the whole stream at every partial would make the work per chunk grow with the
stream's length (DeepSpeech once got slower as streams grew). Greedy decoding only needs the
last frame's label to merge repeats across a chunk boundary, so the streamed text equals
`greedy_decode` of all frames at once. Beam search keeps one flashlight search open for the
stream (`decode_begin`, `decode_step` per chunk, `decode_end`), so its final text equals the
whole-utterance beam search.

Both can give their alignments at any point, from which `deepspeech.decoding.transcript`
builds timed, N-best transcripts. Greedy keeps each frame's label and its probability (two
numbers a frame); beam search, whose path is only known at the end, keeps each frame's log
probabilities. That memory grows with the stream, bounded by the server's stream length limit.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from deepspeech.decoding.decoders import (
    Alignment,
    BeamDecoder,
    Decoder,
    GreedyDecoder,
    greedy_alignment,
    to_log_probs,
)
from deepspeech.decoding.hot_words import HotWords
from deepspeech.text import Alphabet


class StreamDecoder(Protocol):
    """One stream's decoding: scores in chunk by chunk, text out at any time."""

    def accept(self, scores: np.ndarray) -> None: ...

    def text(self) -> str: ...

    def finish(self) -> str: ...

    def alignments(self, num_results: int = 1) -> list[Alignment]:
        """The best hypothesis so far; after `finish`, up to `num_results` final ones."""
        ...


class _Chunks:
    """Per-frame arrays of a stream, kept chunk by chunk and joined when asked."""

    def __init__(self, empty: np.ndarray) -> None:
        self._chunks: list[np.ndarray] = []
        self._empty = empty

    def add(self, values: np.ndarray) -> None:
        self._chunks.append(values)

    def all(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else self._empty


class GreedyStreamDecoder:
    """Best path decoding, chunk by chunk: argmax per frame, repeats merged across chunks."""

    def __init__(self, alphabet: Alphabet) -> None:
        self.alphabet = alphabet
        self._previous = alphabet.blank_index  # the last frame's label (blank before any)
        self._text = ""  # grown by each chunk's characters: never rebuilt from all labels
        self._best: list[Alignment] = []  # each chunk's best path and its probabilities

    def accept(self, scores: np.ndarray) -> None:
        """Decode (n_frames, n_classes) more frames (logits or probabilities)."""
        if len(scores) == 0:
            return
        chunk = greedy_alignment(scores)
        self._best.append(chunk)
        best = chunk.path
        previous = np.concatenate([[self._previous], best[:-1]])
        keep = (best != previous) & (best != self.alphabet.blank_index)
        self._text += self.alphabet.decode(best[keep])
        self._previous = int(best[-1])

    def text(self) -> str:
        """The transcript of the frames so far."""
        return self._text

    def finish(self) -> str:
        """The final transcript (greedy has nothing left to settle)."""
        return self._text

    def alignments(self, num_results: int = 1) -> list[Alignment]:
        if len(self._best) > 1:  # the chunks' paths joined: greedy's path of all the frames
            self._best = [
                Alignment(
                    np.concatenate([a.path for a in self._best]),
                    np.concatenate([a.probabilities for a in self._best]),
                    sum(a.score for a in self._best),
                )
            ]
        return list(self._best) or [Alignment(np.zeros(0, np.int64), np.zeros(0), 0.0)]


class BeamStreamDecoder:
    """flashlight's beam search (with the decoder's word LM) kept open across chunks.

    Each chunk costs one `decode_step` over its frames: the search never restarts. The
    search's history is not pruned (flashlight's `prune` commits to the current best path,
    which could change the final text), so its memory grows with the stream, bounded by the
    server's stream length limit; a partial result walks that history back once.
    """

    def __init__(self, decoder: BeamDecoder, hot_words: HotWords | None = None) -> None:
        self._decoder = decoder
        # The LM must outlive the search; the stream boosts the decoder's hot words and its own.
        self._search, self._lm = decoder.new_search(decoder.hot_words.with_extra(hot_words))
        self._search.decode_begin()
        self._frames = 0
        self._log_probs = _Chunks(np.zeros((0, decoder.alphabet.num_classes), np.float32))
        self._final: list[object] | None = None  # flashlight's final hypotheses, once finished

    def accept(self, scores: np.ndarray) -> None:
        """Decode (n_frames, n_classes) more frames (logits or probabilities)."""
        if len(scores) == 0:
            return
        log_probs = np.ascontiguousarray(to_log_probs(scores, self._decoder.kind), np.float32)
        self._search.decode_step(log_probs.ctypes.data, *log_probs.shape)
        self._frames += len(log_probs)
        self._log_probs.add(log_probs)

    def text(self) -> str:
        """The best hypothesis so far (its start marker dropped)."""
        if self._frames == 0:
            return ""
        return self._decoder.tokens_to_text(self._search.get_best_hypothesis().tokens[1:])

    def finish(self) -> str:
        """End the search (the LM scores the end of the last word): the final transcript."""
        if self._frames == 0:
            return ""
        self._search.decode_end()
        self._final = list(self._search.get_all_final_hypothesis())
        best = self._decoder.distinct(self._final, 1, self._log_probs.all(), final=True)
        return self._decoder.tokens_to_text(best[0].path) if best else ""

    def alignments(self, num_results: int = 1) -> list[Alignment]:
        if self._frames == 0:
            return []
        log_probs = self._log_probs.all()
        if self._final is not None:
            return self._decoder.distinct(self._final, num_results, log_probs, final=True)
        best = self._search.get_best_hypothesis()
        return self._decoder.distinct([best], 1, log_probs, final=False)


def stream_decoder(decoder: Decoder, hot_words: HotWords | None = None) -> StreamDecoder:
    """A new stream's decoder that decodes as `decoder` does whole utterances."""
    if isinstance(decoder, GreedyDecoder):
        decoder.hot_words.with_extra(hot_words)  # refuses any: greedy has no hypotheses
        return GreedyStreamDecoder(decoder.alphabet)
    if isinstance(decoder, BeamDecoder):
        return BeamStreamDecoder(decoder, hot_words)
    raise TypeError(f"no streaming form of {type(decoder).__name__}")
