"""The n-gram LM builder against hand-computed Kneser-Ney numbers, normalisation, KenLM, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from deepspeech.decoding.lm import (
    ARPA_LOG10_ZERO,
    BOS,
    EOS,
    UNK,
    ArpaModel,
    Discounts,
    LanguageModel,
    arpa_vocabulary,
    build_arpa,
    build_kneser_ney,
    load_language_model,
    read_sentences,
)
from deepspeech.errors import LanguageModelError
from deepspeech.text import Alphabet

# A text small enough to smooth by hand (order 3). Every order's counts-of-counts lack
# some t_k, so all orders use the fallback discounts D1 = 1/2, D2 = 1, D3+ = 3/2.
TINY_TEXT = ["a b", "a b a", "b"]  # <s> a b </s> | <s> a b a </s> | <s> b </s>


def tiny_model(tmp_path: Path) -> ArpaModel:
    path = tmp_path / "tiny.arpa"
    build_kneser_ney(TINY_TEXT, order=3).write_arpa(path)
    return ArpaModel.read(path)


def p(model: ArpaModel, word: str, *context: str) -> float:
    return 10 ** model.log10_prob(word, context)


def test_discounts_follow_chen_and_goodman() -> None:
    # t1..t4 = 10, 4, 2, 1: Y = 10 / (10 + 2 * 4) = 5/9
    discounts = Discounts.estimate([10, 4, 2, 1])
    y = Fraction(5, 9)
    assert discounts.estimated
    assert discounts.d1 == pytest.approx(float(1 - 2 * y * Fraction(4, 10)))  # 5/9
    assert discounts.d2 == pytest.approx(float(2 - 3 * y * Fraction(2, 4)))  # 7/6
    assert discounts.d3_plus == pytest.approx(float(3 - 4 * y * Fraction(1, 2)))  # 17/9
    np.testing.assert_allclose(
        discounts.of(np.array([0, 1, 2, 3, 7])), [0, 5 / 9, 7 / 6, 17 / 9, 17 / 9]
    )


def test_discounts_fall_back_when_counts_of_counts_have_gaps() -> None:
    assert Discounts.estimate([5, 2, 0, 1]) == Discounts(0.5, 1.0, 1.5, estimated=False)
    assert Discounts.estimate([0, 0, 0, 0], fallback=(0.4, 0.8, 1.2)).d2 == 0.8


def test_unigrams_use_continuation_counts(tmp_path: Path) -> None:
    model = tiny_model(tmp_path)
    # Continuation counts (distinct left neighbours): a {<s>, b}, b {a, <s>}, </s> {b, a}: 2
    # each, total 6. u(w) = (2 - D2) / 6 = 1/6; the held-out mass b() = 3 * D2 / 6 = 1/2
    # spreads evenly over V = {a, b, </s>, <unk>}.
    assert p(model, "a") == pytest.approx(1 / 6 + 1 / 2 * 1 / 4)  # 7/24
    assert p(model, EOS) == pytest.approx(7 / 24)
    assert p(model, UNK) == pytest.approx(1 / 8)
    assert p(model, "never-seen") == pytest.approx(1 / 8)
    assert model.ngrams[(BOS,)][0] == ARPA_LOG10_ZERO  # <s> is never predicted


def test_bigrams_interpolate_with_unigrams(tmp_path: Path) -> None:
    model = tiny_model(tmp_path)
    # After <s>: a x2, b x1 (raw counts, since nothing precedes <s>); total 3.
    # u(a|<s>) = (2 - 1) / 3, u(b|<s>) = (1 - 1/2) / 3, b(<s>) = (1 + 1/2) / 3 = 1/2.
    assert p(model, "a", BOS) == pytest.approx(1 / 3 + 1 / 2 * 7 / 24)  # 23/48
    assert p(model, "b", BOS) == pytest.approx(1 / 6 + 1 / 2 * 7 / 24)  # 15/48
    assert p(model, EOS, BOS) == pytest.approx(1 / 2 * 7 / 24)  # backed off: 7/48
    # After a: b and </s>, each with continuation count 1 ({<s>} and {b}); b(a) = 1/2.
    assert p(model, "b", "a") == pytest.approx(1 / 4 + 1 / 2 * 7 / 24)  # 19/48
    # After b: </s> has continuation count 2 ({a, <s>}), a has 1; total 3.
    assert p(model, EOS, "b") == pytest.approx(1 / 3 + 1 / 2 * 7 / 24)  # 23/48
    assert p(model, "a", "b") == pytest.approx(1 / 6 + 1 / 2 * 7 / 24)  # 15/48


def test_trigrams_interpolate_and_back_off(tmp_path: Path) -> None:
    model = tiny_model(tmp_path)
    # "<s> a b" seen twice: u = (2 - 1) / 2, b(<s> a) = 1/2.
    assert p(model, "b", BOS, "a") == pytest.approx(1 / 2 + 1 / 2 * 19 / 48)  # 67/96
    # After "a b": </s> and a once each; u = (1 - 1/2) / 2, b(a b) = 1/2.
    assert p(model, EOS, "a", "b") == pytest.approx(1 / 4 + 1 / 2 * 23 / 48)  # 47/96
    assert p(model, "a", "a", "b") == pytest.approx(1 / 4 + 1 / 2 * 15 / 48)  # 39/96
    # Unseen "<s> a a": b(<s> a) * p(a|a), and p(a|a) = b(a) * p(a), as "a a" is unseen too.
    assert p(model, "a", BOS, "a") == pytest.approx(1 / 2 * 1 / 2 * 7 / 24)  # 7/96
    # Unknown word after "a b": b(a b) * b(b) * p(<unk>).
    assert p(model, "zebra", "a", "b") == pytest.approx(1 / 2 * 1 / 2 * 1 / 8)
    # A whole sentence: p(a|<s>) p(b|<s> a) p(</s>|a b).
    expected = math.log10(23 / 48 * 67 / 96 * 47 / 96)
    assert model.log10_sentence("a b") == pytest.approx(expected, abs=1e-6)


def test_arpa_header_counts_and_special_words(tmp_path: Path) -> None:
    path = tmp_path / "tiny.arpa"
    build_kneser_ney(TINY_TEXT, order=3).write_arpa(path)
    text = path.read_text()
    # 1-grams: <unk> <s> </s> a b; 2-grams: <s> a, <s> b, a b, a </s>, b a, b </s>;
    # 3-grams: <s> a b, a b </s>, a b a, b a </s>, <s> b </s>.
    assert "ngram 1=5\nngram 2=6\nngram 3=5\n" in text
    assert text.rstrip().endswith("\\end\\")
    assert sorted(arpa_vocabulary(path)) == sorted([UNK, BOS, EOS, "a", "b"])
    for n, count in ((1, 5), (2, 6), (3, 5)):
        section = text.split(f"\\{n}-grams:\n")[1].split("\n\n")[0]
        assert len(section.splitlines()) == count


def zipf_sentences(n: int, vocabulary: int = 300, seed: int = 0) -> list[str]:
    """Random text with natural-looking counts, so every order estimates its own discounts."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocabulary)]
    return [
        " ".join(words[min(int(k), vocabulary) - 1] for k in rng.zipf(1.3, rng.integers(2, 9)))
        for _ in range(n)
    ]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_sums_to_one(tmp_path: Path, order: int) -> None:
    model = build_kneser_ney(zipf_sentences(3000), order=order)
    if order > 1:
        assert all(t.discounts.estimated for t in model.tables), [t.discounts for t in model.tables]
    path = tmp_path / "zipf.arpa"
    model.write_arpa(path)
    arpa = ArpaModel.read(path)
    vocabulary = arpa.vocabulary
    contexts = [g for g in arpa.ngrams if len(g) < order and g[-1] != EOS]
    rng = np.random.default_rng(1)
    sample = [contexts[i] for i in rng.choice(len(contexts), min(150, len(contexts)), False)]
    for context in [(), *sample, ("w1", "unseen", "w2")[: order - 1]]:
        total = sum(10 ** arpa.log10_prob(w, context) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=2e-5), context


