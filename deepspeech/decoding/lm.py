"""Word n-gram language models: build them as ARPA files, read them back, load them for decoding.

The beam decoder scores each word it completes with an n-gram model, as DeepSpeech did with
KenLM. KenLM's builder (`lmplz`) is not installable here (the `kenlm` wheels only query), and
the Python builders on PyPI smooth with one fixed discount (`arpabo`, `kaldingram`; NLTK's
`KneserNeyInterpolated`, which writes no ARPA either), so this module builds the model itself:
interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998) as `lmplz` computes it
(Heafield et al. 2013), with its fallback discounts where counts-of-counts have gaps.

For n-grams of order n with context h and adjusted counts a (raw counts at the highest order
and for n-grams starting with `<s>`; otherwise the number of distinct words seen to the left):

    D1, D2, D3+  = k - (k + 1) Y t_{k+1} / t_k,  Y = t1 / (t1 + 2 t2)     (t_k: n-grams with a = k)
    u(w | h)     = (a(hw) - D(a(hw))) / sum_x a(hx)
    b(h)         = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_x a(hx)
    p(w | h)     = u(w | h) + b(h) p(w | h')          (h' is h without its first word)
    p(w)         = u(w) + b() / |V|                   (V: every word, </s>, <unk>; not <s>)

The ARPA file lists p(w | h) for every n-gram seen and b(h) as the backoff weight of context h,
so backing off reproduces the interpolated model exactly and every context sums to 1 over V.
`<s>` is a context only (log10 probability -99, as in lmplz); `<unk>` gets the uniform share.

Building is vectorised with NumPy: every n-gram gets an integer key, rank(prefix) * |V| + word,
so sorting and counting are `np.unique` and `np.bincount` calls over the whole text at once.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepspeech.errors import LanguageModelError
from deepspeech.text import Alphabet, normalize_text

logger = logging.getLogger(__name__)

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
SPECIAL_WORDS = (UNK, BOS, EOS)  # word ids 0, 1, 2 in a built model
_UNK_ID, _BOS_ID, _EOS_ID = 0, 1, 2
DEFAULT_ORDER = 3
MAX_ORDER = 9  # beyond this the text needed makes no sense for a speech decoder's LM
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback: when counts-of-counts can't
ARPA_LOG10_ZERO = -99.0  # how ARPA files (lmplz, SRILM) write log10(0): <s> is never predicted
LN10 = math.log(10.0)  # ARPA and KenLM speak log10; decoders add natural-log scores

_NGRAM_HEADER = re.compile(r"\\(\d+)-grams:")
_COUNT_LINE = re.compile(r"ngram (\d+)\s*=\s*(\d+)")


@dataclass(frozen=True)
class Discounts:
    """The three modified Kneser-Ney discounts of one order: for counts 1, 2 and 3 or more."""

    d1: float
    d2: float
    d3_plus: float
    estimated: bool  # False when the counts-of-counts could not give them and fallbacks are used

    @classmethod
    def estimate(
        cls, counts_of_counts: Sequence[int], fallback: Sequence[float] = FALLBACK_DISCOUNTS
    ) -> Discounts:
        """Chen & Goodman's estimate from t1..t4 (how many n-grams occur 1, 2, 3, 4 times).

        Small texts can leave some t_k at 0, which makes a discount undefined or outside
        [0, k]; then the whole order uses `fallback`, as lmplz does with --discount_fallback.
        """
        t = [float(c) for c in counts_of_counts]
        if len(t) != 4:
            raise ValueError(f"need counts-of-counts t1..t4, got {len(t)} values")
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.float64(t[0]) / (t[0] + 2 * t[1])
            values = [k - (k + 1) * y * np.float64(t[k]) / t[k - 1] for k in (1, 2, 3)]
        if all(np.isfinite(d) and 0 <= d <= k for k, d in zip((1, 2, 3), values, strict=True)):
            return cls(*(float(d) for d in values), estimated=True)
        return cls(*(float(d) for d in fallback), estimated=False)

    def of(self, counts: np.ndarray) -> np.ndarray:
        """The discount for each adjusted count, shape as `counts` (0 for count 0)."""
        table = np.array([0.0, self.d1, self.d2, self.d3_plus])
        return table[np.minimum(counts, 3).astype(np.int64)]


@dataclass(frozen=True)
class NgramTable:
    """All n-grams of one order, sorted by word ids (lexicographically).

    `words` (n_ngrams, order) int64 ids into the model's vocabulary; `probability` p(w | h);
    `backoff` b(h) for the n-gram as a context of the next order, NaN where it is no
    context (nothing follows it, or it is of the highest order).
    """

    words: np.ndarray
    probability: np.ndarray
    backoff: np.ndarray
    discounts: Discounts


@dataclass(frozen=True)
class KneserNeyModel:
    """An interpolated modified Kneser-Ney model; `tables[n - 1]` holds the n-grams."""

    vocabulary: tuple[str, ...]  # id -> word; ids 0, 1, 2 are <unk>, <s>, </s>
    tables: tuple[NgramTable, ...]

    @property
    def order(self) -> int:
        return len(self.tables)

    def write_arpa(self, path: Path) -> None:
        """Write the model as an ARPA file: log10 p, the words, log10 backoff where it is one."""
        words = np.array(self.vocabulary, dtype=object)
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            out.write("\n\\data\\\n")
            for n, table in enumerate(self.tables, start=1):
                out.write(f"ngram {n}={len(table.words)}\n")
            for n, table in enumerate(self.tables, start=1):
                out.write(f"\n\\{n}-grams:\n")
                with np.errstate(divide="ignore"):
                    log_p = np.where(
                        table.probability > 0, np.log10(table.probability), ARPA_LOG10_ZERO
                    )
                    log_b = np.log10(table.backoff)
                texts = [" ".join(row) for row in words[table.words].tolist()]
                lines = [
                    f"{p:.7g}\t{text}\n" if math.isnan(b) else f"{p:.7g}\t{text}\t{b:.7g}\n"
                    for p, text, b in zip(log_p.tolist(), texts, log_b.tolist(), strict=True)
                ]
                out.writelines(lines)
            out.write("\n\\end\\\n")


@dataclass(frozen=True)
class BuildSummary:
    """What `build_arpa` did, for the CLI to report."""

    text_path: Path
    output_path: Path
    sentences: int
    words: int
    vocabulary: int  # distinct words, without <s>, </s>, <unk>
    ngrams: tuple[int, ...]  # per order, as in the ARPA header
    discounts: tuple[Discounts, ...]
    seconds: float


def read_sentences(path: Path, alphabet: Alphabet | None = None) -> list[str]:
    """The LM training text: one sentence a line, normalised like manifest transcripts.

    Normalising with the acoustic model's alphabet (`normalize_text`) makes the LM's words
    the ones the decoder can spell; lines that normalise to nothing are skipped.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as lines:
            sentences = [normalize_text(line, alphabet) for line in lines]
    except FileNotFoundError:
        raise LanguageModelError(
            f"{path}: no such file; give a text file, one sentence a line"
        ) from None
    except IsADirectoryError:
        raise LanguageModelError(
            f"{path}: is a folder; give a text file, one sentence a line"
        ) from None
    except UnicodeDecodeError as e:
        raise LanguageModelError(f"{path}: not UTF-8 text ({e}); save it as UTF-8") from e
    sentences = [s for s in sentences if s]
    if not sentences:
        raise LanguageModelError(
            f"{path}: no words after normalising to the alphabet; give text, one sentence a line"
        )
    return sentences


