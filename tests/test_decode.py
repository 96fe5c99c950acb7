"""Greedy and beam CTC decoding on hand-built score matrices with known best paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspeech.decoding.decoders import (
    BeamDecoder,
    DecoderConfig,
    GreedyDecoder,
    beam_decode,
    beam_decode_batch,
    greedy_decode,
    greedy_decode_batch,
    looks_like_probabilities,
    make_decoder,
    to_log_probs,
)
from deepspeech.decoding.lm import build_kneser_ney
from deepspeech.errors import ConfigError, LanguageModelError
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


# Beam search. Frames are written as characters ("_" is blank) or {char: probability} dicts;
# what a frame does not name shares the rest of its probability mass.


def frames(*spec: str | dict[str, float], confidence: float = 0.98) -> np.ndarray:
    """(n_frames, n_classes) probabilities, like the ONNX model's softmax output."""
    rows = []
    for frame in spec:
        wanted = frame if isinstance(frame, dict) else {frame: confidence}
        row = np.zeros(ALPHABET.num_classes)
        for char, probability in wanted.items():
            row[BLANK if char == "_" else ALPHABET.label_of(char)] = probability
        rest = row == 0
        row[rest] = (1 - row.sum()) / rest.sum()
        rows.append(row)
    return np.array(rows, dtype=np.float32)


def spell(text: str) -> list[str]:
    """Each character for one frame then a blank, as a CTC model emits."""
    return [frame for char in text for frame in (char, "_")]


LM_TEXT = ["the cat sat", "the cat ran", "a cat sat on the mat", "the dog sat", "the cat"]


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_kneser_ney(LM_TEXT, order=3).write_arpa(path)
    return path


def test_logits_and_probabilities_become_log_probabilities() -> None:
    logits = np.random.default_rng(0).normal(size=(5, ALPHABET.num_classes)).astype(np.float32)
    log_probs = to_log_probs(logits)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1, rtol=1e-5)
    assert log_probs.dtype == np.float32 and log_probs.flags.c_contiguous
    probabilities = np.exp(log_probs)
    assert looks_like_probabilities(probabilities) and not looks_like_probabilities(logits)
    np.testing.assert_allclose(to_log_probs(probabilities), log_probs, atol=1e-5)
    np.testing.assert_allclose(to_log_probs(log_probs), log_probs, atol=1e-5)  # idempotent
    with pytest.raises(ValueError, match="kind"):
        to_log_probs(logits, kind="softmax")  # type: ignore[arg-type]


def test_beam_without_lm_agrees_with_greedy_on_clear_paths() -> None:
    scores = frames(*spell("hello world"))
    assert beam_decode(scores, ALPHABET) == greedy_decode(scores, ALPHABET) == "hello world"


def test_beam_keeps_blank_separated_double_letters() -> None:
    scores = frames("l", "l", "_", "l", "_", " ", "o", "o", "_")
    assert beam_decode(scores, ALPHABET) == "ll o"


def test_beam_sums_alignments_where_width_one_cannot() -> None:
    # Best path is blank-blank (0.36), but "a" has three alignments: 0.16 + 0.24 + 0.24.
    scores = frames({"_": 0.6, "a": 0.4 - 1e-6}, {"_": 0.6, "a": 0.4 - 1e-6})
    assert greedy_decode(scores, ALPHABET) == ""
    assert beam_decode(scores, ALPHABET, beam_width=1) == ""
    assert beam_decode(scores, ALPHABET, beam_width=8) == "a"


def test_lm_turns_a_non_word_into_the_known_word(lm_path: Path) -> None:
    scores = frames(*spell("the "), {"k": 0.55, "c": 0.44}, "_", *spell("at sat"))
    assert greedy_decode(scores, ALPHABET) == "the kat sat"
    assert beam_decode(scores, ALPHABET) == "the kat sat"  # no LM: the acoustics rule
    assert beam_decode(scores, ALPHABET, lm=lm_path) == "the cat sat"


def test_lm_orders_words_it_has_seen(lm_path: Path) -> None:
    # "cat" and "sat" sound alike here; the trigram model knows "the cat sat".
    ambiguous = {"c": 0.45, "s": 0.54}
    scores = frames(*spell("the "), ambiguous, "_", *spell("at "), ambiguous, "_", *spell("at"))
    assert greedy_decode(scores, ALPHABET) == "the sat sat"
    assert beam_decode(scores, ALPHABET, lm=lm_path) == "the cat sat"


def test_unseen_words_stay_possible_without_a_lexicon(lm_path: Path) -> None:
    scores = frames(*spell("the zebra sat"))
    assert beam_decode(scores, ALPHABET, lm=lm_path) == "the zebra sat"


