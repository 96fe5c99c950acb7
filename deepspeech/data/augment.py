"""Augmentation SPECs (`train --augment`) and the waveform augmentations, in NumPy/SciPy.

The model trained on the sample corpus learns espeak-ng, not speech (issue 15): it needs to
hear noise, rooms, other speeds and pitches, and other microphones. DeepSpeech 0.9 and Coqui
STT trained with augmentations for this reason; we keep their SPEC syntax,

    name[p=P,key=VALUE,...]      e.g.  noise[p=0.5,snr=5:25,color=pink]

where VALUE is a number, a word, or a range `LO:HI` drawn uniformly per utterance; `name`
alone takes every default. Each SPEC becomes a frozen dataclass (`Noise`, `Reverb`, ...).

Two domains:
- waveform (`noise`, `reverb`, `speed`, `pitch`, `volume`, `eq`): pure functions of a
  (n_samples,) float32 16 kHz clip and a `numpy.random.Generator`, run on the fly in data
  workers so every epoch hears a new draw (DeepSpeech's feature cache silently froze its
  augmentations after epoch 1; these must never be written into a cache);
- feature (`freq_mask`, `time_mask`, `time_warp`): SpecAugment on the MFCC frames, as
  TensorFlow ops in `deepspeech.data.spec_augment`, configured by the same dataclasses.

SciPy is imported inside the functions that need it, so that parsing SPECs (config checks,
`--help`) stays as cheap as NumPy.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, TypeAlias, get_type_hints

import numpy as np

from deepspeech.audio import SAMPLE_RATE
from deepspeech.errors import ConfigError

NYQUIST = SAMPLE_RATE / 2
TELEPHONE_BAND_HZ = (300.0, 3400.0)  # ITU-T G.712 narrow-band telephone channel
EQ_FILTER_ORDER = 8  # Butterworth order (applied forward and backward: 16 in magnitude)
TILT_PIVOT_HZ = 1000.0  # spectral tilt leaves this frequency's level unchanged
TILT_FLOOR_HZ = 50.0  # below this the tilt gain stays constant (no boost of DC rumble)
PITCH_N_FFT = 512  # phase vocoder window: 32 ms, fine enough for speech harmonics
PITCH_HOP = 128  # 8 ms hop (75 % overlap)
MAX_RESAMPLE_DENOMINATOR = 200  # speed/pitch factors are rounded to fractions p/q, q <= 200
RIR_DIRECT_SAMPLES = 1  # the direct path is one unit impulse at the start of the response
DECAY_60_DB = 3 * math.log(10)  # amplitude exp(-DECAY_60_DB * t / rt60) is -60 dB at rt60

FloatRange: TypeAlias = tuple[float, float]
IntRange: TypeAlias = tuple[int, int]
BabbleSource: TypeAlias = Callable[[np.random.Generator], np.ndarray]
"""Draws one other training clip, (n,) float32 16 kHz, with the given generator (for babble)."""


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
        self._check("high", self.high[1] < NYQUIST, f"must be below {NYQUIST:g} Hz")
        self._check("high", self.low[1] < self.high[0], f"must lie above low={self.low[1]:g}")


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
    for kind in (Noise, Reverb, Speed, Pitch, Volume, Eq, FreqMask, TimeMask, TimeWarp)
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
    """The `--help` text of every augmentation and key, from the dataclasses themselves."""
    lines = [
        "SPEC is name[p=P,key=VALUE,...] (DeepSpeech 0.9's syntax); VALUE may be a range LO:HI,",
        "drawn anew for every utterance and epoch; a bare name takes the defaults. Repeatable:",
        "waveform augmentations apply in the order given, each with its probability p.",
    ]
    for kind in AUGMENTATIONS.values():
        lines.append(f"{kind.name} ({kind.domain}): {(kind.__doc__ or '').strip()}")
        for f in dataclasses.fields(kind):
            lines.append(f"  {f.name}={_format_value(f.default)}: {f.metadata['help']}")
    return "\n".join(lines)


AUGMENT_HELP = _help_text()


def draw(rng: np.random.Generator, value: FloatRange | IntRange) -> float:
    """A uniform draw from a LO:HI range (whole numbers for an IntRange, both ends included)."""
    low, high = value
    if isinstance(low, int) and isinstance(high, int):
        return int(rng.integers(low, high + 1))
    return float(rng.uniform(low, high)) if high > low else float(low)


# --- waveform augmentations: (n_samples,) float32 at SAMPLE_RATE -> (m,) float32 -------------


def power(audio: np.ndarray) -> float:
    """Mean square of a clip (its power); 0 for an empty or silent clip."""
    return float(np.mean(np.square(audio, dtype=np.float64))) if len(audio) else 0.0


def colored_noise(n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum 1/f^0 (white), 1/f (pink) or 1/f^2 (brown): (n,) float32.

    Shaped in the frequency domain (amplitude ∝ f^(-alpha/2)), DC removed, unit power.
    """
    alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    white = rng.standard_normal(n_samples)
    if alpha:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n_samples)
        spectrum[1:] /= freqs[1:] ** (alpha / 2)
        spectrum[0] = 0.0
        white = np.fft.irfft(spectrum, n_samples)
    return _at_power(white, 1.0)