def build_kneser_ney(
    sentences: Iterable[str],
    order: int = DEFAULT_ORDER,
    *,
    discount_fallback: Sequence[float] = FALLBACK_DISCOUNTS,
) -> KneserNeyModel:
    """Count the n-grams of `sentences` (space-separated words) and smooth them.

    Each sentence is wrapped in `<s>` ... `</s>`. The result holds every n-gram seen, for
    orders 1..`order`, with interpolated probabilities and backoff weights (module docstring).
    """
    check_order(order)
    vocabulary, sequence = _encode_sentences(sentences)
    counts = _count_ngrams(sequence, order, len(vocabulary))
    tables = _smooth(counts, _adjusted_counts(counts), discount_fallback)
    return KneserNeyModel(tuple(vocabulary), tuple(tables))


@dataclass(frozen=True)
class _NgramCounts:
    """The n-grams of a text; each list holds one array per order n, at index n - 1.

    Every n-gram has an integer key, rank(its first n - 1 words) * size + its last word, and
    its rank is its position in the sorted keys of its order.
    """

    size: int  # vocabulary size, <s>, </s> and <unk> included
    rank_at: list[np.ndarray]  # (n_tokens,) rank of the n-gram starting there, -1 if none fits
    raw: list[np.ndarray]  # (n_ngrams,) how often each n-gram occurs
    starts: list[np.ndarray]  # (n_ngrams,) one text position where each n-gram starts
    keys: list[np.ndarray]  # (n_ngrams,) the sorted keys
    words: list[np.ndarray]  # (n_ngrams, n) word ids

    @property
    def order(self) -> int:
        return len(self.raw)


