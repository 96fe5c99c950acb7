"""CTC decoding carried across the chunks of a stream: each chunk's frames are decoded once.

Re-decoding the whole stream at every partial would make the work per chunk grow with the
stream's length (DeepSpeech once got slower as streams grew). Greedy decoding only needs the
last frame's label to merge repeats across a chunk boundary, so the streamed text equals
`greedy_decode` of all frames at once. Beam search keeps one flashlight search open for the
stream (`decode_begin`, `decode_step` per chunk, `decode_end`), so its final text equals the
whole-utterance beam search.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from deepspeech.decoding.decoders import BeamDecoder, Decoder, GreedyDecoder, to_log_probs
from deepspeech.text import Alphabet


class StreamDecoder(Protocol):
    """One stream's decoding: scores in chunk by chunk, text out at any time."""

    def accept(self, scores: np.ndarray) -> None: ...

    def text(self) -> str: ...

    def finish(self) -> str: ...


class GreedyStreamDecoder:
    """Best path decoding, chunk by chunk: argmax per frame, repeats merged across chunks."""

    def __init__(self, alphabet: Alphabet) -> None:
        self.alphabet = alphabet
        self._previous = alphabet.blank_index  # the last frame's label (blank before any)
        self._text = ""  # grown by each chunk's characters: never rebuilt from all labels

    def accept(self, scores: np.ndarray) -> None:
        """Decode (n_frames, n_classes) more frames (logits or probabilities)."""
        best = np.argmax(scores, axis=1)
        if len(best) == 0:
            return
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


class BeamStreamDecoder:
    """flashlight's beam search (with the decoder's word LM) kept open across chunks.

    Each chunk costs one `decode_step` over its frames: the search never restarts. The
    search's history is not pruned (flashlight's `prune` commits to the current best path,
    which could change the final text), so its memory grows with the stream, bounded by the
    server's stream length limit; a partial result walks that history back once.
    """

    def __init__(self, decoder: BeamDecoder) -> None:
        self._decoder = decoder
        self._search, self._lm = decoder.new_search()  # the LM must outlive the search
        self._search.decode_begin()
        self._frames = 0

    def accept(self, scores: np.ndarray) -> None:
        """Decode (n_frames, n_classes) more frames (logits or probabilities)."""
        if len(scores) == 0:
            return
        log_probs = np.ascontiguousarray(to_log_probs(scores, self._decoder.kind), np.float32)
        self._search.decode_step(log_probs.ctypes.data, *log_probs.shape)
        self._frames += len(log_probs)

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
        results = self._search.get_all_final_hypothesis()
        return self._decoder.tokens_to_text(results[0].tokens[1:-1]) if results else ""


def stream_decoder(decoder: Decoder) -> StreamDecoder:
    """A new stream's decoder that decodes as `decoder` does whole utterances."""
    if isinstance(decoder, GreedyDecoder):
        return GreedyStreamDecoder(decoder.alphabet)
    if isinstance(decoder, BeamDecoder):
        return BeamStreamDecoder(decoder)
    raise TypeError(f"no streaming form of {type(decoder).__name__}")
