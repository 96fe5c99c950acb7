"""Greedy CTC decoding on hand-built score matrices with known best paths."""

from __future__ import annotations

import numpy as np
import pytest

from deepspeech.decode import greedy_decode, greedy_decode_batch
from deepspeech.text import Alphabet

ALPHABET = Alphabet.default()
BLANK = ALPHABET.blank_index


def one_hot_path(path: list[int], n_frames: int | None = None) -> np.ndarray:
    scores = np.full((n_frames or len(path), ALPHABET.num_classes), -5.0, dtype=np.float32)
    for t, label in enumerate(path):
        scores[t, label] = 5.0
    return scores


def labels(text: str) -> list[int]:
    return [ALPHABET.label_of(c) for c in text]


def test_repeats_merge_and_blanks_vanish() -> None:
    a, b = labels("ab")
    path = [BLANK, a, a, BLANK, b, b, b, BLANK]
    assert greedy_decode(one_hot_path(path), ALPHABET) == "ab"


def test_blank_between_repeats_keeps_double_letters() -> None:
    (ell,) = labels("l")
    path = [ell, ell, BLANK, ell, BLANK]
    assert greedy_decode(one_hot_path(path), ALPHABET) == "ll"


def test_length_ignores_padded_frames() -> None:
    h, i = labels("hi")
    scores = one_hot_path([h, BLANK, i, h, h], n_frames=5)
    assert greedy_decode(scores, ALPHABET, length=3) == "hi"


def test_batch_decoding_with_lengths() -> None:
    h, i = labels("hi")
    batch = np.stack([one_hot_path([h, i, BLANK, BLANK]), one_hot_path([i, BLANK, h, i])])
    assert greedy_decode_batch(batch, np.array([2, 4]), ALPHABET) == ["hi", "ihi"]


def test_empty_and_all_blank() -> None:
    assert greedy_decode(one_hot_path([]), ALPHABET) == ""
    assert greedy_decode(one_hot_path([BLANK] * 4), ALPHABET) == ""


def test_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        greedy_decode(np.zeros((3, 5)), ALPHABET)
