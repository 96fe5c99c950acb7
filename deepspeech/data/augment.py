"""Waveform augmentations: pure NumPy/SciPy functions of a clip and a random generator.

`noise`, `reverb`, `speed`, `pitch`, `volume`, `eq` and `pad` (SPECs parsed by `augment_spec`)
act on a (n_samples,) float32 clip at SAMPLE_RATE. A chain of them follows where the speech
lies in the clip (its `Span`): `pad` moves it, `speed` scales it, and `noise` and `pad` measure
the clip's level on it, so padding never dilutes an SNR. Every random choice comes from the
`numpy.random.Generator` passed in, so a clip's augmentation is a pure function of (clip,
SPECs, generator seed): data workers seed per (seed, epoch, utterance) and draw anew every
epoch, and a re-run repeats the draws. Results must never be written into a feature cache
(DeepSpeech's cache silently froze its augmentations after epoch 1).

The SPEC language is re-exported here (`parse_augmentations`, `AUGMENT_HELP`, ...), so one
import serves a data worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TypeAlias

import numpy as np
import scipy.fft
from scipy.signal import fftconvolve, istft, resample_poly, stft

from deepspeech.audio import SAMPLE_RATE
from deepspeech.data.augment_spec import (
    AUGMENT_HELP,
    AUGMENTATIONS,
    Augmentation,
    Eq,
    FloatRange,
    IntRange,
    Noise,
    Pad,
    Pitch,
    Reverb,
    Speed,
    Volume,
    parse_augmentation,
    parse_augmentations,
)
from deepspeech.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "AUGMENT_HELP",
    "BabbleSource",
    "apply_waveform_augmentations",
    "augment_waveform",
    "parse_augmentation",
    "parse_augmentations",
]

TELEPHONE_BAND_HZ = (300.0, 3400.0)  # ITU-T G.712 narrow-band telephone channel
EQ_FILTER_ORDER = 8  # Butterworth order (applied forward and backward: 16 in magnitude)
TILT_PIVOT_HZ = 1000.0  # spectral tilt leaves this frequency's level unchanged
TILT_FLOOR_HZ = 50.0  # below this the tilt gain stays constant (no boost of DC rumble)
PITCH_N_FFT = 512  # phase vocoder window: 32 ms, fine enough for speech harmonics
PITCH_HOP = 128  # 8 ms hop (75 % overlap)
MAX_RESAMPLE_DENOMINATOR = 200  # speed/pitch factors are rounded to fractions p/q, q <= 200
RIR_DIRECT_SAMPLES = 1  # the direct path is one unit impulse at the start of the response
DECAY_60_DB = 3 * math.log(10)  # amplitude exp(-DECAY_60_DB * t / rt60) is -60 dB at rt60

BabbleSource: TypeAlias = Callable[[np.random.Generator], np.ndarray]
"""Draws one other training clip, (n,) float32 16 kHz, with the given generator (for babble)."""

Span: TypeAlias = tuple[int, int]
"""Where the speech lies in a clip: samples [start, stop) (the whole clip until `pad` adds
background)."""


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

    Shaped in the frequency domain (amplitude ∝ f^(-alpha/2)), DC removed, unit power. The
    FFT runs at the next length with small prime factors and is cut to `n_samples`: a clip's
    own length can be a large prime, and that FFT took 7x as long (most of an augmented
    epoch's noise cost).
    """
    alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    if not alpha:
        return _at_power(rng.standard_normal(n_samples), 1.0)
    n_fft = scipy.fft.next_fast_len(n_samples, real=True)
    spectrum = scipy.fft.rfft(rng.standard_normal(n_fft))
    freqs = scipy.fft.rfftfreq(n_fft)
    spectrum[1:] /= freqs[1:] ** (alpha / 2)
    spectrum[0] = 0.0
    noise = scipy.fft.irfft(spectrum, n_fft)[:n_samples]
    return _at_power(noise - noise.mean(), 1.0)


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


