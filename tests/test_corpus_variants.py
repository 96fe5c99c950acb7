"""`deepspeech.corpus.variants`: the telephone line really is one, digits replace number
words, and a variant corpus is a valid corpus (resumable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspeech.audio import SAMPLE_RATE, load_wav, write_wav
from deepspeech.corpus.variants import (
    ALPHABET_FILE,
    digits_alphabet,
    digits_transcript,
    make_variant,
    telephone_channel,
)
from deepspeech.data.manifest import Utterance, read_manifest, write_manifest
from deepspeech.errors import ConfigError
from deepspeech.text import Alphabet


def band_energy(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum() / spectrum.sum())


def test_the_telephone_line_keeps_only_its_band_and_quantises() -> None:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)  # white: every band
    line = telephone_channel(audio)
    assert line.shape == audio.shape and line.dtype == np.float32
    assert band_energy(audio, 4000, 8000) > 0.4
    assert band_energy(line, 4000, 8000) < 1e-3  # 8 kHz sampling: nothing above 4 kHz
    assert band_energy(line, 0, 200) < 1e-2  # G.712's low edge
    # mu-law at 8 bits: at most 256 distinct levels on the 8 kHz line (before resampling up)
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    kept = telephone_channel(tone.astype(np.float32))
    assert 0.2 < np.abs(kept).max() < 0.4  # speech band passes at its level


def test_digits_replace_the_grammars_number_words_only() -> None:
    assert digits_transcript("there are seven cats and ten dogs") == "there are 7 cats and 10 dogs"
    assert digits_transcript("one of them is fine") == "one of them is fine"
    alphabet = digits_alphabet()
    assert alphabet.num_classes == Alphabet.default().num_classes + 10
    assert len(alphabet.encode("2 10")) == 4  # spellable


def test_a_variant_corpus_is_a_valid_corpus_and_resumes(tmp_path: Path) -> None:
    wavs = []
    for n, text in enumerate(("there are two cats", "she found eight keys")):
        path = tmp_path / "src" / f"{n}.wav"
        write_wav(path, (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32))
        wavs.append(Utterance(path, path.stat().st_size, text))
    write_manifest(tmp_path / "src" / "train.csv", wavs)

    out = make_variant("telephone", {"train": tmp_path / "src" / "train.csv"}, tmp_path / "tel")
    rows = read_manifest(out["train"])
    assert [r.transcript for r in rows] == ["there are two cats", "she found eight keys"]
    assert all(r.wav_path.parent == tmp_path / "tel" / "wav" / "train" for r in rows)
    assert len(load_wav(rows[0].wav_path)) == 8000
    stamp = rows[0].wav_path.stat().st_mtime_ns
    make_variant("telephone", {"train": tmp_path / "src" / "train.csv"}, tmp_path / "tel")
    assert rows[0].wav_path.stat().st_mtime_ns == stamp, "written again"

    out = make_variant("digits", {"train": tmp_path / "src" / "train.csv"}, tmp_path / "dig")
    alphabet = Alphabet.from_file(tmp_path / "dig" / ALPHABET_FILE)
    rows = read_manifest(out["train"], alphabet)
    assert [r.transcript for r in rows] == ["there are 2 cats", "she found 8 keys"]
    assert rows[0].wav_path == wavs[0].wav_path  # the same audio

    with pytest.raises(ConfigError, match="choose one of telephone, digits"):
        make_variant("radio", {}, tmp_path / "x")
