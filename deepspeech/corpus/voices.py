"""Which espeak-ng voices the sample corpus speaks with, and which split hears which voice.

A voice is an English accent plus a variant ("en-gb-scotland+f2"). Variants are read from the
installed espeak-ng data and sorted by what their files set:

- unusable: whispered, heavily echoed, robotic or with vowel formants far from any human
  voice (`zac`, `Tweaky`, `whisper`, the `robosoft` family...). A listener would struggle, and
  a model trained on the rest cannot be expected to transcribe them: such outliers dominated
  the error of the prototype (FACTS.md), so they are left out entirely;
- typical: close to the bulk of the voices. Only these are held out for dev and test, so the
  held-out score measures generalisation to new speakers, not to new kinds of synthesiser;
- the rest (usable, unusual) are training-only: they widen what the model hears.

Held-out variants are picked per (synthesiser, register) group, so train and test both get
Klatt and non-Klatt, low and high voices. Train never hears a held-out variant in any accent;
dev and test share the held-out variants but not a single (accent, variant) voice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepspeech.corpus.espeak import VoiceVariant

ACCENTS = (
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)

# Limits in % of the default voice (formants, voicing) or Hz (pitch); see the module docstring.
USABLE_VOWEL_FORMANTS = (70, 140)
USABLE_VOICING = (60, 250)
USABLE_MAX_BREATH = 30
USABLE_MAX_ECHO = 40
TYPICAL_VOWEL_FORMANTS = (85, 135)
TYPICAL_VOICING = (70, 160)
TYPICAL_MAX_PITCH_HZ = 210
TYPICAL_MAX_FLUTTER = 10
TYPICAL_MAX_ECHO = 20
TYPICAL_MAX_BREATH = 10  # the f1-f5 voices add a little breath noise
HIGH_REGISTER_HZ = 140  # pitch base from which a variant counts as a high (female-like) voice

_VOICE_STREAM = 1  # keeps the voice draw independent of the per-utterance draws


def is_usable(variant: VoiceVariant) -> bool:
    """Whether speech in this variant is plainly intelligible (see the module docstring)."""
    low, high = USABLE_VOWEL_FORMANTS
    return (
        not variant.unknown_keywords
        and variant.name.isidentifier()  # "Mr serious" cannot be named in "en+<variant>"
        and all(low <= f <= high for f in variant.vowel_formants)
        and USABLE_VOICING[0] <= variant.voicing_percent <= USABLE_VOICING[1]
        and variant.breath <= USABLE_MAX_BREATH
        and variant.echo_percent <= USABLE_MAX_ECHO
    )


def is_typical(variant: VoiceVariant) -> bool:
    """Whether a variant is usable and close enough to the others to be a fair held-out voice."""
    low, high = TYPICAL_VOWEL_FORMANTS
    pitch_base = variant.pitch_hz[0] if variant.pitch_hz else 0
    return (
        is_usable(variant)
        and all(low <= f <= high for f in variant.vowel_formants)
        and TYPICAL_VOICING[0] <= variant.voicing_percent <= TYPICAL_VOICING[1]
        and variant.breath <= TYPICAL_MAX_BREATH
        and variant.echo_percent <= TYPICAL_MAX_ECHO
        and pitch_base <= TYPICAL_MAX_PITCH_HZ
        and (variant.flutter or 0) <= TYPICAL_MAX_FLUTTER
    )


@dataclass(frozen=True)
class VoicePlan:
    """The voices ("accent+variant") of each split; train shares no variant with dev or test."""

    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]
    train_variants: tuple[str, ...]
    held_out_variants: tuple[str, ...]
    excluded_variants: tuple[str, ...]

    def for_split(self, split: str) -> tuple[str, ...]:
        """The voices of "train", "dev" or "test"."""
        return {"train": self.train, "dev": self.dev, "test": self.test}[split]


def _group(variant: VoiceVariant) -> tuple[bool, bool]:
    """(Klatt synthesiser?, high register?): held-out variants are drawn from each group."""
    pitch_base = variant.pitch_hz[0] if variant.pitch_hz else 0
    return variant.klatt > 0, pitch_base >= HIGH_REGISTER_HZ


def plan_voices(
    variants: Sequence[VoiceVariant],
    seed: int,
    held_out_share: float,
    accents: Sequence[str] = ACCENTS,
) -> VoicePlan:
    """Assign variants to train or held-out, then held-out voices to dev or test.

    About `held_out_share` of the typical variants of each group are held out (at least one
    per group of two or more), picked at random for `seed`. All accents of a held-out variant
    are held out; those voices are dealt alternately to dev and test after a shuffle.
    """
    rng = np.random.default_rng([seed, _VOICE_STREAM])
    usable = sorted((v for v in variants if is_usable(v)), key=lambda v: v.name)
    groups: dict[tuple[bool, bool], list[VoiceVariant]] = {}
    for variant in usable:
        if is_typical(variant):
            groups.setdefault(_group(variant), []).append(variant)
    held_out: set[str] = set()
    for key in sorted(groups):
        members = groups[key]
        count = math.floor(len(members) * held_out_share + 0.5)
        if len(members) >= 2:
            count = max(count, 1)
        picked = rng.permutation(len(members))[:count]
        held_out.update(members[i].name for i in picked)
    train_variants = tuple(v.name for v in usable if v.name not in held_out)
    held_out_variants = tuple(sorted(held_out))
    held_out_voices = [f"{a}+{v}" for v in held_out_variants for a in accents]
    shuffled = [held_out_voices[i] for i in rng.permutation(len(held_out_voices))]
    usable_names = {v.name for v in usable}
    return VoicePlan(
        train=tuple(f"{a}+{v}" for v in train_variants for a in accents),
        dev=tuple(sorted(shuffled[0::2])),
        test=tuple(sorted(shuffled[1::2])),
        train_variants=train_variants,
        held_out_variants=held_out_variants,
        excluded_variants=tuple(sorted(v.name for v in variants if v.name not in usable_names)),
    )
