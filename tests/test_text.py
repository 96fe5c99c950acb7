"""Tests for deepspeech/text.py: alphabet, normalisation, sparse tuples, WER/CER."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepspeech.errors import AlphabetError, DeepSpeechError
from deepspeech.text import (
    Alphabet,
    cer,
    char_errors,
    labels_to_text,
    normalize_text,
    sparse_tensor_value_to_texts,
    sparse_tuple_from,
    text_to_char_array,
    wer,
    word_errors,
)

ALPHABET = Alphabet.default()
alphabet_text = st.text(alphabet=ALPHABET.labels, max_size=60)
# Words from a tiny vocabulary so that random sentences share words and edits are interesting.
sentences = st.lists(st.sampled_from(["a", "b", "cat", "dog", "it's"]), max_size=12).map(" ".join)
label_sequences = st.lists(
    st.lists(st.integers(0, len(ALPHABET) - 1), max_size=15).map(np.asarray), max_size=8
)


def levenshtein(reference: list, hypothesis: list) -> int:
    """Independent textbook dynamic programme, the oracle for the rapidfuzz-based code."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_item != hyp_item),
                )
            )
        previous = current
    return previous[-1]


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "alphabet.txt"
    path.write_text(content, encoding="utf-8")
    return path


# Alphabet


def test_default_alphabet_is_space_letters_apostrophe_with_blank_last() -> None:
    assert ALPHABET.labels == (" ", *"abcdefghijklmnopqrstuvwxyz", "'")
    assert len(ALPHABET) == 28
    assert ALPHABET.blank_index == 28
    assert ALPHABET.num_classes == 29
    assert ALPHABET.label_of(" ") == 0
    assert ALPHABET.label_of("a") == 1
    assert ALPHABET.label_of("'") == 27
    assert ALPHABET.char_of(26) == "z"
    assert "q" in ALPHABET
    assert "Q" not in ALPHABET
    assert 3 not in ALPHABET


def test_alphabet_is_immutable_and_compares_by_labels() -> None:
    other = Alphabet(list(ALPHABET.labels))
    assert other == ALPHABET
    assert hash(other) == hash(ALPHABET)
    assert Alphabet(("a", "b")) != Alphabet(("b", "a"))
    with pytest.raises(AttributeError):
        ALPHABET.labels = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("labels", "message"),
    [((), "empty"), (("a", "bc"), "'bc' is 2 characters"), (("a", "b", "a"), "already label 0")],
)
def test_alphabet_constructor_rejects_bad_labels(labels: tuple, message: str) -> None:
    with pytest.raises(AlphabetError, match=message):
        Alphabet(labels)


def test_from_file_reads_2017_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# Each line is one character.\n \na\n# a comment between labels\nb\n\\#\né\n'\n",
    )
    alphabet = Alphabet.from_file(path)
    assert alphabet.labels == (" ", "a", "b", "#", "é", "'")
    assert alphabet.blank_index == 6


def test_from_file_accepts_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "alphabet.txt"
    path.write_bytes(b"# comment\r\n \r\na\r\nb")
    assert Alphabet.from_file(path).labels == (" ", "a", "b")


def test_alphabet_file_round_trip(tmp_path: Path) -> None:
    alphabet = Alphabet((" ", "#", "a", "\\", "ü"))
    path = tmp_path / "out.txt"
    alphabet.to_file(path)
    assert Alphabet.from_file(path) == alphabet
    ALPHABET.to_file(path)
    assert Alphabet.from_file(path) == ALPHABET


