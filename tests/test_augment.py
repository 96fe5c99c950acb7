"""Tests for deepspeech/data/augment{_spec,}.py: SPEC parsing, and each waveform augmentation
measured on the audio it returns."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from deepspeech.audio import SAMPLE_RATE
from deepspeech.data.augment import (
    EQ_FILTER_ORDER,
    TELEPHONE_BAND_HZ,
    apply_waveform_augmentations,
    augment_waveform,
    band_pass,
    draw,
    power,
    reverberate,
    room_impulse_response,
    shift_pitch,
)
from deepspeech.data.augment_spec import (
    AUGMENT_HELP,
    AUGMENTATIONS,
    Eq,
    Noise,
    Speed,
    TimeMask,
    parse_augmentation,
    parse_augmentations,
)
from deepspeech.errors import ConfigError

SECONDS = 2.0


def sine(hz: float, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def speech_like(seed: int = 0) -> np.ndarray:
    """A harmonic tone (150 Hz and its overtones) under a syllable-rate envelope."""
    t = np.arange(round(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 150 * k * t + k) / k for k in range(1, 20))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.2 * tone * envelope).astype(np.float32)


def white(seed: int = 0, seconds: float = SECONDS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def band_db(audio: np.ndarray, low: float, high: float) -> float:
    """Mean power spectral density between low and high Hz, in dB (Hann window: little leakage)."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return 10 * math.log10(np.mean(spectrum[(freqs >= low) & (freqs < high)]))


def peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def db(ratio: float) -> float:
    return 10 * math.log10(ratio)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- SPEC parsing --------------------------------------------------------------------------


def test_a_spec_becomes_a_frozen_dataclass_with_defaults_for_the_rest() -> None:
    noise = parse_augmentation("noise[p=0.5,snr=5:25,color=pink]")
    assert noise == Noise(p=0.5, snr=(5.0, 25.0), color="pink")
    assert noise.layers == Noise().layers
    with pytest.raises(dataclasses.FrozenInstanceError):
        noise.p = 1.0  # type: ignore[misc]
    assert parse_augmentation("speed") == Speed()
    assert parse_augmentation(" eq[ mode = telephone ] ") == Eq(mode="telephone")
    assert parse_augmentation("time_mask[n=2,size=3:7]") == TimeMask(n=(2, 2), size=(3, 7))


def test_a_single_value_is_a_range_of_one() -> None:
    assert parse_augmentation("volume[gain=6]").gain == (6.0, 6.0)
    assert draw(rng(), (6.0, 6.0)) == 6.0


def test_every_augmentation_round_trips_through_its_canonical_spec() -> None:
    for kind in AUGMENTATIONS.values():
        augmentation = kind()
        assert parse_augmentation(augmentation.spec()) == augmentation
    specs = parse_augmentations(["noise[p=0.3]", "freq_mask", "reverb[rt60=0.2:0.4]"])
    assert [a.name for a in specs] == ["noise", "freq_mask", "reverb"]


def test_names_match_the_contract() -> None:
    contract = ("noise", "reverb", "speed", "pitch", "volume", "eq")
    assert set(contract) | {"freq_mask", "time_mask", "time_warp"} <= AUGMENTATIONS.keys()
    assert {AUGMENTATIONS[n].domain for n in contract} == {"waveform"}
    assert {AUGMENTATIONS[n].domain for n in ("freq_mask", "time_mask", "time_warp")} == {"feature"}


