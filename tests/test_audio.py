"""Tests for deepspeech/audio.py: real WAV files written with soundfile, no mocks."""

import io
import math
import os
import struct
import tracemalloc
from pathlib import Path

import malformed
import numpy as np
import pytest
import python_speech_features
import scipy.fftpack
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from deepspeech.audio import (
    N_CEPSTRUM,
    N_INPUT,
    PCM16_SCALE,
    SAMPLE_RATE,
    MfccStream,
    WavInfo,
    add_context_windows,
    audio_to_features,
    audio_to_input_vector,
    audiofile_to_input_vector,
    load_audio,
    load_wav,
    mfcc,
    n_feature_frames,
    read_wav_info,
    to_16k_mono,
    whiten,
    write_wav,
)
from deepspeech.errors import AudioFormatError, DeepSpeechError


def sine(frequency: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5):
    """A float32 sine: (round(seconds * rate),)."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic voiced sound with a moving pitch, noise and a pause: (n,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    audio = 0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))
    audio[len(t) // 2 : len(t) // 2 + 1600] = 0.0  # 100 ms of digital silence
    return (audio / np.abs(audio).max() * 0.8).astype(np.float32)


def wav_bytes(data: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16", fmt="WAV"):
    """Encode samples with soundfile, as a client would upload them."""
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def write_file(path: Path, data: np.ndarray, rate: int = SAMPLE_RATE, subtype="PCM_16", fmt="WAV"):
    soundfile.write(path, data, rate, format=fmt, subtype=subtype)
    return path


def peak_frequency(audio: np.ndarray) -> float:
    """Frequency (Hz) of the largest FFT bin of 16 kHz audio."""
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(audio))


def reference_features(samples: np.ndarray, numcep: int, numcontext: int):
    """An independent, per-frame version of the 2017 features of int16-valued samples."""
    features = python_speech_features.mfcc(samples.astype(np.float64), SAMPLE_RATE, numcep=numcep)
    n_frames = len(features)
    rows = []
    for t in range(n_frames):
        row = []
        for offset in range(-numcontext, numcontext + 1):
            if 0 <= t + offset < n_frames:
                row.append(features[t + offset])
            else:
                row.append(np.zeros(numcep))
        rows.append(np.concatenate(row))
    stacked = np.array(rows)
    return (stacked - np.mean(stacked)) / np.std(stacked)


# Features


def test_input_vector_has_the_2017_numbers_of_int16_samples():
    audio = speech_like(1.0)
    features = audio_to_input_vector(audio)
    assert features.shape == (99, N_INPUT) == (99, 494)
    assert features.dtype == np.float32
    expected = reference_features(audio * PCM16_SCALE, 26, 9)
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("numcep", "numcontext"), [(13, 0), (26, 1), (20, 5)])
def test_input_vector_matches_reference_for_other_sizes(numcep, numcontext):
    audio = speech_like(0.5, seed=1)
    features = audio_to_input_vector(audio, numcep, numcontext)
    assert features.shape == (49, numcep * (2 * numcontext + 1))
    expected = reference_features(audio * PCM16_SCALE, numcep, numcontext)
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-5)


def test_int16_scale_shifts_only_c0_by_twice_ln_32768():
    """Why the 2017 API rescales: the [-1, 1] signal's MFCCs differ from 2017's in c0 only."""
    audio = speech_like(1.0, seed=7)
    unit, int16 = mfcc(audio), mfcc(audio * PCM16_SCALE)
    sounding = unit[:, 0] > math.log(np.finfo(np.float64).eps) + 1  # digital silence is floored
    assert 80 < sounding.sum() < len(unit)
    shift = int16[sounding, 0] - unit[sounding, 0]
    np.testing.assert_allclose(shift, 2 * math.log(32768), atol=1e-3)
    np.testing.assert_allclose(int16[:, 1:], unit[:, 1:], atol=1e-3)


def test_model_features_are_strided_mfcc_frames_above_the_noise_floor():
    audio = speech_like(1.0, seed=2)
    features = audio_to_features(audio, stride=2)
    assert features.shape == (50, 26)
    assert len(features) == n_feature_frames(len(audio), stride=2)
    reference = mfcc(audio)[::2]
    sounding = reference[:, 0] > math.log(np.finfo(np.float64).eps) + 1
    assert 40 < sounding.sum() < 50  # not the 100 ms of digital silence: see the next tests
    np.testing.assert_array_equal(features[sounding], reference[sounding])


def one_step_noise(seconds: float, seed: int) -> np.ndarray:
    """White noise one 16-bit quantisation step in std: the quietest a real recording gets."""
    n = round(seconds * SAMPLE_RATE)
    return np.random.default_rng(seed).standard_normal(n) / PCM16_SCALE


def test_model_features_put_digital_silence_at_the_power_of_one_step_noise():
    """Frames of exact zeros get the MFCC of one-step noise's average power spectrum, measured
    here with python_speech_features on a minute of such noise. The tolerance is that
    average's sampling error, which the lifter multiplies by up to 12; getting the floor's
    spectral shape wrong (flat, or without the frame edges) is off by 3 to 25."""
    banks, energy = python_speech_features.fbank(
        one_step_noise(60.0, seed=0), SAMPLE_RATE, nfilt=26, nfft=512, preemph=0.97
    )
    cepstrum = scipy.fftpack.dct(np.log(banks.mean(axis=0, keepdims=True)), type=2, norm="ortho")
    expected = python_speech_features.lifter(cepstrum[:, :N_CEPSTRUM], 22)
    expected[:, 0] = np.log(energy.mean())
    silence = audio_to_features(np.zeros(SAMPLE_RATE, np.float32))
    np.testing.assert_allclose(silence, np.broadcast_to(expected, silence.shape), atol=0.25)


def test_model_features_barely_move_when_digital_silence_becomes_a_real_recording():
    """Why the floor: the 2017 MFCC puts digital silence at c0 = log(eps) = -36, some 20 nats
    from the same pause recorded by a real 16-bit device; the model's features keep them close."""
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    speech = speech_like(1.0, seed=3)
    digital = np.concatenate([pause, speech, pause])
    recorded = digital + one_step_noise(len(digital) / SAMPLE_RATE, seed=1).astype(np.float32)
    silent = slice(5, 45)  # frames wholly inside the first pause
    c0_jump_2017 = np.abs(mfcc(recorded)[silent, 0] - mfcc(digital)[silent, 0]).mean()
    c0_jump = np.abs(audio_to_features(recorded)[silent, 0] - audio_to_features(digital)[silent, 0])
    assert c0_jump_2017 > 15
    assert c0_jump.mean() < 0.5