def add_noise(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, speech: Span | None = None
) -> np.ndarray:
    """audio + noise scaled to `snr_db` over the `speech` span (default: the whole clip):
    power(audio[speech]) / power(noise[speech]) is `snr_db`. (n,), (n,) -> (n,) float32.

    Measured on the speech, the SNR means the same on a padded clip as on the bare one: over
    the whole clip, 1 s of quiet padding around a 2 s clip would make the noise 1.8 dB quieter.
    """
    start, stop = speech or (0, len(audio))
    signal, background = power(audio[start:stop]), power(noise[start:stop])
    if signal == 0.0 or background == 0.0:
        return audio.astype(np.float32)
    scale = math.sqrt(signal / background / 10 ** (snr_db / 10))
    return (audio + scale * noise).astype(np.float32)


def pad_with_background(
    audio: np.ndarray,
    n_before: int,
    n_after: int,
    level_db: float,
    rng: np.random.Generator,
    speech: Span | None = None,
) -> np.ndarray:
    """The clip with `n_before` and `n_after` samples of white noise around it, `level_db`
    relative to the power of its `speech` span (default: the whole clip):
    (n,) -> (n_before + n + n_after,) float32, the clip's samples unchanged in the middle.

    A silent clip gets digital silence (a level relative to nothing).
    """
    start, stop = speech or (0, len(audio))
    floor = colored_noise(n_before + n_after, "white", rng)
    floor *= math.sqrt(power(audio[start:stop]) * 10 ** (level_db / 10))
    return np.concatenate([floor[:n_before], audio, floor[n_before:]]).astype(np.float32)


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
    wet = fftconvolve(audio.astype(np.float64), response.astype(np.float64))[: len(audio)]
    return _at_power(wet, power(audio))


