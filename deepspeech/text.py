"""Text side of the pipeline: the alphabet, text <-> label ids, CTC sparse tuples, WER/CER.

The counterpart of DeepSpeech 2017 `util/text.py`. Importers normalise corpus transcripts into
the alphabet here, training encodes them to label ids, decoding maps ids back, and reports score
them with the same edit distances, so every stage agrees on what a "character" and a "word" are.
The server imports this module too: NumPy only, no TensorFlow import.
"""

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import Levenshtein

from deepspeech.errors import AlphabetError

DEFAULT_LABELS = (" ", *"abcdefghijklmnopqrstuvwxyz", "'")  # 28 labels; CTC blank is label 28
COMMENT_PREFIX = "#"  # alphabet file lines starting with this are comments
ESCAPED_HASH = "\\#"  # an alphabet file line that stands for the "#" character (2017 format)

# Characters NFKD leaves alone that still have an obvious ASCII spelling.
_FOLDING = {
    "\u2019": "'",  # right single quotation mark, the usual typographic apostrophe
    "\u2018": "'",  # left single quotation mark
    "\u02bc": "'",  # modifier letter apostrophe
    "\u2032": "'",  # prime
    "`": "'",
    "\u00b4": "'",  # acute accent used as an apostrophe
    "æ": "ae",
    "œ": "oe",
    "ß": "ss",
    "ø": "o",
    "đ": "d",
    "ð": "d",
    "ł": "l",
    "þ": "th",
    "ı": "i",
}
# Characters that separate words ("co-operate", "and/or"), as opposed to punctuation to drop.
_SEPARATORS = frozenset("/\\\u2044\u2215\u2212")  # slashes, minus; also dashes (Pd), whitespace


@dataclass(frozen=True)
class Alphabet:
    """The characters a model can emit, one label id each; the CTC blank comes after them.

    Labels are ids `0 .. len(alphabet) - 1`; the blank is `blank_index == len(alphabet)`, so
    the model's output layer has `num_classes == len(alphabet) + 1` units, as in 2017. Equality
    and hashing go by the labels, so two alphabets read from different files compare equal when
    they would produce the same model.
    """

    labels: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if not labels:
            raise AlphabetError("alphabet is empty; it needs at least one character")
        index: dict[str, int] = {}
        for label, char in enumerate(labels):
            _check_label_char(char, where=f"label {label}")
            if char in index:
                raise AlphabetError(
                    f"label {label}: {char!r} is already label {index[char]}; remove the duplicate"
                )
            index[char] = label
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_index", index)

    @classmethod
    def default(cls) -> "Alphabet":
        """English as DeepSpeech 2017 shipped it: space, a-z, apostrophe (28 labels)."""
        return cls(DEFAULT_LABELS)

    @classmethod
    def from_file(cls, path: Path | str) -> "Alphabet":
        """Read a 2017 `alphabet.txt` so models trained with a custom alphabet keep their ids.

        One character per line, label ids in line order. Lines starting with `#` are comments,
        a line `\\#` is the `#` character, a line holding one space is the space character.
        Errors name the file and line, since a bad line would silently shift every later id.
        """
        path = Path(path)
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise AlphabetError(f"{path}: not UTF-8 text ({e}); save it as UTF-8") from e
        lines = content.split("\n")
        if lines[-1] == "":
            lines.pop()  # the newline ending the last line does not start another line
        chars: list[str] = []
        first_line: dict[str, int] = {}
        for lineno, raw in enumerate(lines, start=1):
            line = raw.removesuffix("\r")
            if line == ESCAPED_HASH:
                line = COMMENT_PREFIX
            elif line.startswith(COMMENT_PREFIX):
                continue
            try:
                _check_label_char(line, where=f"{path}:{lineno}")
            except AlphabetError as e:
                raise AlphabetError(f"{e}; write exactly one character per line") from None
            if line in first_line:
                raise AlphabetError(
                    f"{path}:{lineno}: {line!r} already appears on line {first_line[line]}; "
                    "remove the duplicate"
                )
            first_line[line] = lineno
            chars.append(line)
        if not chars:
            raise AlphabetError(f"{path}: no characters, only comments; list one per line")
        return cls(tuple(chars))

    def to_file(self, path: Path | str) -> None:
        """Write the alphabet so `from_file` (and 2017 DeepSpeech) read back the same ids."""
        lines = ["# One character per line; the line number (minus comments) is its label id."]
        lines += [ESCAPED_HASH if char == COMMENT_PREFIX else char for char in self.labels]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def blank_index(self) -> int:
        """The CTC blank label: one past the last character, as TensorFlow's CTC ops expect."""
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        """Units in the model's output layer: every character plus the blank."""
        return len(self.labels) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def label_of(self, char: str) -> int:
        """The id of one character; strict, because a wrong id silently corrupts training."""
        try:
            return self._index[char]
        except KeyError:
            raise AlphabetError(f"{char!r} is not in the alphabet {self._show()}") from None

    def char_of(self, label: int) -> str:
        """The character for one id; the blank has none, so asking for it is an error."""
        if label == self.blank_index:
            raise AlphabetError(f"label {label} is the CTC blank, which has no character")
        if not 0 <= label < len(self.labels):
            raise AlphabetError(self._bad_label_message(label))
        return self.labels[label]

    def encode(self, text: str) -> np.ndarray:
        """Text -> label ids, shape (len(text),) int32; strict, use `normalize_text` first.

        Raises instead of dropping characters, so a transcript that would train the model on
        something other than what was said is caught where it enters.
        """
        try:
            return np.fromiter(
                (self._index[char] for char in text), dtype=np.int32, count=len(text)
            )
        except KeyError:
            unknown = "".join(sorted(self.unknown_chars(text)))
            raise AlphabetError(
                f"characters {unknown!r} are not in the alphabet {self._show()}, in text "
                f"{text!r}; normalise the text or add them to the alphabet"
            ) from None

    def decode(self, labels: Iterable[int] | np.ndarray) -> str:
        """Label ids, shape (n,), -> text. Blanks are skipped; repeats are kept.

        Collapsing CTC repeats is the decoder's job (it must happen before blanks are removed),
        so this maps ids one to one and can also turn target sequences back into text.
        """
        ids = np.asarray(labels if isinstance(labels, np.ndarray) else list(labels))
        ids = ids.astype(np.int64).reshape(-1)
        bad = (ids < 0) | (ids > self.blank_index)
        if bad.any():
            raise AlphabetError(self._bad_label_message(int(ids[bad][0])))
        chars = (*self.labels, "")  # the blank decodes to nothing
        return "".join([chars[i] for i in ids.tolist()])

    def unknown_chars(self, text: str) -> set[str]:
        """The characters of `text` this alphabet cannot encode, for error messages and checks."""
        return set(text) - self._index.keys()

    def _show(self) -> str:
        return repr("".join(self.labels))

    def _bad_label_message(self, label: int) -> str:
        return (
            f"label {label} is outside the alphabet {self._show()} (ids 0..{len(self) - 1}, blank "
            f"{self.blank_index}); was the model trained with a different alphabet?"
        )