def test_context_windows_concatenate_neighbours_with_zero_edges():
    features = np.arange(1, 9, dtype=np.float32).reshape(4, 2)  # frames [1,2] [3,4] [5,6] [7,8]
    windows = add_context_windows(features, 1)
    expected = np.array(
        [
            [0, 0, 1, 2, 3, 4],
            [1, 2, 3, 4, 5, 6],
            [3, 4, 5, 6, 7, 8],
            [5, 6, 7, 8, 0, 0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(windows, expected)
    assert windows.dtype == np.float32


def test_context_windows_wider_than_the_signal_are_mostly_zero():
    features = np.array([[1.0, 2.0]], dtype=np.float32)
    windows = add_context_windows(features, 2)
    np.testing.assert_array_equal(windows, [[0, 0, 0, 0, 1, 2, 0, 0, 0, 0]])


def test_whiten_gives_zero_mean_unit_std():
    x = np.random.default_rng(3).normal(5.0, 3.0, size=(50, 20)).astype(np.float32)
    white = whiten(x)
    assert white.dtype == np.float32
    assert abs(float(white.mean())) < 1e-6
    assert abs(float(white.std()) - 1.0) < 1e-5


def test_whiten_constant_array_is_centred_not_nan():
    white = whiten(np.full((3, 4), 7.0, dtype=np.float32))
    np.testing.assert_array_equal(white, np.zeros((3, 4)))


def test_features_of_pipeline_output_are_whitened():
    features = audio_to_input_vector(speech_like(2.0, seed=4))
    assert abs(float(features.mean())) < 1e-5
    assert abs(float(features.std()) - 1.0) < 1e-5


def test_mfcc_shape_and_same_result_for_float32_and_float64():
    audio = speech_like(1.0, seed=5)
    features = mfcc(audio)
    assert features.shape == (99, 26)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, mfcc(audio.astype(np.float64)))


@pytest.mark.parametrize("n_samples", [1, 399, 400, 401, 559, 560, 561, 16000, 16001, 23456])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_n_feature_frames_matches_features(n_samples, stride):
    audio = np.random.default_rng(n_samples).uniform(-0.5, 0.5, n_samples).astype(np.float32)
    assert n_feature_frames(n_samples, stride) == len(audio_to_features(audio, stride=stride))


def test_features_reject_empty_audio():
    with pytest.raises(AudioFormatError, match="n > 0"):
        audio_to_input_vector(np.zeros(0, dtype=np.float32))


def test_audiofile_to_input_vector_reads_a_training_wav(tmp_path):
    audio = speech_like(1.0, seed=6)
    path = write_file(tmp_path / "a.wav", audio)
    features = audiofile_to_input_vector(str(path), 26, 9)
    stored = soundfile.read(path, dtype="int16")[0]  # what 2017's scipy.io.wavfile gave
    assert features.shape == (99, 494)
    np.testing.assert_allclose(features, reference_features(stored, 26, 9), atol=1e-5)


def test_audiofile_to_input_vector_is_strict_about_the_format(tmp_path):
    path = write_file(tmp_path / "b.wav", sine(440, 1.0, 44100), 44100)
    with pytest.raises(AudioFormatError, match=r"b\.wav: 44100 Hz, expected 16000 Hz"):
        audiofile_to_input_vector(path, 26, 9)


# Reading WAV headers


def test_read_wav_info_reads_the_header(tmp_path):
    path = write_file(tmp_path / "c.wav", np.zeros((22050, 2), np.float32), 44100, "PCM_24")
    info = read_wav_info(path)
    assert info == WavInfo(sample_rate=44100, channels=2, frames=22050, subtype="PCM_24")
    assert info.duration_seconds == pytest.approx(0.5)


def test_read_wav_info_then_load_wav_on_the_same_upload():
    upload = io.BytesIO(wav_bytes(sine(440, 1.0)))
    upload.seek(10)
    assert read_wav_info(upload).frames == 16000
    assert upload.tell() == 10  # left where it was found
    assert len(load_wav(upload)) == 16000


def test_reads_a_stream_that_cannot_seek():
    read_end, write_end = os.pipe()
    os.write(write_end, wav_bytes(sine(440, 0.25)))  # 8 KB fits the pipe buffer
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        assert len(load_wav(pipe)) == 4000


def test_a_huge_claimed_length_is_not_allocated(monkeypatch: pytest.MonkeyPatch):
    """Memory and work follow the 16000 samples present, not the 2 G samples claimed: a
    bounded peak, and the same decoder reads as for the intact file (a loop that kept asking
    for the claimed length would make thousands more)."""
    intact = wav_bytes(sine(440, 1.0))
    data = bytearray(intact)
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)  # RIFF size: about 4 GiB
    data_chunk = data.find(b"data")
    data[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", 0xFFFFFF00)  # 2 G samples
    reads: list[int] = []  # frames returned by each SoundFile.read call
    real_read = soundfile.SoundFile.read

    def counting_read(self, *args, **kwargs):
        block = real_read(self, *args, **kwargs)
        reads.append(len(block))
        return block

    monkeypatch.setattr(soundfile.SoundFile, "read", counting_read)
    load_wav(intact)
    intact_reads, reads[:] = list(reads), []
    tracemalloc.start()
    try:
        info = read_wav_info(bytes(data))
        header_reads = len(reads)
        audio = load_wav(bytes(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.frames <= 16000
    assert header_reads == 0  # the header alone decodes no samples
    assert len(audio) == 16000
    assert reads == intact_reads and sum(reads) == 16000, (reads, intact_reads)
    assert peak < 64 * 2**20


# Bad input: every case asserts the type and the message


def test_random_bytes_are_rejected():
    junk = np.random.default_rng(7).bytes(2000)
    with pytest.raises(AudioFormatError, match=r"<upload>: cannot decode audio \(Format not"):
        load_wav(junk, convert=True)
    with pytest.raises(AudioFormatError, match="cannot decode audio"):
        read_wav_info(junk)


def test_empty_bytes_are_rejected():
    with pytest.raises(AudioFormatError, match="cannot decode audio"):
        load_wav(b"", convert=True)
    with pytest.raises(AudioFormatError, match="cannot decode audio"):
        read_wav_info(b"")


@pytest.mark.parametrize("length", [4, 8, 12, 16, 20, 30, 36, 40])
def test_truncated_header_is_rejected(length):
    data = wav_bytes(sine(440, 0.1))[:length]
    with pytest.raises(AudioFormatError, match=r"clip\.wav: cannot decode audio \(.+\)"):
        read_wav_info(data, name="clip.wav")
    with pytest.raises(AudioFormatError, match=r"clip\.wav: cannot decode audio"):
        load_wav(data, convert=True, name="clip.wav")


def test_header_without_samples_contains_no_audio():
    data = wav_bytes(sine(440, 0.1))[:44]
    assert read_wav_info(data).frames == 0
    with pytest.raises(AudioFormatError, match=r"<upload>: contains no audio \(0 samples\)"):
        load_wav(data, convert=True)


def test_zero_sample_wav_contains_no_audio(tmp_path):
    path = write_file(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioFormatError, match=r"empty\.wav: contains no audio"):
        load_wav(path)


def test_data_truncated_mid_file_decodes_what_is_there():
    data = wav_bytes(sine(440, 1.0))[: 44 + 2 * 8000]
    assert len(load_wav(data)) == 8000


def test_flac_is_not_a_wav(tmp_path):
    path = write_file(tmp_path / "d.flac", sine(440, 1.0), fmt="FLAC")
    with pytest.raises(AudioFormatError, match=r"d.flac: FLAC .* audio, expected a WAV file"):
        load_wav(path, convert=True)
    with pytest.raises(AudioFormatError, match="expected a WAV file"):
        read_wav_info(path)


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM"])
def test_compressed_wav_encodings_are_rejected(tmp_path, subtype):
    path = write_file(tmp_path / "e.wav", sine(440, 0.5), subtype=subtype)
    with pytest.raises(AudioFormatError, match=f"e.wav: {subtype} .* not supported; re-encode"):
        read_wav_info(path)
    with pytest.raises(AudioFormatError, match=f"{subtype} .* not supported"):
        load_wav(path, convert=True)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples_are_rejected(tmp_path, bad):
    audio = sine(440, 0.5)
    audio[100] = bad
    path = write_file(tmp_path / "f.wav", audio, subtype="FLOAT")
    with pytest.raises(AudioFormatError, match=r"f\.wav: contains NaN or infinite samples"):
        load_wav(path, convert=True)


def patched_header(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(wav_bytes(sine(440, 0.5)))
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


@pytest.mark.parametrize("rate", [1, 999, 384001, 10_000_000])
def test_absurd_sample_rates_are_rejected(rate):
    data = patched_header(24, "<I", rate)
    with pytest.raises(AudioFormatError, match=f"<upload>: header says {rate} Hz, outside"):
        read_wav_info(data)
    with pytest.raises(AudioFormatError, match="outside 1000–384000 Hz"):
        load_wav(data, convert=True)


def test_zero_channels_are_rejected():
    with pytest.raises(AudioFormatError, match=r"cannot decode audio.*[Cc]hannel"):
        read_wav_info(patched_header(22, "<H", 0))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AudioFormatError, match=r"nothere.wav: no such file"):
        load_wav(tmp_path / "nothere.wav")


def test_errors_are_deepspeech_errors():
    assert issubclass(AudioFormatError, DeepSpeechError)
    with pytest.raises(DeepSpeechError):
        load_wav(b"not audio")


# Strict training format (convert=False)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "message"),
    [
        (44100, 1, "PCM_16", "g.wav: 44100 Hz, expected 16000 Hz; resample it"),
        (8000, 1, "PCM_16", "g.wav: 8000 Hz, expected 16000 Hz"),
        (16000, 2, "PCM_16", "g.wav: 2 channels, expected mono"),
        (16000, 1, "PCM_24", "g.wav: PCM_24, expected PCM_16"),
        (16000, 1, "FLOAT", "g.wav: FLOAT, expected PCM_16"),
        (48000, 2, "PCM_U8", "g.wav: 48000 Hz, expected 16000 Hz; 2 channels, expected mono; "),
    ],
)
def test_strict_mode_names_file_and_value(tmp_path, rate, channels, subtype, message):
    audio = np.zeros((rate // 2, channels), np.float32)
    path = write_file(tmp_path / "g.wav", audio, rate, subtype)
    with pytest.raises(AudioFormatError, match=message):
        load_wav(path)


def test_strict_mode_reads_pcm16_exactly(tmp_path):
    audio = sine(440, 1.0)
    path = write_file(tmp_path / "h.wav", audio)
    loaded = load_wav(path)
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, audio, atol=1 / 32768)


def test_name_labels_errors_from_bytes():
    with pytest.raises(AudioFormatError, match=r"^voice memo: 44100 Hz"):
        load_wav(wav_bytes(sine(440, 0.5, 44100), 44100), name="voice memo")


# Conversion (convert=True)


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [
        ("PCM_U8", 1 / 64),
        ("PCM_16", 1e-4),
        ("PCM_24", 1e-6),
        ("PCM_32", 1e-6),
        ("FLOAT", 0),
        ("DOUBLE", 0),
    ],
)
def test_converts_sample_encodings(tmp_path, subtype, tolerance):
    audio = sine(440, 1.0)
    path = write_file(tmp_path / "i.wav", audio, subtype=subtype)
    loaded = load_wav(path, convert=True)
    assert loaded.dtype == np.float32
    assert loaded.shape == (16000,)
    np.testing.assert_allclose(loaded, audio, atol=tolerance)
    assert peak_frequency(loaded) == pytest.approx(440, abs=1)


def test_converts_stereo_by_averaging(tmp_path):
    left, right = sine(440, 1.0, amplitude=0.6), sine(1000, 1.0, amplitude=0.2)
    path = write_file(tmp_path / "j.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_wav(path, convert=True), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_resamples_to_16k_keeping_frequency(tmp_path, rate):
    path = write_file(tmp_path / "k.wav", sine(440, 1.0, rate), rate)
    loaded = load_wav(path, convert=True)
    assert len(loaded) == 16000
    assert peak_frequency(loaded) == pytest.approx(440, abs=1)
    assert np.abs(loaded).max() == pytest.approx(0.5, abs=0.02)


def test_resampled_length_follows_the_rate_fraction():
    samples = sine(440, 0.31, 44100)[:13231]
    assert len(to_16k_mono(samples, 44100)) == math.ceil(13231 * 160 / 441)


def test_conversion_clips_to_unit_range():
    loud = np.array([[2.0, 2.0], [-3.0, -1.0], [0.25, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(to_16k_mono(loud, SAMPLE_RATE), [1.0, -1.0, 0.5])


@pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", "PCM_16"), ("NIST", "PCM_16")])
def test_load_audio_reads_corpus_containers(tmp_path, fmt, subtype):
    path = write_file(tmp_path / "l.audio", sine(440, 1.0, 44100), 44100, subtype, fmt)
    loaded = load_audio(path)
    assert loaded.shape == (16000,)
    assert peak_frequency(loaded) == pytest.approx(440, abs=1)


def test_load_audio_reads_stereo_mp3(tmp_path):
    audio = np.stack([sine(440, 1.0, 48000)] * 2, axis=1)
    path = write_file(tmp_path / "m.mp3", audio, 48000, "MPEG_LAYER_III", "MP3")
    loaded = load_audio(path)
    assert abs(len(loaded) - 16000) < 1600  # MP3 frames pad the end
    assert peak_frequency(loaded[:16000]) == pytest.approx(440, abs=1)


def test_load_audio_still_rejects_garbage():
    with pytest.raises(AudioFormatError, match="<upload>: cannot decode audio"):
        load_audio(b"\x00" * 100)


# Writing


def test_write_wav_round_trips_exactly(tmp_path):
    audio = speech_like(0.5, seed=8)
    path = tmp_path / "n.wav"
    write_wav(path, audio)
    info = read_wav_info(path)
    assert (info.sample_rate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    loaded = load_wav(path)
    np.testing.assert_allclose(loaded, audio, atol=0.5 / 32768)
    write_wav(path, loaded)
    np.testing.assert_array_equal(load_wav(path), loaded)


def test_write_wav_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "o.wav"
    write_wav(path, sine(440, 1.0))
    write_wav(path, sine(220, 0.25))
    assert len(load_wav(path)) == 4000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "p.wav"
    write_wav(path, sine(440, 1.0))
    with pytest.raises(soundfile.LibsndfileError):
        write_wav(path, sine(440, 1.0), sample_rate=0)
    assert len(load_wav(path)) == 16000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.wav"]


@pytest.mark.parametrize(
    "audio", [np.zeros((10, 2), np.float32), np.zeros(10, np.int16), np.array([np.nan])]
)
def test_write_wav_rejects_bad_arrays(tmp_path, audio):
    with pytest.raises(ValueError, match="audio"):
        write_wav(tmp_path / "q.wav", audio)
    assert list(tmp_path.iterdir()) == []


MALFORMED_BASE = malformed.wav(malformed.speech_like_pcm16(0.5))


def _decodes_or_refuses(data: bytes) -> np.ndarray | None:
    """load_wav's whole contract on bad bytes: finite 16 kHz mono audio, or AudioFormatError."""
    try:
        audio = load_wav(data, convert=True, name="upload.wav")
    except AudioFormatError as e:
        assert str(e).startswith("upload.wav: "), e
        return None
    assert audio.ndim == 1 and audio.dtype == np.float32 and len(audio) > 0
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    return audio


@pytest.mark.parametrize("case", malformed.malformed_wavs(MALFORMED_BASE), ids=lambda c: c.name)
def test_malformed_corpus_is_refused_or_decoded(case: malformed.BadWav) -> None:
    audio = _decodes_or_refuses(case.data)
    if case.refuse:
        assert audio is None, f"{case.name}: decoded {len(audio)} samples"


@settings(max_examples=400, deadline=None)
@given(
    offset=st.integers(0, malformed.HEADER_BYTES + 8),
    junk=st.binary(min_size=1, max_size=8),
    cut=st.none() | st.integers(0, len(MALFORMED_BASE)),
)
def test_any_header_damage_is_refused_or_decoded(offset: int, junk: bytes, cut: int | None):
    damaged = MALFORMED_BASE[:offset] + junk + MALFORMED_BASE[offset + len(junk) :]
    _decodes_or_refuses(damaged[:cut])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_any_bytes_are_refused_or_decoded(data: bytes) -> None:
    _decodes_or_refuses(data)


@pytest.mark.parametrize("n_samples", [1, 399, 400, 401, 559, 560, 561, 16000, 16123])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_mfcc_stream_equals_the_mfcc_of_the_whole_signal(n_samples: int, stride: int) -> None:
    """Pieces of any size, the 400-sample windows straddling them, the zero-padded last frame:
    bit for bit the offline features."""
    rng = np.random.default_rng(n_samples)
    audio = rng.integers(-8000, 8000, n_samples).astype(np.float32) / 32768
    expected = audio_to_features(audio, N_CEPSTRUM, stride)
    for piece in (1, 159, 160, 400, 1000, 16000):
        if n_samples > 1000 and piece == 1:
            continue
        stream = MfccStream(N_CEPSTRUM, stride)
        parts = [stream.accept(audio[i : i + piece]) for i in range(0, n_samples, piece)]
        parts.append(stream.finish())
        np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_mfcc_stream_without_audio_has_no_frames_and_ends_once() -> None:
    stream = MfccStream(N_CEPSTRUM, 2)
    assert stream.accept(np.zeros(0, np.float32)).shape == (0, N_CEPSTRUM)
    assert stream.finish().shape == (0, N_CEPSTRUM)
    with pytest.raises(RuntimeError, match="finished"):
        stream.accept(np.zeros(10, np.float32))