def _encode_sentences(sentences: Iterable[str]) -> tuple[dict[str, int], np.ndarray]:
    """(word -> id, the text as word ids (n_tokens,) with `<s>` ... `</s>` per sentence).

    Ids 0, 1, 2 are the special words; the others follow in order of first appearance.
    """
    vocabulary: dict[str, int] = {word: i for i, word in enumerate(SPECIAL_WORDS)}
    tokens: list[int] = []
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        special = set(words).intersection(SPECIAL_WORDS)
        if special:
            raise LanguageModelError(
                f"the text contains {sorted(special)[0]!r}, which the LM reserves; remove it"
            )
        tokens.append(_BOS_ID)
        tokens.extend([vocabulary.setdefault(word, len(vocabulary)) for word in words])
        tokens.append(_EOS_ID)
    if not tokens:
        raise LanguageModelError("no words to build a language model from")
    return vocabulary, np.array(tokens, dtype=np.int64)


def _count_ngrams(sequence: np.ndarray, order: int, size: int) -> _NgramCounts:
    """Count the n-grams of orders 1..`order` that lie within one sentence of `sequence`."""
    sentence_of = np.cumsum(sequence == _BOS_ID) - 1  # (n_tokens,) which sentence a token is in
    rank_at = [sequence]  # order 1: the rank of a word is its id
    raw = [np.bincount(sequence, minlength=size)]
    starts = [np.arange(size)]  # for order 1 we only need the ids themselves
    keys = [np.arange(size, dtype=np.int64)]
    for n in range(2, order + 1):
        last = np.arange(n - 1, len(sequence))
        first = last - (n - 1)
        fits = sentence_of[first] == sentence_of[last]
        first, last = first[fits], last[fits]
        key = rank_at[-1][first] * size + sequence[last]
        unique, where, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        ranks = np.full(len(sequence), -1, dtype=np.int64)
        ranks[first] = inverse
        rank_at.append(ranks)
        raw.append(counts)
        starts.append(first[where])
        keys.append(unique)
    words = [np.arange(size)[:, None]] + [
        sequence[starts[n - 1][:, None] + np.arange(n)] for n in range(2, order + 1)
    ]
    return _NgramCounts(size, rank_at, raw, starts, keys, words)


def _adjusted_counts(counts: _NgramCounts) -> list[np.ndarray]:
    """Kneser-Ney's adjusted counts a per order: raw at the top order and after <s>, else
    the number of distinct words seen to the left; <s> gets no unigram mass."""
    order = counts.order
    adjusted = [counts.raw[order - 1]]
    for n in range(order - 1, 0, -1):
        # the rank of each (n+1)-gram's last n words, and how many distinct words precede it
        suffix = counts.rank_at[n - 1][counts.starts[n] + 1]
        continuation = np.bincount(suffix, minlength=len(counts.keys[n - 1]))
        adjusted.insert(
            0, np.where(counts.words[n - 1][:, 0] == _BOS_ID, counts.raw[n - 1], continuation)
        )
    adjusted[0] = adjusted[0].copy()
    adjusted[0][_BOS_ID] = 0  # <s> is never predicted: no unigram mass
    return adjusted


