"""CTC decoding of per-frame label scores into text (NumPy; shared by training and serving)."""

from __future__ import annotations

import numpy as np

from deepspeech.text import Alphabet


def greedy_decode(scores: np.ndarray, alphabet: Alphabet, length: int | None = None) -> str:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    `scores` is (n_frames, n_classes) logits or probabilities (argmax is the same); only the
    first `length` frames are read, so padded frames of a batch never leak into the text.
    """
    if scores.ndim != 2 or scores.shape[1] != alphabet.num_classes:
        raise ValueError(
            f"scores shape {scores.shape} does not match (n_frames, {alphabet.num_classes})"
        )
    best = np.argmax(scores[: scores.shape[0] if length is None else length], axis=1)
    if best.size == 0:
        return ""
    keep = np.ones(best.shape, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    collapsed = best[keep]
    return alphabet.decode(collapsed[collapsed != alphabet.blank_index])


def greedy_decode_batch(scores: np.ndarray, lengths: np.ndarray, alphabet: Alphabet) -> list[str]:
    """Decode a padded batch: scores (batch, n_frames, n_classes), lengths (batch,)."""
    return [greedy_decode(s, alphabet, int(n)) for s, n in zip(scores, lengths, strict=True)]