def _check_label_char(char: str, where: str) -> None:
    """Reject labels that are not one character or that no alphabet file could hold."""
    if len(char) != 1:
        raise AlphabetError(f"{where}: {char!r} is {len(char)} characters, expected 1")
    if char in "\n\r":
        raise AlphabetError(f"{where}: a line break cannot be an alphabet character")


def normalize_text(text: str, alphabet: Alphabet | None = None) -> str:
    """Map a corpus transcript into the alphabet, the way importers prepare manifests.

    Characters the alphabet has are kept. Others are lower-cased and folded to ASCII (accents
    removed, ’ -> ', æ -> ae, ß -> ss); dashes, slashes and whitespace become spaces; the rest
    (punctuation, digits, symbols) is dropped. Whitespace runs collapse to one space and the
    ends are stripped. "Héllo, World!" -> "hello world"; "co-operate" -> "co operate".
    Digits are dropped, not spelled out: say so in the corpus notes if that matters.
    """
    table = _folding_table(alphabet or Alphabet.default())
    # NFC first, so a decomposed "é" (e + combining accent) is kept when the alphabet has "é".
    return " ".join(unicodedata.normalize("NFC", text).translate(table).split())


class _FoldingTable(dict[int, str]):
    """A `str.translate` table that works out each character's folding the first time it is seen."""

    def __init__(self, alphabet: Alphabet) -> None:
        super().__init__()
        self.alphabet = alphabet

    def __missing__(self, codepoint: int) -> str:
        folded = _fold_char(chr(codepoint), self.alphabet)
        self[codepoint] = folded
        return folded


@functools.lru_cache(maxsize=16)
def _folding_table(alphabet: Alphabet) -> _FoldingTable:
    return _FoldingTable(alphabet)


def _fold_char(char: str, alphabet: Alphabet) -> str:
    """One input character -> what it becomes in the alphabet ("" when it is dropped)."""
    if char in alphabet:
        return char
    lowered = char.lower()
    if lowered in alphabet:
        return lowered
    space = " " if " " in alphabet else ""
    # Fold before NFKD as well: NFKD would turn "´" into a space plus a combining accent.
    decomposed = unicodedata.normalize("NFKD", _FOLDING.get(lowered, lowered)).lower()
    pieces = []
    for piece in decomposed:
        for c in _FOLDING.get(piece, piece):
            if c in alphabet:
                pieces.append(c)
            elif c.isspace() or c in _SEPARATORS or unicodedata.category(c) == "Pd":
                pieces.append(space)
    return "".join(pieces)


def text_to_char_array(original: str, alphabet: Alphabet) -> np.ndarray:
    """Transcript -> label ids, shape (n,) int32: unsupported characters removed, then mapped.

    The 2017 name; it normalises first, so it never fails on punctuation or case. Use
    `alphabet.encode` where unknown characters should be an error instead.
    """
    return alphabet.encode(normalize_text(original, alphabet))