def _smooth(
    counts: _NgramCounts, adjusted: list[np.ndarray], discount_fallback: Sequence[float]
) -> list[NgramTable]:
    """Interpolated probabilities and backoff weights, order by order (module docstring)."""
    size = counts.size
    tables: list[NgramTable] = []
    lower = np.zeros(0)
    for n in range(1, counts.order + 1):
        a = adjusted[n - 1].astype(np.float64)
        discounts = _discounts(n, adjusted[n - 1], discount_fallback)
        if n == 1:
            context = np.zeros(size, dtype=np.int64)  # one context, the empty one
            n_contexts = 1
        else:
            context = counts.keys[n - 1] // size  # rank of the (n-1)-word prefix
            n_contexts = len(counts.keys[n - 2])
        d = discounts.of(adjusted[n - 1])
        total = np.bincount(context, weights=a, minlength=n_contexts)  # sum_x a(hx)
        held_out = np.bincount(context, weights=d, minlength=n_contexts)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(total > 0, held_out / total, np.nan)  # b(h), NaN: not a context
        u = (a - d) / total[context]
        if n == 1:
            probability = u + gamma[0] / (size - 1)  # uniform over V (all ids but <s>)
            probability[_BOS_ID] = 0.0
        else:
            suffix = counts.rank_at[n - 2][counts.starts[n - 1] + 1]
            probability = u + gamma[context] * lower[suffix]
            tables[-1] = NgramTable(
                tables[-1].words, tables[-1].probability, gamma, tables[-1].discounts
            )
        tables.append(
            NgramTable(counts.words[n - 1], probability, np.full(len(a), np.nan), discounts)
        )
        lower = probability
    return tables


def _discounts(n: int, adjusted: np.ndarray, fallback: Sequence[float]) -> Discounts:
    """The discounts of order `n` from its adjusted counts, saying so when they fall back."""
    counts_of_counts = [int(np.count_nonzero(adjusted == k)) for k in (1, 2, 3, 4)]
    discounts = Discounts.estimate(counts_of_counts, fallback)
    if not discounts.estimated:
        logger.info(
            "order %d: counts-of-counts t1..t4 = %s give no valid discounts (small or "
            "artificial text?); using %s",
            n,
            counts_of_counts,
            tuple(fallback),
        )
    return discounts


def check_order(order: int) -> None:
    """Refuse an order the builder cannot use, with the range that works."""
    if not 1 <= order <= MAX_ORDER:
        raise LanguageModelError(
            f"order {order} is out of range; use 1 to {MAX_ORDER} (3 is usual)"
        )


def build_arpa(
    text_path: Path,
    output_path: Path,
    order: int = DEFAULT_ORDER,
    alphabet: Alphabet | None = None,
) -> BuildSummary:
    """Read and normalise a text, build a modified Kneser-Ney model, write it as ARPA."""
    check_order(order)
    text_path, output_path = Path(text_path), Path(output_path)
    if not output_path.parent.is_dir():
        raise LanguageModelError(f"{output_path.parent}: no such folder for the output ARPA file")
    start = time.perf_counter()
    sentences = read_sentences(text_path, alphabet)
    model = build_kneser_ney(sentences, order)
    try:
        model.write_arpa(output_path)
    except OSError as e:
        raise LanguageModelError(f"{output_path}: cannot write the ARPA file ({e.strerror})") from e
    seconds = time.perf_counter() - start
    summary = BuildSummary(
        text_path=text_path,
        output_path=output_path,
        sentences=len(sentences),
        words=sum(len(s.split()) for s in sentences),
        vocabulary=len(model.vocabulary) - len(SPECIAL_WORDS),
        ngrams=tuple(len(t.words) for t in model.tables),
        discounts=tuple(t.discounts for t in model.tables),
        seconds=seconds,
    )
    logger.debug(
        "%s: %d sentences, %d words, vocabulary %d -> %s (%s n-grams) in %.1f s",
        text_path,
        summary.sentences,
        summary.words,
        summary.vocabulary,
        output_path,
        "/".join(map(str, summary.ngrams)),
        seconds,
    )
    return summary