def babble_noise(
    n_samples: int, layers: int, source: BabbleSource, rng: np.random.Generator
) -> np.ndarray:
    """Other clips talking at once: `layers` clips, each at unit power, looped from a random
    offset to `n_samples` and summed: (n,) float32 (unit power)."""
    total = np.zeros(n_samples)
    for _ in range(layers):
        clip = np.asarray(source(rng), dtype=np.float64)
        if power(clip) == 0.0:
            continue
        looped = np.resize(np.roll(clip, -int(rng.integers(len(clip)))), n_samples)
        total += looped / math.sqrt(power(clip))
    return _at_power(total, 1.0)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """audio + noise scaled so that power(audio) / power(noise) is `snr_db`: (n,) float32."""
    if power(noise) == 0.0 or power(audio) == 0.0:
        return audio.astype(np.float32)
    scale = math.sqrt(power(audio) / power(noise) / 10 ** (snr_db / 10))
    return (audio + scale * noise).astype(np.float32)


def room_impulse_response(
    rt60: float, drr_db: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A synthetic room response: a direct impulse, then Gaussian noise decaying exponentially
    by 60 dB in `rt60` seconds, scaled to the direct-to-reverberant ratio `drr_db`.

    -> (round(rt60 * sample_rate) + 1,) float32. The statistical model of late reverberation
    (Polack): real rooms add early reflections, which this leaves out.
    """
    n_tail = round(rt60 * sample_rate)
    t = np.arange(1, n_tail + 1) / sample_rate
    tail = rng.standard_normal(n_tail) * np.exp(-DECAY_60_DB * t / rt60)
    tail *= math.sqrt(10 ** (-drr_db / 10) / np.sum(np.square(tail)))
    return np.concatenate([np.ones(RIR_DIRECT_SAMPLES), tail]).astype(np.float32)


def reverberate(audio: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Convolve with a room response, keep the input's length and power: (n,) -> (n,) float32.

    The tail past the end is cut (the transcript ends with the clip); the power is restored so
    reverb changes the sound, not the level.
    """
    from scipy.signal import fftconvolve

    wet = fftconvolve(audio.astype(np.float64), response.astype(np.float64))[: len(audio)]
    return _at_power(wet, power(audio))


def resample_by(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play the clip `factor` times faster: (n,) -> (~n / factor,) float32, pitch × factor.

    The factor is rounded to a fraction p/q with q <= MAX_RESAMPLE_DENOMINATOR (under 0.3 %).
    """
    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    if ratio == 1:
        return audio.astype(np.float32)
    return resample_poly(audio.astype(np.float64), ratio.denominator, ratio.numerator).astype(
        np.float32
    )


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """Phase-vocoder time stretch, pitch kept: (n,) -> (~n / rate,) float32.

    Magnitudes are interpolated between STFT frames and phases advanced by each bin's measured
    frequency (Flanagan & Golden), then overlap-added back.
    """
    from scipy.signal import istft, stft

    window = "hann"
    _, _, spectrum = stft(
        audio.astype(np.float64),
        nperseg=PITCH_N_FFT,
        noverlap=PITCH_N_FFT - PITCH_HOP,
        window=window,
    )
    steps = np.arange(0, spectrum.shape[1] - 1, rate)
    expected = 2 * np.pi * PITCH_HOP * np.arange(spectrum.shape[0]) / PITCH_N_FFT
    phase = np.angle(spectrum[:, 0])
    stretched = np.empty((spectrum.shape[0], len(steps)), dtype=np.complex128)
    for i, step in enumerate(steps):
        left, frac = int(step), step - int(step)
        a, b = spectrum[:, left], spectrum[:, left + 1]
        stretched[:, i] = ((1 - frac) * np.abs(a) + frac * np.abs(b)) * np.exp(1j * phase)
        delta = np.angle(b) - np.angle(a) - expected
        phase += expected + (delta + np.pi) % (2 * np.pi) - np.pi
    _, out = istft(stretched, nperseg=PITCH_N_FFT, noverlap=PITCH_N_FFT - PITCH_HOP, window=window)
    return out.astype(np.float32)


def shift_pitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and formants) by `semitones`, same duration: (n,) -> (n,) float32.

    Stretched in time by 2^(semitones/12), then played that much faster; the last few ms are
    cut or zero-padded to the input length.
    """
    if semitones == 0:
        return audio.astype(np.float32)
    factor = 2 ** (semitones / 12)
    shifted = resample_by(time_stretch(audio, 1 / factor), factor)
    return _fit_length(shifted, len(audio))


def apply_gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by `gain_db` decibels: (n,) -> (n,) float32 (not clipped)."""
    return (audio * 10 ** (gain_db / 20)).astype(np.float32)


def band_pass(audio: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass between `low_hz` and `high_hz`: (n,) -> (n,) float32."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(EQ_FILTER_ORDER, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, audio.astype(np.float64)).astype(np.float32)


def spectral_tilt(audio: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum by `db_per_octave` around TILT_PIVOT_HZ: (n,) -> (n,) float32.

    Gain(f) = db_per_octave × log2(max(f, TILT_FLOOR_HZ) / TILT_PIVOT_HZ) dB, applied in the
    frequency domain: a cheap microphone or a muffled (or bright) recording.
    """
    spectrum = np.fft.rfft(audio.astype(np.float64))
    freqs = np.maximum(np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE), TILT_FLOOR_HZ)
    gain_db = db_per_octave * np.log2(freqs / TILT_PIVOT_HZ)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), len(audio)).astype(np.float32)