def labels_to_text(labels: Iterable[int] | np.ndarray, alphabet: Alphabet) -> str:
    """Label ids, shape (n,), -> text, skipping blanks; see `Alphabet.decode`."""
    return alphabet.decode(labels)


def sparse_tuple_from(
    sequences: Sequence[Sequence[int] | np.ndarray], dtype: npt.DTypeLike = np.int32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label sequences -> the (indices, values, dense_shape) triple of a `tf.SparseTensor`.

    CTC losses and decoders take targets in sparse form because the sequences differ in length.
    Returns indices int64 (N, 2) as (row, position) in row-major order, values `dtype` (N,), and
    dense_shape int64 [n_sequences, longest length] (0 when there is no label at all), where N
    is the total number of labels. Empty sequences are rows with no entries.
    """
    sequences = list(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(total, dtype=np.int64) - starts
    indices = np.stack([rows, positions], axis=1)  # (N, 2)
    values = np.zeros(0, dtype=dtype)
    if total:
        values = np.concatenate([np.asarray(s, dtype=dtype).reshape(-1) for s in sequences])
    max_len = int(lengths.max()) if len(sequences) else 0
    shape = np.array([len(sequences), max_len], dtype=np.int64)
    return indices, values, shape


def sparse_tensor_value_to_texts(value: Any, alphabet: Alphabet) -> list[str]:
    """A sparse batch of label sequences -> one text per row of dense_shape[0], blanks skipped.

    `value` is anything with `.indices` (N, 2), `.values` (N,) and `.dense_shape` (2,) — a
    `tf.SparseTensor` (eager), a `tf.compat.v1.SparseTensorValue` — or an (indices, values,
    dense_shape) tuple such as `sparse_tuple_from` returns. Duck-typed so serving and reports
    can use it without importing TensorFlow. Rows with no entries give "".
    """
    if all(hasattr(value, name) for name in ("indices", "values", "dense_shape")):
        parts = (value.indices, value.values, value.dense_shape)
    elif isinstance(value, tuple) and len(value) == 3:
        parts = value
    else:
        raise TypeError(
            f"expected a sparse tensor or an (indices, values, dense_shape) tuple, got "
            f"{type(value).__name__}"
        )
    indices, values, shape = (np.asarray(p.numpy() if hasattr(p, "numpy") else p) for p in parts)
    indices = indices.astype(np.int64).reshape(-1, 2)
    values = values.reshape(-1)
    n_rows = int(shape[0])
    if len(indices) != len(values):
        raise ValueError(f"{len(indices)} indices but {len(values)} values in sparse tensor")
    if len(indices) and (indices[:, 0].min() < 0 or indices[:, 0].max() >= n_rows):
        raise ValueError(f"sparse tensor has a row index outside dense_shape[0] = {n_rows}")
    order = np.lexsort((indices[:, 1], indices[:, 0]))  # row-major, whatever the input order
    counts = np.bincount(indices[:, 0], minlength=n_rows)  # (n_rows,) labels per row
    ends = np.cumsum(counts)
    starts = ends - counts
    values = values[order]
    return [alphabet.decode(values[start:end]) for start, end in zip(starts, ends, strict=True)]


def word_errors(original: str, result: str) -> tuple[int, int]:
    """(word-level Levenshtein distance, words in `original`), the numbers WER is made of.

    Words are `str.split()` tokens, so whitespace runs never create empty words. Reports sum
    both over a corpus to get the corpus WER (total edits / total reference words).
    """
    reference, hypothesis = original.split(), result.split()
    # Give words exact integer ids: rapidfuzz would otherwise compare words by hash().
    vocabulary: dict[str, int] = {}
    ref_ids = [vocabulary.setdefault(word, len(vocabulary)) for word in reference]
    hyp_ids = [vocabulary.setdefault(word, len(vocabulary)) for word in hypothesis]
    return Levenshtein.distance(ref_ids, hyp_ids), len(reference)


def char_errors(original: str, result: str) -> tuple[int, int]:
    """(character-level Levenshtein distance, characters in `original`), for CER.

    Whitespace runs count as one space and the ends are stripped first, so formatting
    differences that `word_errors` ignores are not charged as character errors either.
    """
    reference, hypothesis = " ".join(original.split()), " ".join(result.split())
    return Levenshtein.distance(reference, hypothesis), len(reference)


def wer(original: str, result: str) -> float:
    """Word error rate: word-level edit distance / number of words in `original`.

    When `original` has N words and `result` N totally different ones (one edit each), the WER
    is N / N = 1; an extra inserted word can push it above 1. For an empty `original` we divide
    by 1 instead of 0: the WER is 0.0 if `result` is empty too, else its word count.
    """
    edits, n_words = word_errors(original, result)
    return edits / max(n_words, 1)


def cer(original: str, result: str) -> float:
    """Character error rate: character edit distance / characters in `original` (see `wer`).

    Whitespace runs collapse to one space and the ends are stripped first. For an empty
    `original` we divide by 1: 0.0 if `result` is empty too, else its character count.
    """
    edits, n_chars = char_errors(original, result)
    return edits / max(n_chars, 1)