def test_kenlm_scores_like_the_arpa_formulas(tmp_path: Path) -> None:
    path = tmp_path / "zipf.arpa"
    build_kneser_ney(zipf_sentences(2000), order=3).write_arpa(path)
    arpa, kenlm = ArpaModel.read(path), LanguageModel(path)
    for sentence in ["w1 w2 w3", "w1", "w5 never-seen w1 w1 w2", "unknown words only"]:
        # KenLM speaks log10, like the ARPA file: no ln conversion on this side.
        assert kenlm.log10_sentence(sentence) == pytest.approx(
            arpa.log10_sentence(sentence), abs=1e-4
        )
    assert "w1" in kenlm and UNK not in kenlm and "never-seen" not in kenlm
    assert kenlm.starts_word("w1") and kenlm.starts_word("w") and not kenlm.starts_word("x")


def test_build_normalises_text_like_transcripts(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("Hello, World!\n\n  ¡Héllo   there!  \n123\n", encoding="utf-8")
    assert read_sentences(text) == ["hello world", "hello there"]
    summary = build_arpa(text, tmp_path / "lm.arpa", order=2)
    assert (summary.sentences, summary.words, summary.vocabulary) == (2, 4, 3)
    assert summary.ngrams == (6, 5)  # <s> hello, hello world, world </s>, hello there, there </s>
    assert sorted(arpa_vocabulary(tmp_path / "lm.arpa"))[-3:] == ["hello", "there", "world"]


def test_build_keeps_the_alphabets_characters(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text("Ça va\n", encoding="utf-8")
    alphabet = Alphabet((" ", *"abcdefghijklmnopqrstuvwxyz", "ç"))
    assert read_sentences(text, alphabet) == ["ça va"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no words after normalising"),
        ("!!!\n123\n", "no words after normalising"),
    ],
)
def test_unusable_text_is_refused(tmp_path: Path, content: str, message: str) -> None:
    text = tmp_path / "text.txt"
    text.write_text(content)
    with pytest.raises(LanguageModelError, match=message):
        build_arpa(text, tmp_path / "lm.arpa")


def test_bad_build_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LanguageModelError, match="no such file"):
        read_sentences(tmp_path / "missing.txt")
    with pytest.raises(LanguageModelError, match="order 0 is out of range"):
        build_kneser_ney(["a b"], order=0)
    with pytest.raises(LanguageModelError, match="reserves"):
        build_kneser_ney(["a <unk> b"])
    with pytest.raises(LanguageModelError, match="no words"):
        build_kneser_ney(["", "  "])