def augment_waveform(
    audio: np.ndarray,
    augmentation: Augmentation,
    rng: np.random.Generator,
    babble_source: BabbleSource | None = None,
) -> np.ndarray:
    """Apply one waveform augmentation (always: p is the caller's business), its values drawn
    from `rng`: (n,) float32 -> (m,) float32 (m differs from n only for `speed`)."""
    if isinstance(augmentation, Noise):
        colors = ["white", "pink", "brown"] + (["babble"] if babble_source else [])
        color = augmentation.color if augmentation.color != "any" else str(rng.choice(colors))
        if color == "babble":
            if babble_source is None:
                raise ConfigError("noise: color=babble needs other clips (a babble source)")
            noise = babble_noise(len(audio), draw(rng, augmentation.layers), babble_source, rng)
        else:
            noise = colored_noise(len(audio), color, rng)
        return add_noise(audio, noise, draw(rng, augmentation.snr))
    if isinstance(augmentation, Reverb):
        rt60, drr = draw(rng, augmentation.rt60), draw(rng, augmentation.drr)
        return reverberate(audio, room_impulse_response(rt60, drr, rng))
    if isinstance(augmentation, Speed):
        return resample_by(audio, draw(rng, augmentation.factor))
    if isinstance(augmentation, Pitch):
        return shift_pitch(audio, draw(rng, augmentation.semitones))
    if isinstance(augmentation, Volume):
        return apply_gain(audio, draw(rng, augmentation.gain))
    if isinstance(augmentation, Eq):
        modes = Eq.choices["mode"][1:]
        mode = augmentation.mode if augmentation.mode != "any" else str(rng.choice(modes))
        if mode == "telephone":
            return band_pass(audio, *TELEPHONE_BAND_HZ)
        if mode == "band":
            return band_pass(audio, draw(rng, augmentation.low), draw(rng, augmentation.high))
        return spectral_tilt(audio, draw(rng, augmentation.tilt))
    raise ValueError(f"{augmentation.name} is a {augmentation.domain} augmentation")


def apply_waveform_augmentations(
    audio: np.ndarray,
    augmentations: Sequence[Augmentation],
    rng: np.random.Generator,
    babble_source: BabbleSource | None = None,
) -> np.ndarray:
    """Apply the waveform augmentations in order, each with its probability p.

    (n_samples,) float32 at SAMPLE_RATE -> (m,) float32; feature-domain augmentations in the
    list are skipped (`spec_augment.apply_feature_augmentations` runs them). The result is a
    pure function of the inputs and the generator's state: seed it per (seed, epoch,
    utterance), e.g. `np.random.default_rng([seed, epoch, index])`, for a new draw each epoch
    that a re-run repeats. `babble_source` draws other training clips for `noise` babble;
    without it `color=any` picks only colored noise.
    """
    out = np.asarray(audio, dtype=np.float32)
    for augmentation in augmentations:
        if augmentation.domain != "waveform":
            continue
        if rng.random() < augmentation.p:
            out = augment_waveform(out, augmentation, rng, babble_source)
    return out


def _at_power(signal: np.ndarray, target: float) -> np.ndarray:
    """Scale to mean square `target`: (n,) -> (n,) float32 (silence stays silent)."""
    current = power(signal)
    if current == 0.0:
        return signal.astype(np.float32)
    return (signal * math.sqrt(target / current)).astype(np.float32)


def _fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Cut or zero-pad to `n_samples`: (m,) -> (n_samples,) float32."""
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, len(audio))] = audio[:n_samples]
    return out