def test_help_documents_every_augmentation_and_key() -> None:
    for name, kind in AUGMENTATIONS.items():
        assert f"\n- `{name}` ({kind.domain}): " in AUGMENT_HELP
        for key in dataclasses.fields(kind):
            assert f"    - `{key.name}=" in AUGMENT_HELP
    assert "LO:HI" in AUGMENT_HELP


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("echo[p=1]", r"unknown augmentation 'echo'; known: noise, reverb, speed, .*time_warp"),
        ("noise[level=3]", r"noise: unknown key 'level'; known: color, layers, p, snr"),
        ("noise[snr=loud]", r"noise: snr=loud is not a number or LO:HI"),
        ("time_mask[n=1.5]", r"time_mask: n=1.5 is not a whole number or LO:HI"),
        ("noise[snr=30:5]", r"noise: snr=30:5: LO must not exceed HI"),
        ("noise[p=1.5]", r"noise: p=1.5 must be in \[0, 1\]"),
        ("noise[color=purple]", r"noise: color=purple must be one of any, white, pink"),
        ("eq[mode=radio]", r"eq: mode=radio must be one of any, band, tilt, telephone"),
        ("eq[high=9000]", r"eq: high=9000 must be below 8000 Hz"),
        ("speed[factor=3]", r"speed: factor=3 must be in \[0.5, 2\]"),
        ("reverb[rt60=0]", r"reverb: rt60=0 must be in \[0.01, 3\]"),
        ("noise[snr]", r"noise: key 'snr' needs a value"),
        ("noise[snr=5,snr=6]", r"noise: key 'snr' given twice"),
        ("noise[p=1", r"augmentation 'noise\[p=1' is not name\[key=VALUE,...\]"),
        ("Noise", r"is not name\[key=VALUE"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_augmentation(spec)
    assert "\n" not in str(error.value)


# --- noise ---------------------------------------------------------------------------------


@pytest.mark.parametrize("color", ["white", "pink", "brown", "babble"])
def test_noise_is_added_at_a_measured_snr_within_the_range(color: str) -> None:
    clean = speech_like()
    spec = parse_augmentation(f"noise[snr=5:15,color={color}]")
    for seed in range(5):
        noisy = augment_waveform(clean, spec, rng(seed), babble_source=lambda r: speech_like(7))
        assert noisy.shape == clean.shape and noisy.dtype == np.float32
        snr = db(power(clean) / power(noisy - clean))
        assert 5 - 1e-3 <= snr <= 15 + 1e-3


def test_a_fixed_snr_is_met_exactly() -> None:
    clean = speech_like()
    noisy = augment_waveform(clean, parse_augmentation("noise[snr=10,color=pink]"), rng())
    assert db(power(clean) / power(noisy - clean)) == pytest.approx(10.0, abs=0.01)


def test_noise_colors_have_their_spectral_slopes() -> None:
    """Power falls by 0, 10 and 20 dB per decade for white, pink and brown noise."""
    silence_free = np.ones(4 * SAMPLE_RATE, dtype=np.float32)
    for color, slope in (("white", 0.0), ("pink", -10.0), ("brown", -20.0)):
        spec = parse_augmentation(f"noise[snr=0,color={color}]")
        noise = augment_waveform(silence_free, spec, rng()) - silence_free
        fall = band_db(noise, 2000, 4000) - band_db(noise, 200, 400)
        assert fall == pytest.approx(slope, abs=1.5), color


def test_babble_is_made_of_the_clips_it_is_given() -> None:
    clean = sine(200)
    spec = parse_augmentation("noise[snr=0,color=babble,layers=2:4]")
    noisy = augment_waveform(
        clean, spec, rng(), babble_source=lambda r: sine(1234, r.uniform(1, 3))
    )
    assert peak_hz(noisy - clean) == pytest.approx(1234, abs=2)
    with pytest.raises(ConfigError, match="color=babble needs other clips"):
        augment_waveform(clean, spec, rng())


def test_any_color_draws_babble_only_when_clips_are_given() -> None:
    clean = sine(200)
    spec = parse_augmentation("noise[snr=0]")
    peaks = {
        peak_hz(augment_waveform(clean, spec, rng(s), lambda r: sine(1234)) - clean)
        for s in range(30)
    }
    assert 1234 in peaks and len(peaks) > 1
    assert all(augment_waveform(clean, spec, rng(s)).shape == clean.shape for s in range(10))


# --- reverb --------------------------------------------------------------------------------


def schroeder_rt60(response: np.ndarray) -> float:
    """RT60 from the backward-integrated energy decay of the tail, fitted from -5 to -25 dB."""
    tail = response[1:].astype(np.float64) ** 2
    decay = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / np.sum(tail))
    t = np.arange(len(tail)) / SAMPLE_RATE
    fit = (decay <= -5) & (decay >= -25)
    slope = np.polyfit(t[fit], decay[fit], 1)[0]  # dB per second
    return -60 / slope


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_room_response_decays_by_60_db_in_rt60(rt60: float) -> None:
    response = room_impulse_response(rt60, drr_db=3.0, rng=rng())
    assert response.dtype == np.float32 and len(response) == round(rt60 * SAMPLE_RATE) + 1
    assert schroeder_rt60(response) == pytest.approx(rt60, rel=0.1)
    direct, tail = response[0] ** 2, np.sum(response[1:].astype(np.float64) ** 2)
    assert db(direct / tail) == pytest.approx(3.0, abs=0.01)


