"""Tests for `pad` in deepspeech/data/augment{_spec,}.py: background before and after the clip,
and the speech span the chain keeps so that `noise` measures its SNR on the speech."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepspeech.audio import SAMPLE_RATE
from deepspeech.data.augment import (
    apply_waveform_augmentations,
    augment_tracking_speech,
    augment_waveform,
    power,
)
from deepspeech.data.augment_spec import Pad, parse_augmentation, parse_augmentations
from deepspeech.errors import ConfigError


def speech_like(seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone (150 Hz and its overtones) under a syllable-rate envelope."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 150 * k * t + k) / k for k in range(1, 20))
    return (0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def db(ratio: float) -> float:
    return 10 * math.log10(ratio)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


CLEAN = speech_like()
N = CLEAN.size


def test_pad_parses_with_defaults_and_ranges() -> None:
    assert parse_augmentation("pad") == Pad()
    assert (Pad().p, Pad().before, Pad().after, Pad().level) == (
        1.0,
        (0.0, 0.5),
        (0.0, 0.5),
        (-70.0, -30.0),
    )
    pad = parse_augmentation("pad[p=0.5,before=0.1:0.3,after=0.2,level=-50:-40]")
    assert pad == Pad(p=0.5, before=(0.1, 0.3), after=(0.2, 0.2), level=(-50.0, -40.0))
    assert parse_augmentation(pad.spec()) == pad


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pad[before=-0.1]", r"pad: before=-0.1 must be in \[0, 5\] s"),
        ("pad[after=0:9]", r"pad: after=0:9 must be in \[0, 5\] s"),
        ("pad[level=-20:10]", r"pad: level=-20:10 must be at most 0 dB"),
        ("pad[level=quiet]", r"pad: level=quiet is not a number or LO:HI"),
        ("pad[before=0.5:0.1]", r"pad: before=0.5:0.1: LO must not exceed HI"),
        ("pad[length=1]", r"pad: unknown key 'length'; known: after, before, level, p"),
        ("pad[p=2]", r"pad: p=2.0 must be in \[0, 1\]"),
    ],
)
def test_bad_pad_specs_are_one_line_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_augmentation(spec)
    assert "\n" not in str(error.value)


def test_pad_adds_the_asked_samples_around_the_untouched_clip() -> None:
    out = augment_waveform(CLEAN, parse_augmentation("pad[before=0.25,after=0.125]"), rng())
    before, after = SAMPLE_RATE // 4, SAMPLE_RATE // 8
    assert out.dtype == np.float32 and out.shape == (before + N + after,)
    assert np.array_equal(out[before : before + N], CLEAN)
    assert np.all(out[:before] != 0) and np.all(out[before + N :] != 0)  # a floor, not zeros


@pytest.mark.parametrize("level", [-60.0, -45.0, -30.0])
def test_the_background_is_at_its_level_under_the_clip(level: float) -> None:
    out = augment_waveform(
        CLEAN, parse_augmentation(f"pad[before=0.3,after=0.3,level={level}]"), rng()
    )
    n = round(0.3 * SAMPLE_RATE)
    background = np.concatenate([out[:n], out[-n:]])
    assert db(power(background) / power(CLEAN)) == pytest.approx(level, abs=0.01)
    assert db(power(out[:n]) / power(CLEAN)) == pytest.approx(level, abs=0.5)  # on both sides


def test_drawn_durations_and_levels_stay_in_their_ranges() -> None:
    spec = parse_augmentation("pad[before=0.1:0.2,after=0:0.05,level=-50:-40]")
    lengths = []
    for seed in range(20):
        out = augment_waveform(CLEAN, spec, rng(seed))
        extra = out.size - N
        lengths.append(extra)
        assert round(0.1 * SAMPLE_RATE) <= extra <= round(0.25 * SAMPLE_RATE)
        start = int(np.flatnonzero(out == CLEAN[0])[0])  # where the clip begins
        background = np.delete(out, np.s_[start : start + N])
        if background.size > SAMPLE_RATE // 100:
            assert -50.5 <= db(power(background) / power(CLEAN)) <= -39.5
    assert len(set(lengths)) > 10


def test_p_zero_leaves_the_clip_alone_and_a_seed_repeats_the_draw() -> None:
    never = parse_augmentations(["pad[p=0]"])
    assert all(
        np.array_equal(apply_waveform_augmentations(CLEAN, never, rng(s)), CLEAN) for s in range(10)
    )
    specs = parse_augmentations(["pad"])
    first = apply_waveform_augmentations(CLEAN, specs, rng(7))
    assert np.array_equal(first, apply_waveform_augmentations(CLEAN, specs, rng(7)))
    others = {apply_waveform_augmentations(CLEAN, specs, rng(s)).tobytes() for s in range(5)}
    assert len(others) == 5 and first.tobytes() not in others


TOLERANCE_DB = {"white": 0.2, "pink": 2.0, "brown": 10.0}


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_noise_after_pad_covers_the_padding_at_the_snr_of_the_speech(color: str) -> None:
    specs = parse_augmentations(["pad[before=1,after=1,level=-60]", f"noise[snr=10,color={color}]"])
    out = apply_waveform_augmentations(CLEAN, specs, rng())
    assert out.size == N + 2 * SAMPLE_RATE
    speech = slice(SAMPLE_RATE, SAMPLE_RATE + N)
    noise = out[speech] - CLEAN  # the padded clip's middle is the clean clip
    assert db(power(CLEAN) / power(noise)) == pytest.approx(10.0, abs=0.01)
    # The padding now holds the noise, far above its -60 dB floor: about -10 dB, give or take
    # what a second of pink and (most) brown noise wanders from the level of another second.
    for edge in (out[:SAMPLE_RATE], out[-SAMPLE_RATE:]):
        assert db(power(edge) / power(CLEAN)) == pytest.approx(-10.0, abs=TOLERANCE_DB[color])


def test_the_speech_span_follows_pad_and_speed() -> None:
    n_before, n_after = SAMPLE_RATE // 2, SAMPLE_RATE // 4
    padded, span = augment_tracking_speech(
        CLEAN, (0, N), parse_augmentation("pad[before=0.5,after=0.25]"), rng()
    )
    assert span == (n_before, n_before + N)
    faster, span = augment_tracking_speech(
        padded, span, parse_augmentation("speed[factor=1.25]"), rng()
    )
    assert faster.size == pytest.approx(padded.size / 1.25, abs=1)
    assert span == (round(n_before / 1.25), round((n_before + N) / 1.25))
    louder, kept = augment_tracking_speech(
        faster, span, parse_augmentation("volume[gain=6]"), rng()
    )
    assert kept == span and louder.size == faster.size
    assert padded.size == N + n_before + n_after


def test_a_silent_clip_is_padded_with_digital_silence() -> None:
    silent = np.zeros(1000, np.float32)
    out = augment_waveform(silent, parse_augmentation("pad[before=0.1,after=0.1]"), rng())
    assert out.shape == (1000 + 2 * SAMPLE_RATE // 10,) and not out.any()