def test_a_file_that_is_not_arpa_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text("hello world\n")
    with pytest.raises(LanguageModelError, match="not an ARPA language model"):
        LanguageModel(bad)
    with pytest.raises(LanguageModelError, match="cannot read"):
        load_language_model(tmp_path / "missing.arpa")


def test_loaded_models_are_reused_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "lm.arpa"
    build_kneser_ney(["a b"], order=2).write_arpa(path)
    first = load_language_model(path)
    assert load_language_model(str(path)) is first
    build_kneser_ney(["a b", "b c d e"], order=2).write_arpa(path)
    assert load_language_model(path) is not first


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepspeech", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_builds_an_arpa_file_kenlm_loads(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("The cat sat.\nThe dog sat!\nA cat ran\n")
    result = run_cli(
        "lm", "build", "--text", "t.txt", "--order", "3", "--output", "lm.arpa", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "3 sentences" in result.stdout and "3-grams" in result.stdout
    lm = LanguageModel(tmp_path / "lm.arpa")
    assert lm.log10_sentence("the cat sat") > lm.log10_sentence("sat cat the")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "missing.txt"], "missing.txt: no such file"),
        (["--text", "empty.txt"], "empty.txt: no words"),
        (["--text", "t.txt", "--order", "0"], "order 0 is out of range"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "t.txt").write_text("a b\n")
    (tmp_path / "empty.txt").write_text("\n")
    result = run_cli("lm", "build", *args, "--output", "lm.arpa", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "lm.arpa").exists()


def test_decoder_options_make_a_checked_config(tmp_path: Path) -> None:
    from deepspeech.config import build_settings
    from deepspeech.decoding.decoders import DecoderConfig
    from deepspeech.errors import ConfigError

    options = {"decoder": "beam", "beam_width": 16, "lm": tmp_path / "lm.arpa", "alpha": 0.5}
    config = build_settings(DecoderConfig, {**options, "beta": 2.0})
    assert (config.decoder, config.beam_width, config.alpha, config.beta) == ("beam", 16, 0.5, 2.0)
    assert config.lm_path == tmp_path / "lm.arpa"
    with pytest.raises(ConfigError, match="needs the beam decoder"):
        build_settings(DecoderConfig, {**options, "decoder": "greedy"})