def test_reverb_keeps_length_and_level_and_smears_the_sound() -> None:
    clean = speech_like()
    dry = reverberate(clean, room_impulse_response(0.1, 20.0, rng()))
    wet = reverberate(clean, room_impulse_response(0.8, 0.0, rng()))
    for out in (dry, wet):
        assert out.shape == clean.shape and power(out) == pytest.approx(power(clean), rel=1e-4)

    def similarity(out: np.ndarray) -> float:
        return float(np.corrcoef(clean, out)[0, 1])

    assert similarity(dry) > 0.95 and similarity(wet) < similarity(dry) - 0.2


# --- speed, pitch, volume ------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.8, 0.95, 1.1, 1.25])
def test_speed_divides_duration_and_multiplies_frequency(factor: float) -> None:
    clean = sine(300)
    out = augment_waveform(clean, parse_augmentation(f"speed[factor={factor}]"), rng())
    assert len(out) == pytest.approx(len(clean) / factor, rel=0.003)
    assert peak_hz(out) == pytest.approx(300 * factor, rel=0.01)


@pytest.mark.parametrize("semitones", [-5.0, 3.0, 12.0])
def test_pitch_moves_frequency_and_keeps_duration(semitones: float) -> None:
    clean = sine(220)
    out = augment_waveform(clean, parse_augmentation(f"pitch[semitones={semitones}]"), rng())
    assert out.shape == clean.shape and out.dtype == np.float32
    assert peak_hz(out) == pytest.approx(220 * 2 ** (semitones / 12), rel=0.01)
    # The phase vocoder keeps the level steady over the clip: no gaps, no pumping.
    middle = out[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4]
    assert power(middle) == pytest.approx(power(clean), rel=0.25)


def test_zero_semitones_is_the_identity() -> None:
    clean = speech_like()
    assert np.array_equal(shift_pitch(clean, 0.0), clean)


def test_volume_gain_is_as_asked_in_db() -> None:
    clean = speech_like()
    out = augment_waveform(clean, parse_augmentation("volume[gain=-6]"), rng())
    assert db(power(out) / power(clean)) == pytest.approx(-6.0, abs=1e-4)
    for seed in range(10):
        out = augment_waveform(clean, parse_augmentation("volume[gain=3:9]"), rng(seed))
        assert 3 - 1e-4 <= db(power(out) / power(clean)) <= 9 + 1e-4


# --- eq ------------------------------------------------------------------------------------


def test_telephone_band_removes_energy_outside_300_to_3400_hz() -> None:
    clean = white(seconds=4)
    out = augment_waveform(clean, parse_augmentation("eq[mode=telephone]"), rng())
    assert TELEPHONE_BAND_HZ == (300.0, 3400.0)
    assert band_db(out, 20, 150) - band_db(clean, 20, 150) < -40
    assert band_db(out, 4500, 8000) - band_db(clean, 4500, 8000) < -40
    assert band_db(out, 500, 3000) - band_db(clean, 500, 3000) == pytest.approx(0, abs=0.5)


def test_band_pass_cut_offs_are_drawn_from_their_ranges() -> None:
    clean = white(seconds=4)
    spec = parse_augmentation("eq[mode=band,low=400,high=2000:2500]")
    out = augment_waveform(clean, spec, rng())
    assert band_db(out, 20, 200) - band_db(clean, 20, 200) < -40
    assert band_db(out, 3500, 8000) - band_db(clean, 3500, 8000) < -40
    assert band_db(out, 700, 1600) - band_db(clean, 700, 1600) == pytest.approx(0, abs=0.5)


