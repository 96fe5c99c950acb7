"""CTC decoding carried across the chunks of a stream: each chunk's frames are decoded once.

Re-decoding the whole stream at every partial would make the work per chunk grow with the
stream's length (DeepSpeech once got slower as streams grew). Greedy decoding only needs the
last frame's label to merge repeats across a chunk boundary, so the streamed text equals
`greedy_decode` of all frames at once.
"""

from __future__ import annotations

import numpy as np

from deepspeech.text import Alphabet


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