@pytest.mark.parametrize(
    ("content", "lineno", "message"),
    [
        ("# header\na\nb\na\n", 4, "already appears on line 2"),
        ("a\nab\n", 2, "'ab' is 2 characters"),
        ("a\n\nb\n", 2, "'' is 0 characters"),
        ("a\n  \n", 2, "'  ' is 2 characters"),
    ],
)
def test_from_file_rejects_bad_lines_with_file_and_line(
    tmp_path: Path, content: str, lineno: int, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(AlphabetError, match=message) as info:
        Alphabet.from_file(path)
    assert f"{path}:{lineno}:" in str(info.value)
    assert isinstance(info.value, DeepSpeechError)


def test_from_file_rejects_empty_alphabet(tmp_path: Path) -> None:
    path = write(tmp_path, "# only\n# comments\n")
    with pytest.raises(AlphabetError, match="no characters") as info:
        Alphabet.from_file(path)
    assert str(path) in str(info.value)


def test_from_file_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "alphabet.txt"
    path.write_bytes(b"a\n\xff\n")
    with pytest.raises(AlphabetError, match="not UTF-8"):
        Alphabet.from_file(path)


@given(alphabet_text)
def test_encode_decode_round_trip(text: str) -> None:
    labels = ALPHABET.encode(text)
    assert labels.dtype == np.int32
    assert labels.shape == (len(text),)
    assert ALPHABET.decode(labels) == text
    assert labels_to_text(labels.tolist(), ALPHABET) == text


def test_encode_rejects_unknown_characters_naming_them_and_the_text() -> None:
    with pytest.raises(AlphabetError) as info:
        ALPHABET.encode("Hello, world!")
    message = str(info.value)
    assert "'!,H'" in message  # every unknown character, sorted
    assert "'Hello, world!'" in message
    assert ALPHABET.unknown_chars("Hello, world!") == {"H", ",", "!"}
    assert ALPHABET.unknown_chars("hello") == set()


def test_label_lookups_are_strict() -> None:
    with pytest.raises(AlphabetError, match="'7' is not in the alphabet"):
        ALPHABET.label_of("7")
    with pytest.raises(AlphabetError, match="CTC blank"):
        ALPHABET.char_of(28)
    with pytest.raises(AlphabetError, match="label 29 is outside"):
        ALPHABET.char_of(29)
    with pytest.raises(AlphabetError, match="label -1 is outside"):
        ALPHABET.decode([1, -1])


def test_decode_skips_blank_but_keeps_repeats() -> None:
    assert ALPHABET.decode([8, 8, 28, 9, 28]) == "hhi"
    assert ALPHABET.decode(np.array([], dtype=np.int32)) == ""


# Normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Héllo, World!", "hello world"),
        ("rock’n’roll", "rock'n'roll"),
        ("Rock‘n’Roll ʼem", "rock'n'roll 'em"),
        ("co-operate", "co operate"),
        ("well—known – and/or back\\slash", "well known and or back slash"),
        ("naïve café", "naive cafe"),
        ("  many   spaces\there\n ", "many spaces here"),
        ("route 66 in 1999", "route in"),
        ("Æsop’s œuvre, Straße", "aesop's oeuvre strasse"),
        ("ﬁne “quotes” (and) [brackets]?", "fine quotes and brackets"),
        ("", ""),
        ("!!! 123", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_normalize_text_follows_the_alphabet() -> None:
    no_apostrophe = Alphabet((" ", *"abcdefghijklmnopqrstuvwxyz"))
    assert normalize_text("Rock’n’roll isn't", no_apostrophe) == "rocknroll isnt"
    french = Alphabet((" ", *"abcdefghijklmnopqrstuvwxyz", "é", "'", "-"))
    assert normalize_text("Été à l’école, peut-être", french) == "été a l'école peut-etre"
    decomposed = "e\u0301te\u0301"  # "été" typed with combining accents
    assert normalize_text(decomposed, french) == "été"
    assert normalize_text(decomposed) == "ete"
    no_space = Alphabet(tuple("abc"))
    assert normalize_text("a b-c", no_space) == "abc"


@given(st.text(max_size=80))
def test_normalize_text_output_is_encodable_and_stable(text: str) -> None:
    normalized = normalize_text(text)
    assert ALPHABET.unknown_chars(normalized) == set()
    assert normalized == normalized.strip()
    assert "  " not in normalized
    assert normalize_text(normalized) == normalized


def test_text_to_char_array_removes_unsupported_then_maps() -> None:
    labels = text_to_char_array("Hi, Bob!", ALPHABET)
    assert labels.dtype == np.int32
    assert labels.tolist() == [8, 9, 0, 2, 15, 2]


# Sparse tuples


def test_sparse_tuple_from_matches_2017_layout() -> None:
    indices, values, shape = sparse_tuple_from([[1, 2], [], [3, 4, 5]])
    assert indices.dtype == np.int64
    assert indices.tolist() == [[0, 0], [0, 1], [2, 0], [2, 1], [2, 2]]
    assert values.dtype == np.int32
    assert values.tolist() == [1, 2, 3, 4, 5]
    assert shape.dtype == np.int64
    assert shape.tolist() == [3, 3]


def test_sparse_tuple_from_empty_inputs() -> None:
    for sequences, expected_shape in [([], [0, 0]), ([[], []], [2, 0])]:
        indices, values, shape = sparse_tuple_from(sequences, dtype=np.int64)
        assert indices.shape == (0, 2)
        assert values.shape == (0,)
        assert values.dtype == np.int64
        assert shape.tolist() == expected_shape
        assert sparse_tensor_value_to_texts((indices, values, shape), ALPHABET) == [""] * len(
            sequences
        )


@given(label_sequences)
def test_sparse_round_trip(sequences: list[np.ndarray]) -> None:
    indices, values, shape = sparse_tuple_from(sequences)
    assert indices.shape == (len(values), 2)
    assert shape.tolist() == [len(sequences), max((len(s) for s in sequences), default=0)]
    dense = np.full(shape, -1)
    dense[indices[:, 0], indices[:, 1]] = values
    for row, sequence in zip(dense, sequences, strict=True):
        assert row[: len(sequence)].tolist() == sequence.tolist()
    texts = sparse_tensor_value_to_texts((indices, values, shape), ALPHABET)
    assert texts == [ALPHABET.decode(s) for s in sequences]


def test_sparse_tensor_value_to_texts_accepts_any_order_and_skips_blank() -> None:
    indices = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    values = np.array([9, 9, 8, ALPHABET.blank_index])
    assert sparse_tensor_value_to_texts((indices, values, [3, 2]), ALPHABET) == ["hi", "i", ""]


def test_sparse_tensor_value_to_texts_rejects_other_input() -> None:
    with pytest.raises(TypeError, match="expected a sparse tensor"):
        sparse_tensor_value_to_texts([[1, 2]], ALPHABET)
    with pytest.raises(ValueError, match="outside dense_shape"):
        sparse_tensor_value_to_texts(([[2, 0]], [1], [2, 1]), ALPHABET)


def test_sparse_tensor_value_to_texts_with_real_tensorflow() -> None:
    import tensorflow as tf  # a hard dependency, imported here to keep collection light

    texts = ["hello world", "", "it's", "a"]
    indices, values, shape = sparse_tuple_from([ALPHABET.encode(t) for t in texts])
    tensor = tf.SparseTensor(indices, values, shape)
    assert sparse_tensor_value_to_texts(tensor, ALPHABET) == texts
    value = tf.compat.v1.SparseTensorValue(indices, values, shape)
    assert sparse_tensor_value_to_texts(value, ALPHABET) == texts
    dense = tf.sparse.to_dense(tensor, default_value=-1).numpy()
    assert dense.shape == (4, 11)


# WER / CER


def test_wer_2017_example_totally_different_words_is_one() -> None:
    assert wer("the quick brown fox", "a slow red dog") == 1.0
    assert word_errors("the quick brown fox", "a slow red dog") == (4, 4)


def test_wer_and_cer_values() -> None:
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert wer("the cat", "the cat sat on it") == 1.5
    assert cer("abcd", "abed") == 0.25
    assert char_errors("kitten", "sitting") == (3, 6)


def test_whitespace_runs_do_not_count() -> None:
    assert word_errors("  the   cat ", "the cat") == (0, 2)
    assert char_errors("  the   cat ", "the\tcat\n") == (0, 7)
    assert wer("the cat", "the  cat  ") == 0.0
    assert cer("the cat", " the cat") == 0.0


def test_empty_reference_divides_by_one() -> None:
    assert wer("", "") == 0.0
    assert wer("   ", "") == 0.0
    assert cer("", "") == 0.0
    assert wer("", "two words") == 2.0
    assert cer("", "abc") == 3.0
    assert word_errors("", "two words") == (2, 0)
    assert wer("one two", "") == 1.0


@given(sentences, sentences)
def test_edit_counts_match_reference_levenshtein(original: str, result: str) -> None:
    assert word_errors(original, result) == (
        levenshtein(original.split(), result.split()),
        len(original.split()),
    )
    assert char_errors(original, result) == (
        levenshtein(list(original), list(result)),
        len(original),
    )
    n_words = len(original.split())
    assert wer(original, result) == levenshtein(original.split(), result.split()) / max(n_words, 1)


@given(alphabet_text, alphabet_text)
def test_char_errors_match_reference_levenshtein(original: str, result: str) -> None:
    ref, hyp = " ".join(original.split()), " ".join(result.split())
    assert char_errors(original, result) == (levenshtein(list(ref), list(hyp)), len(ref))
    assert cer(original, result) == levenshtein(list(ref), list(hyp)) / max(len(ref), 1)


@given(sentences)
def test_identical_texts_have_no_errors(text: str) -> None:
    assert wer(text, text) == 0.0
    assert cer(text, text) == 0.0


@given(sentences, sentences)
def test_edit_counts_are_symmetric(a: str, b: str) -> None:
    assert word_errors(a, b)[0] == word_errors(b, a)[0]
    assert char_errors(a, b)[0] == char_errors(b, a)[0]


@given(sentences, sentences, sentences)
def test_edit_counts_obey_triangle_inequality(a: str, b: str, c: str) -> None:
    assert word_errors(a, c)[0] <= word_errors(a, b)[0] + word_errors(b, c)[0]
    assert char_errors(a, c)[0] <= char_errors(a, b)[0] + char_errors(b, c)[0]


def test_long_word_sequences_match_reference() -> None:
    words = [f"w{i % 50}" for i in range(300)]
    assert word_errors(" ".join(words), " ".join(reversed(words)))[0] == levenshtein(
        words, words[::-1]
    )