def test_unknown_words_pay_for_their_letters(lm_path: Path) -> None:
    # The space is weak (blank wins it), so greedy glues "thecat". Were an unknown word's
    # cost independent of its length, gluing known words into one would pay.
    scores = frames(*spell("the"), {"_": 0.55, " ": 0.44}, *spell("cat sat"))
    assert greedy_decode(scores, ALPHABET) == "thecat sat"
    assert beam_decode(scores, ALPHABET, lm=lm_path) == "the cat sat"


def test_unknown_word_offset_trades_unseen_words_for_known_ones(lm_path: Path) -> None:
    def decode(text: str, unk_offset: float) -> str:
        config = DecoderConfig(decoder="beam", lm_path=lm_path, unk_offset=unk_offset)
        return make_decoder(config, ALPHABET)(frames(*spell(text)))

    assert decode("the zebra sat", 0.0) == "the zebra sat"
    assert "zebra" not in decode("the zebra sat", -10.0)
    assert decode("the cats sat", 0.0) == "the cat sat"  # one letter from a likely word


def test_lm_weight_zero_is_acoustics_only(lm_path: Path) -> None:
    scores = frames(*spell("the "), {"k": 0.55, "c": 0.44}, "_", *spell("at sat"))
    assert beam_decode(scores, ALPHABET, lm=lm_path, alpha=0.0, beta=0.0) == "the kat sat"


def test_beam_reads_only_the_valid_frames(lm_path: Path) -> None:
    scores = frames(*spell("the cat"), *spell(" ran"))
    assert beam_decode(scores, ALPHABET, length=14) == "the cat"
    batch = np.stack([scores, frames(*spell("the dog sat"))])  # both 22 frames
    texts = beam_decode_batch(batch, [14, 22], ALPHABET, lm=lm_path)
    assert texts == ["the cat", "the dog sat"]
    assert beam_decode(scores, ALPHABET, length=0) == ""


def test_beam_accepts_logits_as_well_as_probabilities(lm_path: Path) -> None:
    probabilities = frames(*spell("the "), {"k": 0.55, "c": 0.44}, "_", *spell("at sat"))
    logits = np.log(probabilities) + 3.0  # any offset: softmax gives back the probabilities
    decoder = BeamDecoder(ALPHABET, lm=lm_path)
    assert decoder(logits) == decoder(probabilities) == "the cat sat"
    assert BeamDecoder(ALPHABET, lm=lm_path, kind="logits")(np.log(probabilities)) == (
        "the cat sat"
    )


def test_make_decoder_builds_what_the_config_says(lm_path: Path) -> None:
    scores = frames(*spell("the "), {"k": 0.55, "c": 0.44}, "_", *spell("at sat"))
    greedy = make_decoder(DecoderConfig(), ALPHABET)
    beam = make_decoder(DecoderConfig(decoder="beam", lm_path=lm_path), ALPHABET)
    assert isinstance(greedy, GreedyDecoder) and isinstance(beam, BeamDecoder)
    assert greedy(scores) == "the kat sat" and beam(scores) == "the cat sat"
    assert beam(scores, 8) == "the"
    assert greedy.decode_batch(scores[None], [8]) == ["the "]  # greedy keeps edge spaces
    assert beam.decode_batch(scores[None], [8]) == ["the"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"decoder": "viterbi"}, "decoder 'viterbi' is unknown"),
        ({"decoder": "beam", "beam_width": 0}, "beam width 0"),
        ({"lm_path": Path("lm.arpa")}, "needs the beam decoder"),
        ({"decoder": "beam", "token_beam": 0}, "token beam 0"),
        ({"decoder": "beam", "unk_offset": 1.0}, "must be 0 or negative"),
    ],
)
def test_decoder_config_refuses_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DecoderConfig(**settings)


def test_lm_needs_a_space_to_find_words(lm_path: Path) -> None:
    with pytest.raises(LanguageModelError, match="space"):
        BeamDecoder(Alphabet(tuple("abc")), lm=lm_path)
    with pytest.raises(LanguageModelError, match="cannot read"):
        make_decoder(DecoderConfig(decoder="beam", lm_path=lm_path.parent / "no.arpa"), ALPHABET)


def test_beam_refuses_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="does not match"):
        beam_decode(np.zeros((3, 5)), ALPHABET)


def test_greedy_stream_decoder_equals_greedy_decode_for_any_chunking() -> None:
    """Repeats merge across chunk boundaries; a blank between them keeps double letters."""
    from deepspeech.decoding.streaming import GreedyStreamDecoder

    alphabet = Alphabet.default()
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 1, 2, alphabet.blank_index], size=200)
    scores = np.eye(alphabet.num_classes, dtype=np.float32)[labels]
    expected = greedy_decode(scores, alphabet)
    for chunk in (1, 2, 3, 7, 200):
        decoder = GreedyStreamDecoder(alphabet)
        for i in range(0, len(scores), chunk):
            decoder.accept(scores[i : i + chunk])
            assert expected.startswith(decoder.text())
        decoder.accept(scores[:0])
        assert decoder.text() == expected