def test_band_pass_is_scipys_butterworth_run_forward_and_backward() -> None:
    """The response multiplied into the spectrum is the designed filter's, squared."""
    from scipy.signal import butter, sosfreqz

    impulse = np.zeros(2**15, dtype=np.float32)
    impulse[2**14] = 1.0
    for low, high in [(300.0, 3400.0), (57.3, 7432.1)]:
        gain = np.abs(np.fft.rfft(band_pass(impulse, low, high)))
        sos = butter(EQ_FILTER_ORDER, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        freqs = np.fft.rfftfreq(impulse.size, 1 / SAMPLE_RATE)
        _, designed = sosfreqz(sos, worN=freqs, fs=SAMPLE_RATE)
        np.testing.assert_allclose(gain, np.abs(designed) ** 2, atol=1e-6)


def test_eq_keeps_the_length_of_a_clip_of_prime_length_or_none() -> None:
    clip = white(seconds=1)[:15991]  # 15991 is prime: the FFT runs padded to a faster length
    for spec in ("eq[mode=telephone]", "eq[mode=band]", "eq[mode=tilt]"):
        out = augment_waveform(clip, parse_augmentation(spec), rng())
        assert out.shape == clip.shape and out.dtype == np.float32
        assert band_db(out, 500, 3000) == pytest.approx(band_db(clip, 500, 3000), abs=6)
        empty = augment_waveform(clip[:0], parse_augmentation(spec), rng())
        assert empty.shape == (0,) and empty.dtype == np.float32


def test_spectral_tilt_is_as_asked_per_octave() -> None:
    clean = white(seconds=4)
    out = augment_waveform(clean, parse_augmentation("eq[mode=tilt,tilt=-4]"), rng())
    # 250-500 Hz to 2-4 kHz is three octaves: -12 dB more than the input's own difference.
    change = (band_db(out, 2000, 4000) - band_db(out, 250, 500)) - (
        band_db(clean, 2000, 4000) - band_db(clean, 250, 500)
    )
    assert change == pytest.approx(-12.0, abs=0.5)
    assert band_db(out, 900, 1100) == pytest.approx(band_db(clean, 900, 1100), abs=0.3)


# --- the entry point -----------------------------------------------------------------------

ALL_WAVEFORM = [
    "noise[p=0.8,snr=10:20]",
    "reverb[p=0.8]",
    "speed[p=0.8]",
    "pitch[p=0.8]",
    "volume[p=0.8]",
    "eq[p=0.8]",
]


def test_augmentation_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    clean = speech_like()
    specs = parse_augmentations(ALL_WAVEFORM)
    babble = lambda r: speech_like(int(r.integers(100)))  # noqa: E731
    first = apply_waveform_augmentations(clean, specs, rng(42), babble)
    again = apply_waveform_augmentations(clean, specs, np.random.default_rng(42), babble)
    assert np.array_equal(first, again)
    others = [apply_waveform_augmentations(clean, specs, rng(s), babble) for s in range(5)]
    assert all(o.shape != first.shape or not np.array_equal(o, first) for o in others)
    assert len({o.tobytes() for o in others}) == 5
    assert np.array_equal(clean, speech_like())  # the input is left alone


def test_probability_decides_how_often_an_augmentation_applies() -> None:
    clean = speech_like()
    never = parse_augmentations(["volume[p=0,gain=6]"])
    assert all(
        np.array_equal(apply_waveform_augmentations(clean, never, rng(s)), clean) for s in range(20)
    )
    sometimes = parse_augmentations(["volume[p=0.3,gain=6]"])
    applied = sum(
        not np.array_equal(apply_waveform_augmentations(clean, sometimes, rng(s)), clean)
        for s in range(400)
    )
    assert 90 <= applied <= 150  # 120 expected; binomial standard deviation 9


def test_feature_augmentations_are_left_to_the_feature_pipeline() -> None:
    clean = speech_like()
    specs = parse_augmentations(["freq_mask", "time_mask", "time_warp"])
    assert np.array_equal(apply_waveform_augmentations(clean, specs, rng()), clean)
    with pytest.raises(ValueError, match="time_mask is a feature augmentation"):
        augment_waveform(clean, specs[1], rng())


def test_int_ranges_include_both_ends() -> None:
    generator = rng()
    draws = {draw(generator, (2, 4)) for _ in range(200)}
    assert draws == {2, 3, 4}
    assert all(isinstance(d, int) for d in draws)