def resample_by(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play the clip `factor` times faster: (n,) -> (~n / factor,) float32, pitch × factor.

    The factor is rounded to a fraction p/q with q <= MAX_RESAMPLE_DENOMINATOR (under 0.3 %).
    """
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
    window = "hann"
    _, _, spectrum = stft(
        audio.astype(np.float64),
        nperseg=PITCH_N_FFT,
        noverlap=PITCH_N_FFT - PITCH_HOP,
        window=window,
    )
    steps = np.arange(0, spectrum.shape[1] - 1, rate)
    left = steps.astype(int)
    fraction = steps - left
    a, b = spectrum[:, left], spectrum[:, left + 1]  # (n_bins, n_steps) each
    magnitude = (1 - fraction) * np.abs(a) + fraction * np.abs(b)
    expected = (2 * np.pi * PITCH_HOP * np.arange(spectrum.shape[0]) / PITCH_N_FFT)[:, None]
    advance = expected + (np.angle(b) - np.angle(a) - expected + np.pi) % (2 * np.pi) - np.pi
    # Each step's phase is the first frame's plus the advances of the steps before it.
    phase = np.angle(spectrum[:, :1]) + np.cumsum(advance, axis=1) - advance
    stretched = magnitude * np.exp(1j * phase)
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
    """Zero-phase Butterworth band-pass between `low_hz` and `high_hz`: (n,) -> (n,) float32.

    The filter `scipy.signal.butter` designs (order EQ_FILTER_ORDER, bilinear transform with
    pre-warped edges) run forward and backward has the real response

        |H(f)|^2 = 1 / (1 + x^(2N)),  x = (W^2 - W_lo W_hi) / (W (W_hi - W_lo)),
        W = 2 fs tan(pi f / fs),

    and that is what multiplies the spectrum here. Designing the filter's sections for every
    draw and running them took 2.3 ms for a 1.9 s clip, this 0.5 ms (benchmarks/augmentation.py).
    """
    w_low, w_high = (
        2 * SAMPLE_RATE * math.tan(math.pi * f / SAMPLE_RATE) for f in (low_hz, high_hz)
    )

    def response(freqs: np.ndarray) -> np.ndarray:
        # At 0 Hz and Nyquist x is infinite (no gain); x^(2N) as exp(2N ln|x|): pow took 4x.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            warped = 2 * SAMPLE_RATE * np.tan(np.pi * freqs / SAMPLE_RATE)
            x = (np.square(warped) - w_low * w_high) / (warped * (w_high - w_low))
            return 1 / (1 + np.exp(2 * EQ_FILTER_ORDER * np.log(np.abs(x))))

    return filter_zero_phase(audio, response)


def spectral_tilt(audio: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum by `db_per_octave` around TILT_PIVOT_HZ: (n,) -> (n,) float32.

    Gain(f) = db_per_octave × log2(max(f, TILT_FLOOR_HZ) / TILT_PIVOT_HZ) dB: a cheap
    microphone or a muffled (or bright) recording.
    """

    def response(freqs: np.ndarray) -> np.ndarray:
        gain_db = db_per_octave * np.log2(np.maximum(freqs, TILT_FLOOR_HZ) / TILT_PIVOT_HZ)
        return 10 ** (gain_db / 20)

    return filter_zero_phase(audio, response)


def filter_zero_phase(
    audio: np.ndarray, response: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Multiply the spectrum by a real `response(frequencies in Hz)`: (n,) -> (n,) float32.

    The FFT runs at the next length with small prime factors, the clip zero-padded to it: a
    clip's own length can be a large prime, and that FFT took eight times as long.
    """
    if not len(audio):
        return audio.astype(np.float32)
    n_fft = scipy.fft.next_fast_len(len(audio), real=True)
    spectrum = scipy.fft.rfft(audio.astype(np.float64), n_fft)
    spectrum *= response(scipy.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE))
    return scipy.fft.irfft(spectrum, n_fft)[: len(audio)].astype(np.float32)


def augment_waveform(
    audio: np.ndarray,
    augmentation: Augmentation,
    rng: np.random.Generator,
    babble_source: BabbleSource | None = None,
) -> np.ndarray:
    """Apply one waveform augmentation (always: p is the caller's business), its values drawn
    from `rng`: (n,) float32 -> (m,) float32 (m differs from n only for `speed` and `pad`)."""
    return augment_tracking_speech(audio, (0, len(audio)), augmentation, rng, babble_source)[0]


def augment_tracking_speech(
    audio: np.ndarray,
    speech: Span,
    augmentation: Augmentation,
    rng: np.random.Generator,
    babble_source: BabbleSource | None = None,
) -> tuple[np.ndarray, Span]:
    """`augment_waveform` for a clip whose speech lies in `speech`: (n,) float32 -> the
    augmented (m,) float32 clip and where the speech lies in it."""
    if isinstance(augmentation, Pad):
        n_before, n_after = (
            round(draw(rng, value) * SAMPLE_RATE)
            for value in (augmentation.before, augmentation.after)
        )
        padded = pad_with_background(
            audio, n_before, n_after, draw(rng, augmentation.level), rng, speech
        )
        return padded, (speech[0] + n_before, speech[1] + n_before)
    if isinstance(augmentation, Speed):
        out = resample_by(audio, draw(rng, augmentation.factor))
        stretch = len(out) / max(len(audio), 1)
        return out, (round(speech[0] * stretch), round(speech[1] * stretch))
    return _augment_in_place(audio, speech, augmentation, rng, babble_source), speech


def _augment_in_place(
    audio: np.ndarray,
    speech: Span,
    augmentation: Augmentation,
    rng: np.random.Generator,
    babble_source: BabbleSource | None,
) -> np.ndarray:
    """The augmentations that keep the clip's length (and so where the speech lies)."""
    if isinstance(augmentation, Noise):
        colors = ["white", "pink", "brown"] + (["babble"] if babble_source else [])
        color = augmentation.color if augmentation.color != "any" else str(rng.choice(colors))
        if color == "babble":
            if babble_source is None:
                raise ConfigError("noise: color=babble needs other clips (a babble source)")
            noise = babble_noise(len(audio), draw(rng, augmentation.layers), babble_source, rng)
        else:
            noise = colored_noise(len(audio), color, rng)
        return add_noise(audio, noise, draw(rng, augmentation.snr), speech)
    if isinstance(augmentation, Reverb):
        rt60, drr = draw(rng, augmentation.rt60), draw(rng, augmentation.drr)
        return reverberate(audio, room_impulse_response(rt60, drr, rng))
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
    speech = (0, len(out))
    for augmentation in augmentations:
        if augmentation.domain != "waveform":
            continue
        if rng.random() < augmentation.p:
            out, speech = augment_tracking_speech(out, speech, augmentation, rng, babble_source)
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
