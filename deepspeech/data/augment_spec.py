"""The augmentation SPEC language of `train --augment`: parsing, validation and `--help`.

The model trained on the sample corpus learns espeak-ng, not speech (issue 15): it needs to
hear noise, rooms, other speeds and pitches, other microphones. DeepSpeech 0.9 and Coqui STT
trained with augmentations for this reason; we keep their SPEC syntax,

    name[p=P,key=VALUE,...]      e.g.  noise[p=0.5,snr=5:25,color=pink]

where VALUE is a number, a word, or a range `LO:HI` drawn uniformly per utterance; `name`
alone takes every default. Each SPEC becomes a frozen dataclass (`Noise`, `Reverb`, ...) whose
fields are its keys, with their defaults and help lines; `AUGMENT_HELP` is written from them.

This module needs nothing but the standard library, so that checking a config and printing
`--help` stay fast: the waveform augmentations are in `augment`, the feature-domain ones
(SpecAugment) in `spec_augment`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias, get_type_hints

from deepspeech.errors import ConfigError

FloatRange: TypeAlias = tuple[float, float]
IntRange: TypeAlias = tuple[int, int]

MAX_PAD_SECONDS = 5.0  # `pad`: longer edges are silence every batch would pay for


@dataclass(frozen=True)
class Augmentation:
    """One parsed SPEC. Subclasses name themselves (`name`) and their domain; each key is a
    field whose metadata["help"] is its line in AUGMENT_HELP."""

    name: ClassVar[str]
    domain: ClassVar[str]  # "waveform" or "feature"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # word-valued keys -> allowed words

    p: float = field(
        default=1.0, metadata={"help": "probability of applying it to an utterance (0-1)"}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"{self.name}: p={self.p} must be in [0, 1]")
        for key, allowed in self.choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"{self.name}: {key}={getattr(self, key)} must be one of {', '.join(allowed)}"
                )

    def spec(self) -> str:
        """The canonical SPEC string of this augmentation (every key spelt out)."""
        keys = ",".join(
            f"{f.name}={_format_value(getattr(self, f.name))}" for f in dataclasses.fields(self)
        )
        return f"{self.name}[{keys}]"

    def _check(self, key: str, ok: bool, rule: str) -> None:
        """Raise ConfigError naming the augmentation, the key, its value and the rule."""
        if not ok:
            raise ConfigError(f"{self.name}: {key}={_format_value(getattr(self, key))} {rule}")


@dataclass(frozen=True)
class Noise(Augmentation):
    """Additive noise at a signal-to-noise ratio: colored (white, pink, brown) or babble."""

    name: ClassVar[str] = "noise"
    domain: ClassVar[str] = "waveform"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "color": ("any", "white", "pink", "brown", "babble")
    }

    snr: FloatRange = field(default=(5.0, 30.0), metadata={"help": "signal-to-noise ratio in dB"})
    color: str = field(
        default="any",
        metadata={
            "help": "white, pink (1/f), brown (1/f^2), babble (other training clips) or any of them"
        },
    )
    layers: IntRange = field(
        default=(3, 6), metadata={"help": "babble: how many other clips talk at once"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("layers", self.layers[0] >= 1, "must be at least 1")


@dataclass(frozen=True)
class Reverb(Augmentation):
    """A room: convolution with a synthetic, exponentially decaying impulse response."""

    name: ClassVar[str] = "reverb"
    domain: ClassVar[str] = "waveform"

    rt60: FloatRange = field(
        default=(0.15, 0.8), metadata={"help": "reverberation time in s (decay by 60 dB)"}
    )
    drr: FloatRange = field(
        default=(0.0, 10.0), metadata={"help": "direct-to-reverberant energy ratio in dB"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("rt60", self.rt60[0] >= 0.01 and self.rt60[1] <= 3.0, "must be in [0.01, 3]")


@dataclass(frozen=True)
class Speed(Augmentation):
    """Speed by resampling, like a tape: factor 1.1 is 10 % faster, shorter and higher."""

    name: ClassVar[str] = "speed"
    domain: ClassVar[str] = "waveform"

    factor: FloatRange = field(
        default=(0.9, 1.1), metadata={"help": "speed factor; duration is divided by it"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            "factor", self.factor[0] >= 0.5 and self.factor[1] <= 2.0, "must be in [0.5, 2]"
        )


@dataclass(frozen=True)
class Pitch(Augmentation):
    """Pitch and formants shifted together, duration kept (phase vocoder, then resampling)."""

    name: ClassVar[str] = "pitch"
    domain: ClassVar[str] = "waveform"

    semitones: FloatRange = field(
        default=(-3.0, 3.0), metadata={"help": "shift in semitones (12: an octave up)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            "semitones",
            self.semitones[0] >= -12 and self.semitones[1] <= 12,
            "must be in [-12, 12]",
        )


@dataclass(frozen=True)
class Volume(Augmentation):
    """A gain in dB (no clipping: the features see float samples)."""

    name: ClassVar[str] = "volume"
    domain: ClassVar[str] = "waveform"

    gain: FloatRange = field(default=(-10.0, 10.0), metadata={"help": "gain in dB"})


@dataclass(frozen=True)
class Eq(Augmentation):
    """A microphone or channel: band-limiting, spectral tilt, or the telephone band."""

    name: ClassVar[str] = "eq"
    domain: ClassVar[str] = "waveform"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"mode": ("any", "band", "tilt", "telephone")}

    mode: str = field(
        default="any",
        metadata={
            "help": "band (band-pass low..high), tilt, telephone (300-3400 Hz) or any of them"
        },
    )
    low: FloatRange = field(default=(50.0, 400.0), metadata={"help": "band: lower cut-off in Hz"})
    high: FloatRange = field(
        default=(3000.0, 7500.0), metadata={"help": "band: upper cut-off in Hz"}
    )
    tilt: FloatRange = field(
        default=(-6.0, 6.0), metadata={"help": "tilt: dB per octave around 1 kHz (<0: duller)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("low", self.low[0] > 0, "must be above 0 Hz")
        # Imported here: deepspeech.audio loads SciPy, which `--help` should not wait for.
        from deepspeech.audio import SAMPLE_RATE

        nyquist = SAMPLE_RATE / 2
        self._check("high", self.high[1] < nyquist, f"must be below {nyquist:g} Hz")
        self._check("high", self.low[1] < self.high[0], f"must lie above low={self.low[1]:g}")


# Every real recording has background before and after the speech; the sample corpus cuts its
# clips at the first and last voiced frame, and a model trained on them alone fails on edges
# (200 ms of silence or noise around 30 test clips: 3 wrong transcripts became 29). `noise`
# after `pad` keeps its SNR on the speech, not on the padded clip.
@dataclass(frozen=True)
class Pad(Augmentation):
    """Quiet background (white noise) around the clip; list it before `noise` and `reverb`."""

    name: ClassVar[str] = "pad"
    domain: ClassVar[str] = "waveform"

    before: FloatRange = field(
        default=(0.0, 0.5), metadata={"help": "seconds of background before the clip"}
    )
    after: FloatRange = field(
        default=(0.0, 0.5), metadata={"help": "seconds of background after the clip"}
    )
    level: FloatRange = field(
        default=(-70.0, -30.0),
        metadata={
            "help": "background in dB relative to the clip's RMS: -30 is a laptop microphone by"
            " a fan; -70 (clips are about -18 dBFS) reaches the 16-bit floor, where the"
            " features see digital silence"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("before", "after"):
            low, high = getattr(self, key)
            self._check(
                key, low >= 0 and high <= MAX_PAD_SECONDS, f"must be in [0, {MAX_PAD_SECONDS:g}] s"
            )
        self._check("level", self.level[1] <= 0, "must be at most 0 dB (a floor under the speech)")


@dataclass(frozen=True)
class FreqMask(Augmentation):
    """SpecAugment frequency masks: bands of MFCC coefficients set to zero."""

    name: ClassVar[str] = "freq_mask"
    domain: ClassVar[str] = "feature"

    n: IntRange = field(default=(1, 2), metadata={"help": "number of masks"})
    size: IntRange = field(default=(1, 4), metadata={"help": "width of each mask in coefficients"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("n", self.n[0] >= 0, "must be 0 or more")
        self._check("size", self.size[0] >= 0, "must be 0 or more")


@dataclass(frozen=True)
class TimeMask(Augmentation):
    """SpecAugment time masks: runs of frames (10 ms each) set to zero."""

    name: ClassVar[str] = "time_mask"
    domain: ClassVar[str] = "feature"

    n: IntRange = field(default=(1, 3), metadata={"help": "number of masks"})
    size: IntRange = field(
        default=(5, 20), metadata={"help": "length of each mask in frames (cut to the utterance)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("n", self.n[0] >= 0, "must be 0 or more")
        self._check("size", self.size[0] >= 0, "must be 0 or more")


@dataclass(frozen=True)
class TimeWarp(Augmentation):
    """SpecAugment time warp: a random frame moves by up to `w` frames, stretching around it."""

    name: ClassVar[str] = "time_warp"
    domain: ClassVar[str] = "feature"

    w: int = field(default=5, metadata={"help": "largest shift in frames (SpecAugment's W)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("w", self.w >= 0, "must be 0 or more")


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    kind.name: kind
    for kind in (Noise, Reverb, Speed, Pitch, Volume, Eq, Pad, FreqMask, TimeMask, TimeWarp)
}

_SPEC = re.compile(r"^\s*(?P<name>[a-z_]+)\s*(?:\[(?P<keys>[^\[\]]*)\])?\s*$")


def parse_augmentation(spec: str) -> Augmentation:
    """`"noise[p=0.5,snr=5:25]"` -> `Noise(p=0.5, snr=(5.0, 25.0), ...)`; ConfigError if bad."""
    match = _SPEC.match(spec)
    if not match:
        raise ConfigError(f"augmentation {spec!r} is not name[key=VALUE,...]")
    name = match["name"]
    kind = AUGMENTATIONS.get(name)
    if kind is None:
        raise ConfigError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    hints = get_type_hints(kind)
    keys = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (match["keys"] or "").split(","))):
        key, equals, text = (part.strip() for part in item.partition("="))
        if key not in keys:
            raise ConfigError(f"{name}: unknown key {key!r}; known: {', '.join(sorted(keys))}")
        if not equals or not text:
            raise ConfigError(f"{name}: key {key!r} needs a value ({key}=VALUE)")
        if key in values:
            raise ConfigError(f"{name}: key {key!r} given twice")
        values[key] = _parse_value(name, key, text, hints[key])
    return kind(**values)


def parse_augmentations(specs: Iterable[str]) -> tuple[Augmentation, ...]:
    """Parse every SPEC, in order (the order waveform augmentations are applied in)."""
    return tuple(parse_augmentation(spec) for spec in specs)


def _parse_value(name: str, key: str, text: str, kind: Any) -> Any:
    """One VALUE as its key's type: a number, a word, or a LO:HI range (a number is LO = HI)."""
    try:
        if kind is str:
            return text
        if kind is float:
            return float(text)
        if kind is int:
            return int(text)
        number = int if kind == IntRange else float
        low, _, high = text.partition(":")
        bounds = (number(low), number(high or low))
    except ValueError as e:
        raise ConfigError(f"{name}: {key}={text} is not a {_type_name(kind)}") from e
    if bounds[0] > bounds[1]:
        raise ConfigError(f"{name}: {key}={text}: LO must not exceed HI")
    return bounds


def _type_name(kind: Any) -> str:
    return {float: "number", int: "whole number", IntRange: "whole number or LO:HI"}.get(
        kind, "number or LO:HI"
    )


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        low, high = value
        return f"{low:g}" if low == high else f"{low:g}:{high:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help_text() -> str:
    """The `--help` text of every augmentation and key, written from the dataclasses.

    A Markdown list (the CLI renders help as Markdown) that reads as plain text too.
    """
    lines = [
        "Augmentations (`--augment SPEC`, repeatable; config key `augment`, a list): SPEC is",
        "`name[p=P,key=VALUE,...]` (DeepSpeech 0.9's syntax), where a VALUE may be a range",
        "`LO:HI`, drawn anew for every utterance and epoch; a bare name takes the defaults.",
        "Each applies with its probability p, in the order given (waveform ones before features).",
        "",
    ]
    for kind in AUGMENTATIONS.values():
        lines.append(f"- `{kind.name}` ({kind.domain}): {(kind.__doc__ or '').strip()}")
        for f in dataclasses.fields(kind):
            lines.append(f"    - `{f.name}={_format_value(f.default)}`: {f.metadata['help']}")
    return "\n".join(lines)


AUGMENT_HELP = _help_text()
