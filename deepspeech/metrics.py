"""WER and CER of a set of utterances: corpus figures, and the 2017 mean beside them.

The edit counts of one utterance come from `deepspeech.text` (`word_errors`, `char_errors`,
and the 2017 `wer` and `cer`); this module adds them up over a set. The corpus rate is total
edits / total reference units (words for WER, characters for CER): the figure papers quote,
and the one training, tuning, evaluation and export report. DeepSpeech 2017 averaged the
per-utterance WER instead, which lets short utterances dominate (one wrong word of two counts
as much as one of twenty); `mean_rate` gives that figure, for reports that show both.

An utterance or set with no reference units divides by 1 instead of 0, as `text.wer` does,
so an empty set has rate 0.0. Rates are fractions (0.25 is 25 %), except `word_error_percent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from deepspeech.text import char_errors, word_errors

EditCounts = tuple[int, int]  # (edits, reference units) of one utterance, as `word_errors` gives


def error_rate(edits: int, units: int) -> float:
    """edits / units, for one utterance or a whole set; 0 units count as 1."""
    return edits / max(units, 1)


def corpus_rate(counts: Iterable[EditCounts]) -> float:
    """Total edits / total reference units of (edits, units) pairs, one pair an utterance."""
    return error_rate(*_totals(counts))


def mean_rate(counts: Iterable[EditCounts]) -> float:
    """The 2017 figure: the mean over utterances of each one's edits / units (0.0 for none)."""
    rates = [error_rate(edits, units) for edits, units in counts]
    return sum(rates) / max(len(rates), 1)


def word_edit_counts(references: Sequence[str], hypotheses: Sequence[str]) -> list[EditCounts]:
    """(word edits, reference words) per utterance; the two sequences must pair up."""
    return [word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]


def char_edit_counts(references: Sequence[str], hypotheses: Sequence[str]) -> list[EditCounts]:
    """(character edits, reference characters) per utterance; see `text.char_errors`."""
    return [char_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word edits / total reference words."""
    return corpus_rate(word_edit_counts(references, hypotheses))


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER: total character edits / total reference characters."""
    return corpus_rate(char_edit_counts(references, hypotheses))


def corpus_error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """(corpus WER, corpus CER) of hypotheses against their references."""
    return word_error_rate(references, hypotheses), char_error_rate(references, hypotheses)


def mean_word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The 2017 mean of per-utterance WER (`text.wer` of each pair, averaged)."""
    return mean_rate(word_edit_counts(references, hypotheses))


def word_error_percent(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER in percent: 100 * total word edits / total reference words.

    Export's int8 check and the quantization benchmark quote WER in points; this is the
    product taken before the division, as they have always computed it, so their figures
    stay the same to the last digit.
    """
    edits, words = _totals(word_edit_counts(references, hypotheses))
    return 100.0 * edits / max(words, 1)


def _totals(counts: Iterable[EditCounts]) -> EditCounts:
    """(total edits, total reference units)."""
    edits = units = 0
    for e, u in counts:
        edits += e
        units += u
    return edits, units
