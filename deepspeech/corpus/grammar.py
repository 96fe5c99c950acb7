"""The sample corpus's language: a ~230-word vocabulary and ten sentence templates of 3-8 words.

Small on purpose: a BiRNN with n_hidden 256 learns it in minutes on two CPU cores, yet the
templates combine into millions of sentences, so test sentences can be ones that training
never saw. Every word uses only the default alphabet (space, a-z, apostrophe), and contractions
and possessives ("don't", "anna's") put the apostrophe to use.

Which split a sentence belongs to is a function of its text (`sentence_split`), not of the
draw that produced it: a held-out sentence can never turn up in training, however many
utterances are drawn.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

NAMES = (
    "anna", "ben", "carol", "david", "emma", "frank", "grace", "henry",
    "jack", "kate", "lucy", "mark", "nina", "oscar", "peter", "sarah",
)  # fmt: skip
RELATIVES = ("mother", "father", "sister", "brother", "uncle", "aunt", "friend", "teacher")
ANIMALS = ("dog", "cat", "horse", "bird", "rabbit", "mouse", "duck", "goat", "fox", "frog")
ANIMALS_PLURAL = (
    "dogs", "cats", "horses", "birds", "rabbits", "mice", "ducks", "goats", "foxes", "frogs",
)  # fmt: skip
OBJECTS = (
    "book", "cup", "box", "lamp", "ball", "key", "pen", "hat",
    "coat", "bag", "clock", "bottle", "phone", "plate", "shoe", "letter",
)  # fmt: skip
OBJECTS_PLURAL = (
    "books", "cups", "boxes", "lamps", "balls", "keys", "pens", "hats",
    "coats", "bags", "clocks", "bottles", "phones", "plates", "shoes", "letters",
)  # fmt: skip
FURNITURE = ("table", "desk", "shelf", "floor", "bed", "sofa", "window", "chair")
PLACES = (
    "kitchen", "garden", "garage", "office", "station", "school", "market", "river",
    "park", "library",
)  # fmt: skip
ADJECTIVES = (
    "red", "blue", "green", "yellow", "black", "white", "big", "small",
    "old", "new", "warm", "cold", "heavy", "clean",
)  # fmt: skip
NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
VERBS_PAST = (
    "found", "moved", "opened", "cleaned", "painted", "carried",
    "dropped", "washed", "bought", "sold", "fixed", "lost",
)  # fmt: skip
VERBS = (
    "see", "find", "move", "open", "clean", "paint", "carry", "buy", "sell", "fix", "want", "need",
)  # fmt: skip
VERBS_PLACING = ("put", "place", "leave", "set", "hide", "drop")
VERBS_INTRANSITIVE = (
    "runs", "sleeps", "jumps", "waits", "sits", "swims", "eats", "sings", "walks", "hides",
)  # fmt: skip
ADVERBS = (
    "quickly", "slowly", "quietly", "loudly", "again", "outside", "alone", "often", "early", "here",
)  # fmt: skip
PREPOSITIONS = ("on", "under", "near", "behind", "beside", "above", "below", "by")
TIMES = (
    "today", "yesterday", "tomorrow", "tonight", "monday", "tuesday",
    "wednesday", "thursday", "friday", "sunday",
)  # fmt: skip
PRONOUNS = ("i", "we", "you", "they", "he", "she")
PLURAL_PRONOUNS = ("i", "we", "you", "they")  # the ones "don't" agrees with
MODALS = ("can", "could", "will", "should", "must", "might")
NEGATIONS = ("don't", "can't", "won't", "didn't")

SLOTS: Mapping[str, tuple[str, ...]] = {
    "name": NAMES,
    "names": tuple(f"{n}'s" for n in NAMES),
    "relative": RELATIVES,
    "animal": ANIMALS,
    "animals": ANIMALS_PLURAL,
    "object": OBJECTS,
    "objects": OBJECTS_PLURAL,
    "furniture": FURNITURE,
    "place": PLACES,
    "adjective": ADJECTIVES,
    "number": NUMBERS,
    "verb_past": VERBS_PAST,
    "verb": VERBS,
    "verb_placing": VERBS_PLACING,
    "verb_intransitive": VERBS_INTRANSITIVE,
    "adverb": ADVERBS,
    "preposition": PREPOSITIONS,
    "time": TIMES,
    "pronoun": PRONOUNS,
    "plural_pronoun": PLURAL_PRONOUNS,
    "modal": MODALS,
    "negation": NEGATIONS,
}

# `{slot}` draws a word from SLOTS (a slot used twice draws two different words); `{a}` is the
# article "a" or "an", whichever the next word needs. Word counts are in the comments.
TEMPLATES = (
    "{name} {verb_past} the {object}",  # 4
    "the {adjective} {animal} {verb_intransitive} {adverb}",  # 5
    "{pronoun} {modal} {verb} {number} {adjective} {objects}",  # 6
    "please {verb_placing} the {adjective} {object} {preposition} the {furniture}",  # 8
    "{names} {animal} {verb_intransitive}",  # 3
    "my {relative} {verb_past} {a} {adjective} {animal}",  # 6
    "{plural_pronoun} {negation} {verb} {adjective} {objects}",  # 5
    "is the {object} {preposition} the {furniture}",  # 6
    "{name} and {name} went to the {place} {time}",  # 8
    "there are {number} {animals} in the {place}",  # 7
)

_TOKEN = re.compile(r"\{(\w+)\}|([^\s{}]+)")
_HASH_BUCKETS = 1_000_000


@dataclass(frozen=True)
class SentenceShares:
    """Fractions of all possible sentences reserved for dev and for test (train gets the rest)."""

    dev: float
    test: float


def vocabulary() -> frozenset[str]:
    """Every word a template can produce."""
    words: set[str] = {"a", "an"}
    for template in TEMPLATES:
        for slot, literal in _TOKEN.findall(template):
            if literal:
                words.add(literal)
            elif slot != "a":
                words.update(SLOTS[slot])
    return frozenset(words)


def sample_sentence(rng: np.random.Generator) -> str:
    """Draw a template uniformly, then each slot's word uniformly: -> a lower-case sentence."""
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    words: list[str] = []
    used: dict[str, set[str]] = {}
    for slot, literal in _TOKEN.findall(template):
        if literal:
            words.append(literal)
            continue
        if slot == "a":
            words.append("{a}")
            continue
        taken = used.setdefault(slot, set())
        choices = [w for w in SLOTS[slot] if w not in taken]
        word = choices[int(rng.integers(len(choices)))]
        taken.add(word)
        words.append(word)
    for i, word in enumerate(words):
        if word == "{a}":
            words[i] = "an" if words[i + 1][0] in "aeiou" else "a"
    return " ".join(words)


def sentence_split(sentence: str, seed: int, shares: SentenceShares) -> str:
    """Which split owns `sentence` for `seed`: "dev", "test" or "train".

    A hash of the text, not a draw, so the assignment covers every possible sentence and a
    held-out sentence is unseen in training by construction.
    """
    digest = hashlib.blake2b(f"{seed}\n{sentence}".encode(), digest_size=8).digest()
    position = (int.from_bytes(digest, "big") % _HASH_BUCKETS) / _HASH_BUCKETS
    if position < shares.test:
        return "test"
    if position < shares.test + shares.dev:
        return "dev"
    return "train"


def draw_sentence(rng: np.random.Generator, split: str, seed: int, shares: SentenceShares) -> str:
    """Draw sentences until one belongs to `split` (about 1/share draws; microseconds each)."""
    while True:
        sentence = sample_sentence(rng)
        if sentence_split(sentence, seed, shares) == split:
            return sentence


def grammar_fingerprint() -> str:
    """A short hash of the vocabulary and templates: a corpus records what language made it."""
    text = "\n".join([*TEMPLATES, *(f"{k}={','.join(v)}" for k, v in sorted(SLOTS.items()))])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
