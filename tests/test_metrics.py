"""Tests for deepspeech/metrics.py: corpus WER/CER of a set and the 2017 mean beside it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepspeech.metrics import (
    char_edit_counts,
    char_error_rate,
    corpus_error_rates,
    corpus_rate,
    error_rate,
    mean_rate,
    mean_word_error_rate,
    word_edit_counts,
    word_error_percent,
    word_error_rate,
)
from deepspeech.text import cer, wer

# One short utterance with one wrong word and one long one that is right: the corpus WER
# (1 edit / 10 words) and the 2017 mean ((1/2 + 0/8) / 2) tell different stories.
REFERENCES = ["a dog", "the quick brown fox jumps over the fence"]
HYPOTHESES = ["a fog", "the quick brown fox jumps over the fence"]

sentences = st.lists(st.sampled_from(["a", "b", "cat", "dog", "it's"]), max_size=8).map(" ".join)
pairs = st.lists(st.tuples(sentences, sentences), max_size=6)


def test_corpus_wer_divides_total_edits_by_total_words() -> None:
    assert word_edit_counts(REFERENCES, HYPOTHESES) == [(1, 2), (0, 8)]
    assert word_error_rate(REFERENCES, HYPOTHESES) == pytest.approx(1 / 10)


def test_mean_wer_averages_per_sample_wer_as_in_2017() -> None:
    assert mean_word_error_rate(REFERENCES, HYPOTHESES) == pytest.approx((1 / 2 + 0 / 8) / 2)
    assert mean_word_error_rate(REFERENCES, HYPOTHESES) != word_error_rate(REFERENCES, HYPOTHESES)


def test_corpus_cer_counts_characters() -> None:
    assert char_edit_counts(REFERENCES, HYPOTHESES) == [(1, 5), (0, 40)]
    assert char_error_rate(REFERENCES, HYPOTHESES) == pytest.approx(1 / 45)


def test_corpus_error_rates_total_the_edits() -> None:
    assert corpus_error_rates(["a b c", "d"], ["a x c", "d"]) == (0.25, pytest.approx(1 / 6))


def test_percent_is_the_same_rate_in_points() -> None:
    assert word_error_percent(["a b c", "d e f"], ["a b x", "d e f"]) == 100.0 * 1 / 6
    assert word_error_percent(["a b"], ["c d e"]) == 150.0  # insertions can pass 100 %


def test_an_empty_reference_divides_by_one() -> None:
    assert error_rate(0, 0) == 0.0
    assert error_rate(2, 0) == 2.0
    assert word_error_rate([""], ["two words"]) == 2.0
    assert mean_rate([(2, 0), (0, 3)]) == 1.0


def test_an_empty_set_has_rate_zero() -> None:
    assert corpus_rate([]) == 0.0 and mean_rate([]) == 0.0
    assert corpus_error_rates([], []) == (0.0, 0.0)


def test_references_and_hypotheses_must_pair_up() -> None:
    with pytest.raises(ValueError, match="shorter"):
        word_error_rate(["a", "b"], ["a"])


def test_corpus_rate_takes_counts_from_a_generator() -> None:
    counts = ((e, u) for e, u in [(1, 2), (3, 4)])
    assert corpus_rate(counts) == pytest.approx(4 / 6)


@given(pairs)
def test_one_utterance_sets_agree_with_the_2017_functions(data: list[tuple[str, str]]) -> None:
    for reference, hypothesis in data:
        assert word_error_rate([reference], [hypothesis]) == wer(reference, hypothesis)
        assert mean_word_error_rate([reference], [hypothesis]) == wer(reference, hypothesis)
        assert char_error_rate([reference], [hypothesis]) == cer(reference, hypothesis)


@given(pairs)
def test_corpus_wer_weighs_each_utterance_by_its_words(data: list[tuple[str, str]]) -> None:
    data = [(r, h) for r, h in data if r]  # an empty reference's edits have no weight to take
    references = [r for r, _ in data]
    hypotheses = [h for _, h in data]
    words = sum(len(r.split()) for r in references)
    if words:
        weighted = sum(wer(r, h) * len(r.split()) for r, h in data) / words
        assert word_error_rate(references, hypotheses) == pytest.approx(weighted)
