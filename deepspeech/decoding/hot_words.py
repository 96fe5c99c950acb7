"""Hot words: words the beam search should favour (names, jargon), DeepSpeech 0.9.3's feature.

A hot word's boost (in nats, the unit of every other score in the search) is added each time a
hypothesis completes that word. The search also treats a hot word's spelling as a known word's
while it is being spelt, so a word the LM has never seen is neither pruned letter by letter nor
charged the unknown-word spelling cost (`deepspeech.decoding.decoders`). A negative boost
suppresses a word instead.

Hot words are single words in the model's alphabet; a phrase is its words added one by one.
They need the beam decoder: greedy decoding has no hypotheses to re-rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from deepspeech.errors import ConfigError
from deepspeech.text import Alphabet

HotWords = Mapping[str, float]  # word -> boost in nats
MAX_BOOST = 100.0  # a larger boost turns any audio into the hot word: surely a typo


def parse_hot_word(spec: str) -> tuple[str, float]:
    """`WORD:BOOST` (as on the command line and in `hot_words=` queries) -> (word, boost)."""
    word, sep, boost_text = spec.strip().rpartition(":")
    if not sep or not word.strip():
        raise ConfigError(f"hot word {spec!r}: write WORD:BOOST, e.g. kubernetes:8")
    try:
        boost = float(boost_text)
    except ValueError:
        raise ConfigError(f"hot word {spec!r}: boost {boost_text!r} is not a number") from None
    return word.strip().lower(), boost


def parse_hot_words(specs: Iterable[str], alphabet: Alphabet) -> dict[str, float]:
    """Several `WORD:BOOST` specs, each checked against `alphabet`; a later one wins."""
    words: dict[str, float] = {}
    for spec in specs:
        word, boost = parse_hot_word(spec)
        words[word] = check_hot_word(word, boost, alphabet)
    return words


def check_hot_word(word: str, boost: float, alphabet: Alphabet) -> float:
    """The boost, once `word` is one word of `alphabet`'s characters and `boost` is sane."""
    if not word or " " in word or word != word.strip():
        raise ConfigError(f"hot word {word!r}: give one word (add a phrase word by word)")
    outside = sorted({c for c in word if c not in alphabet or c == " "})
    if outside:
        raise ConfigError(
            f"hot word {word!r}: {''.join(outside)!r} is not in the model's alphabet "
            f"({''.join(alphabet.labels)!r})"
        )
    if not math.isfinite(boost) or abs(boost) > MAX_BOOST:
        raise ConfigError(f"hot word {word!r}: boost {boost} must be finite, within ±{MAX_BOOST:g}")
    return float(boost)


def prefixes_of(words: Iterable[str]) -> frozenset[str]:
    """Every non-empty prefix of every word: what the search may spell on its way to one."""
    return frozenset(word[:n] for word in words for n in range(1, len(word) + 1))


class HotWordList:
    """A decoder's hot words (DeepSpeech 0.9.3 keeps them on the model): `add`, `erase`,
    `clear`; each request or stream may add its own on top (`with_extra`). Set-up gives the
    first ones (`--hot-word`); a greedy decoder's list refuses any."""

    def __init__(self, alphabet: Alphabet, *, beam: bool, words: HotWords | None = None) -> None:
        self._alphabet = alphabet
        self._beam = beam
        self._words: dict[str, float] = {}
        for word, boost in (words or {}).items():
            self.add(word, boost)

    def add(self, word: str, boost: float) -> None:
        if not self._beam:
            raise ConfigError("hot words need the beam decoder; add --decoder beam")
        word = word.strip().lower()
        self._words[word] = check_hot_word(word, boost, self._alphabet)

    def erase(self, word: str) -> None:
        try:
            del self._words[word.strip().lower()]
        except KeyError:
            raise ConfigError(f"{word!r} is not a hot word") from None

    def clear(self) -> None:
        self._words.clear()

    def with_extra(self, extra: HotWords | None = None) -> dict[str, float]:
        """The model's hot words with `extra` (a request's, already checked) on top."""
        if extra and not self._beam:
            raise ConfigError("hot words need the beam decoder; add --decoder beam")
        return {**self._words, **(extra or {})}

    def __len__(self) -> int:
        return len(self._words)