class ArpaModel:
    """An ARPA back-off model in Python dictionaries: the reference for checking built models.

    Slow and memory-hungry next to KenLM, which the decoder uses; this one exists so tests can
    evaluate a file with the textbook back-off rule and compare it with the formulas.
    """

    def __init__(self, ngrams: dict[tuple[str, ...], tuple[float, float]], order: int) -> None:
        self.ngrams = ngrams  # words -> (log10 p, log10 backoff)
        self.order = order

    @classmethod
    def read(cls, path: Path) -> ArpaModel:
        ngrams: dict[tuple[str, ...], tuple[float, float]] = {}
        order = 0
        for n, fields in _arpa_entries(Path(path)):
            order = max(order, n)
            words = tuple(fields[1 : n + 1])
            backoff = float(fields[n + 1]) if len(fields) > n + 1 else 0.0
            ngrams[words] = (float(fields[0]), backoff)
        return cls(ngrams, order)

    @property
    def vocabulary(self) -> list[str]:
        """Every word the model predicts (all unigrams but <s>), <unk> and </s> included."""
        return [g[0] for g in self.ngrams if len(g) == 1 and g[0] != BOS]

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 p(word | context) with the back-off rule; unknown words are <unk>."""
        if (word,) not in self.ngrams:
            word = UNK
        history = tuple(w if (w,) in self.ngrams else UNK for w in context)
        history = history[-(self.order - 1) :] if self.order > 1 else ()
        backoff = 0.0
        while (*history, word) not in self.ngrams:
            backoff += self.ngrams.get(history, (0.0, 0.0))[1]
            history = history[1:]
        return backoff + self.ngrams[(*history, word)][0]

    def log10_sentence(self, sentence: str) -> float:
        """log10 p(sentence </s> | <s>): the score KenLM gives a full sentence."""
        history = [BOS]
        total = 0.0
        for word in [*sentence.split(), EOS]:
            total += self.log10_prob(word, history)
            history.append(word)
        return total


def arpa_vocabulary(path: Path) -> list[str]:
    """The unigrams of an ARPA file, in file order, read without the higher orders."""
    words = []
    for n, fields in _arpa_entries(Path(path), max_order=1):
        if n == 1:
            words.append(fields[1])
    return words


def _arpa_entries(path: Path, max_order: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """(order, fields) for each n-gram line; errors name the file and line."""
    try:
        lines = open(path, encoding="utf-8")  # noqa: SIM115 (closed below, iterated lazily)
    except OSError as e:
        raise LanguageModelError(f"{path}: cannot open the language model ({e.strerror})") from e
    with lines:
        n = 0
        seen_data = False
        try:
            for lineno, line in enumerate(lines, start=1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    seen_data = True
                    continue
                if line == "\\end\\":
                    return
                header = _NGRAM_HEADER.fullmatch(line)
                if header:
                    n = int(header.group(1))
                    if max_order is not None and n > max_order:
                        return
                    continue
                if n == 0:
                    if not seen_data or not _COUNT_LINE.fullmatch(line):
                        raise LanguageModelError(
                            f"{path}:{lineno}: not an ARPA language model (expected \\data\\ "
                            "and ngram counts); build one with `deepspeech lm build`"
                        )
                    continue
                fields = line.split()
                if len(fields) < n + 1:
                    raise LanguageModelError(
                        f"{path}:{lineno}: a {n}-gram line needs a log10 probability and "
                        f"{n} words, got {line!r}"
                    )
                yield n, fields
        except UnicodeDecodeError as e:
            raise LanguageModelError(
                f"{path}: not a text ARPA file ({e}); binary KenLM files are not supported"
            ) from e
    if not seen_data:
        raise LanguageModelError(f"{path}: empty or not an ARPA language model")


def load_language_model(path: Path | str) -> LanguageModel:
    """Load an ARPA file with KenLM, once: later calls for the unchanged file reuse the model.

    Loading takes seconds for a real LM, so callers that decode utterance by utterance must
    not pay it each time; the cache key includes the file's size and modification time, so a
    rebuilt file is loaded afresh.
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as e:
        raise LanguageModelError(f"{path}: cannot read the language model ({e.strerror})") from e
    if not path.is_file():
        raise LanguageModelError(f"{path}: not a file; give an ARPA language model")
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int, size: int) -> LanguageModel:
    return LanguageModel(path)


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[None]:
    """Catch what C++ code writes to file descriptor 2 and log it at debug level instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace").strip()
            if text:
                logger.debug("KenLM: %s", text)


class LanguageModel:
    """A KenLM word n-gram model, loaded once and queried by the beam decoder.

    KenLM comes inside flashlight-text, whose `KenLM` maps a dictionary of user tokens to the
    model's words; here the tokens are the ARPA file's own unigrams, so a word's index is
    `index_of(word)` and words the model never saw score as `<unk>`. Scores are log10, as in
    the ARPA file. Querying from several threads is safe as long as each decode starts from
    its own `begin()` state (states remember their children; the model itself is read-only).
    """

    def __init__(self, path: Path) -> None:
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self.path = Path(path)
        words = arpa_vocabulary(self.path)
        if UNK not in words or BOS not in words or EOS not in words:
            raise LanguageModelError(
                f"{self.path}: the unigrams lack {UNK}, {BOS} or {EOS}; build the model with "
                "`deepspeech lm build`"
            )
        self.vocabulary = tuple(words)
        self._index = {word: i for i, word in enumerate(words)}
        self._unk = self._index[UNK]
        self._sorted_words = sorted(w for w in words if w not in SPECIAL_WORDS)
        start = time.perf_counter()
        try:
            with _stderr_to_log():  # KenLM draws a progress bar of stars on stderr
                self._kenlm = KenLM(str(self.path), Dictionary(list(words)))
        except RuntimeError as e:
            raise LanguageModelError(f"{self.path}: KenLM cannot load it ({e})") from e
        logger.info(
            "loaded %s (%d words) in %.2f s",
            self.path,
            len(words),
            time.perf_counter() - start,
        )

    def index_of(self, word: str) -> int:
        """The word's index for `score`; <unk>'s index for words the model does not know."""
        return self._index.get(word, self._unk)

    def __contains__(self, word: object) -> bool:
        """True for the words the model was built with (not <s>, </s>, <unk>)."""
        return word in self._index and word not in SPECIAL_WORDS

    def starts_word(self, prefix: str) -> bool:
        """True when some known word begins with `prefix` (a binary search, no trie needed).

        The decoder uses it to charge the unknown-word penalty as soon as a hypothesis spells
        something that can no longer become a known word, rather than at the word's end.
        """
        i = bisect.bisect_left(self._sorted_words, prefix)
        return i < len(self._sorted_words) and self._sorted_words[i].startswith(prefix)

    def begin(self) -> object:
        """The state at the start of a sentence (after <s>)."""
        return self._kenlm.start(False)

    def score(self, state: object, word: str) -> tuple[object, float]:
        """(next state, log10 p(word | state))."""
        return self._kenlm.score(state, self.index_of(word))

    def end(self, state: object) -> float:
        """log10 p(</s> | state): the cost of ending the sentence here."""
        return self._kenlm.finish(state)[1]

    def log10_sentence(self, sentence: str) -> float:
        """log10 p(sentence </s> | <s>), for checks and perplexity."""
        state = self.begin()
        total = 0.0
        for word in sentence.split():
            state, log10_p = self.score(state, word)
            total += log10_p
        return total + self.end(state)
