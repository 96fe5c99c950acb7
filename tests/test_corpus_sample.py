"""Tests for deepspeech/corpus/{sample,espeak,voices,grammar}.py with real espeak-ng, tiny sizes."""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from deepspeech.audio import SAMPLE_RATE
from deepspeech.corpus import grammar, sample
from deepspeech.corpus.espeak import EspeakSynthesizer, list_variants
from deepspeech.corpus.sample import (
    METADATA_NAME,
    SPLITS,
    STATE_NAME,
    SampleCorpusConfig,
    make_sample_corpus,
    plan_utterances,
)
from deepspeech.corpus.voices import is_typical, is_usable, plan_voices
from deepspeech.data.manifest import MANIFEST_HEADER, read_manifest
from deepspeech.errors import ConfigError, CorpusError
from deepspeech.text import Alphabet

UTTERANCES = 40
CONFIG = SampleCorpusConfig(utterances=UTTERANCES, seed=0, workers=2)


class Counter:
    """A progress callback that adds up what it is told."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "corpus"
    counter = Counter()
    summary = make_sample_corpus(out, CONFIG, progress=counter)
    assert counter.total == UTTERANCES
    assert summary.generated == UTTERANCES and summary.reused == 0
    assert sum(summary.utterances.values()) == UTTERANCES
    assert summary.manifests == {s: out / f"{s}.csv" for s in SPLITS}
    return out


@pytest.fixture(scope="module")
def corpus_files(corpus: Path) -> dict[str, bytes]:
    return files_of(corpus)


@pytest.fixture(scope="module")
def metadata(corpus: Path) -> dict:
    return json.loads((corpus / METADATA_NAME).read_text())


def transcripts(corpus: Path, split: str) -> list[str]:
    with (corpus / f"{split}.csv").open(newline="") as f:
        return [row["transcript"] for row in csv.DictReader(f)]


# --- the corpus folder ---------------------------------------------------------------------


def test_manifests_are_valid(corpus: Path) -> None:
    alphabet = Alphabet.default()
    for split in SPLITS:
        csv_path = corpus / f"{split}.csv"
        with csv_path.open(newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == MANIFEST_HEADER
        for wav_filename, size, transcript in rows[1:]:
            wav = corpus / wav_filename
            assert not Path(wav_filename).is_absolute()
            assert wav.is_file() and wav.stat().st_size == int(size)
            assert wav.parent == corpus / "wav" / split
            assert transcript and not alphabet.unknown_chars(transcript)
        # The project's own validation agrees.
        assert len(read_manifest(csv_path, alphabet)) == len(rows) - 1
    assert sum(len(transcripts(corpus, s)) for s in SPLITS) == UTTERANCES
    assert not (corpus / STATE_NAME).exists()


def test_wavs_are_16k_mono_pcm16(corpus: Path) -> None:
    wavs = sorted(corpus.glob("wav/*/*.wav"))
    assert len(wavs) == UTTERANCES
    for wav in wavs:
        info = soundfile.info(wav)
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)


def test_speech_is_audible_and_as_long_as_its_words(corpus: Path) -> None:
    for split in SPLITS:
        with (corpus / f"{split}.csv").open(newline="") as f:
            for row in csv.DictReader(f):
                audio, _ = soundfile.read(corpus / row["wav_filename"], dtype="float32")
                rms = float(np.sqrt(np.mean(np.square(audio))))
                assert rms > 0.02, row
                assert 0.85 <= np.max(np.abs(audio)) <= 0.95, row  # peak-normalised
                seconds_per_word = len(audio) / SAMPLE_RATE / len(row["transcript"].split())
                # 120-220 wpm is 0.27-0.5 s a word; warp, short words and pauses widen it.
                assert 0.12 <= seconds_per_word <= 0.8, row


def test_held_out_voices_are_not_in_train(metadata: dict) -> None:
    splits = metadata["splits"]
    train = set(splits["train"]["voices_available"])
    dev = set(splits["dev"]["voices_available"])
    test = set(splits["test"]["voices_available"])
    assert train and dev and test
    assert not train & dev and not train & test and not dev & test
    assert metadata["voices_disjoint"] == {"train_dev": True, "train_test": True, "dev_test": True}
    for split in SPLITS:
        assert set(splits[split]["voices_used"]) <= set(splits[split]["voices_available"])
    # Not only the (accent, variant) pairs: train never hears a held-out variant at all.
    train_variants = {v.split("+")[1] for v in train}
    held_out = {v.split("+")[1] for v in dev | test}
    assert held_out == set(metadata["variants"]["held_out"])
    assert not train_variants & held_out
    assert "zac" in metadata["variants"]["excluded"]


def test_held_out_sentences_are_not_in_train(corpus: Path, metadata: dict) -> None:
    train = set(transcripts(corpus, "train"))
    for split in ("dev", "test"):
        held_out = set(transcripts(corpus, split))
        assert held_out and not held_out & train
        entry = metadata["splits"][split]
        assert entry["sentences"] == entry["sentences_unseen_in_train"] == len(held_out)


def test_metadata_reports_the_corpus(corpus: Path, metadata: dict) -> None:
    assert metadata["format_version"] == 2
    assert metadata["seed"] == 0
    assert metadata["vocabulary_size"] == len(grammar.vocabulary())
    assert metadata["settings"]["utterances"] == UTTERANCES
    assert "workers" not in metadata["settings"]  # it does not change the bytes
    for split in SPLITS:
        entry = metadata["splits"][split]
        assert entry["utterances"] == len(transcripts(corpus, split))
        seconds = sum(soundfile.info(p).duration for p in corpus.glob(f"wav/{split}/*.wav"))
        assert entry["hours"] == pytest.approx(seconds / 3600, abs=1e-4)
        assert entry["speaker_warp"] == (split == "train")


# --- determinism, re-runs and resume -------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 3])
def test_same_seed_gives_the_same_bytes_whatever_the_workers(
    tmp_path: Path, corpus_files: dict[str, bytes], workers: int
) -> None:
    out = tmp_path / "again"
    make_sample_corpus(out, SampleCorpusConfig(utterances=UTTERANCES, seed=0, workers=workers))
    assert files_of(out) == corpus_files


def test_prosody_varies_from_clip_to_clip_within_the_settings() -> None:
    voices = plan_voices(list_variants(), 0, 1 / 3)
    config = SampleCorpusConfig(utterances=400)
    specs = plan_utterances(config, voices)
    for name in ("rate_wpm", "pitch", "pitch_range", "word_gap"):
        values = [getattr(spec, name) for spec in specs]
        low, high = getattr(config, name)
        assert low <= min(values) and max(values) <= high, name
        assert len(set(values)) >= min(high - low + 1, 20), name  # the range is used
    assert {spec.ending for spec in specs} == set(".?!,")
    for split in SPLITS:  # every split hears every tune, not only train
        assert {spec.ending for spec in specs if spec.split == split} == set(".?!,")
    assert all(spec.text[-1].isalpha() for spec in specs)  # the transcript has no punctuation
    flat = SampleCorpusConfig(utterances=400, pitch_range=(50, 50), clause_endings=".")
    assert {(s.pitch_range, s.ending) for s in plan_utterances(flat, voices)} == {(50, ".")}


def test_another_seed_gives_another_corpus() -> None:
    voices = plan_voices(list_variants(), 0, 1 / 3)
    zero = plan_utterances(SampleCorpusConfig(utterances=UTTERANCES, seed=0), voices)
    one = plan_utterances(SampleCorpusConfig(utterances=UTTERANCES, seed=1), voices)
    assert [u.text for u in zero] != [u.text for u in one]


def test_clips_do_not_depend_on_the_corpus_size() -> None:
    voices = plan_voices(list_variants(), 0, 1 / 3)
    small = plan_utterances(SampleCorpusConfig(utterances=20), voices)
    large = plan_utterances(SampleCorpusConfig(utterances=200), voices)
    large_by_id = {u.id: u for u in large}
    assert all(large_by_id[u.id] == u for u in small)


def test_rerun_on_a_finished_folder_is_a_no_op(
    corpus: Path, corpus_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished folder is recognised from stat calls alone: no clip is opened, planned or
    synthesised again, and nothing is written."""
    calls: list[str] = []

    def spy(name: str, real: Callable) -> Callable:
        def record(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return record

    for name in ("read_wav_info", "plan_utterances", "_render_all", "write_manifest"):
        monkeypatch.setattr(sample, name, spy(name, getattr(sample, name)))
    monkeypatch.setattr(
        EspeakSynthesizer, "synthesize", spy("synthesize", EspeakSynthesizer.synthesize)
    )
    mtimes = {p: p.stat().st_mtime_ns for p in corpus.rglob("*")}
    counter = Counter()
    summary = make_sample_corpus(corpus, CONFIG, progress=counter)
    assert (summary.generated, summary.reused, counter.total) == (0, UTTERANCES, UTTERANCES)
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*")} == mtimes
    assert files_of(corpus) == corpus_files


def test_deleted_clips_are_made_again(
    tmp_path: Path, corpus: Path, corpus_files: dict[str, bytes]
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(corpus, out)
    deleted = sorted(out.glob("wav/*/*.wav"))[::10]
    for wav in deleted:
        wav.unlink()
    summary = make_sample_corpus(out, CONFIG)
    assert (summary.generated, summary.reused) == (len(deleted), UTTERANCES - len(deleted))
    assert files_of(out) == corpus_files


class Killed(Exception):
    """Stands for Ctrl-C or a killed process in the middle of a run."""


def kill_after(n_clips: int) -> Callable[[int], None]:
    counter = Counter()

    def progress(n: int) -> None:
        counter(n)
        if counter.total >= n_clips:
            raise Killed

    return progress


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_run_resumes_where_it_stopped(
    tmp_path: Path, corpus_files: dict[str, bytes], workers: int
) -> None:
    out = tmp_path / "killed"
    config = SampleCorpusConfig(utterances=UTTERANCES, seed=0, workers=workers)
    with pytest.raises(Killed):
        make_sample_corpus(out, config, progress=kill_after(12))
    assert not multiprocessing.active_children()  # the pool is gone
    assert (out / STATE_NAME).exists() and not (out / METADATA_NAME).exists()
    done = len(list(out.glob("wav/*/*.wav")))
    assert done == 12 if workers == 1 else 12 <= done < UTTERANCES
    (out / "wav" / "train" / ".train-000039.wav.abc.tmp").write_bytes(b"half a clip")

    summary = make_sample_corpus(out, CONFIG)
    assert (summary.generated, summary.reused) == (UTTERANCES - done, done)
    assert files_of(out) == corpus_files  # no leftover temporary file either


def test_a_folder_made_with_other_settings_is_refused(corpus: Path) -> None:
    other = SampleCorpusConfig(utterances=UTTERANCES + 1, seed=0, workers=2)
    with pytest.raises(CorpusError, match=r"other settings.*utterances.*pick another folder"):
        make_sample_corpus(corpus, other)


def test_an_unfinished_folder_with_other_settings_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "unfinished"
    config = SampleCorpusConfig(utterances=6, seed=0, workers=1)
    with pytest.raises(Killed):
        make_sample_corpus(out, config, progress=kill_after(2))
    with pytest.raises(CorpusError, match=r"other settings.*seed: 0 there, 1 now"):
        make_sample_corpus(out, SampleCorpusConfig(utterances=6, seed=1, workers=1))


def test_a_folder_with_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CorpusError, match="not empty and holds no sample corpus"):
        make_sample_corpus(tmp_path, SampleCorpusConfig(utterances=6, workers=1))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(CorpusError, match="is a file, not a folder"):
        make_sample_corpus(tmp_path / "notes.txt", SampleCorpusConfig(utterances=6, workers=1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"utterances": 2}, "utterances must be at least 3"),
        ({"seed": -1}, "seed must be 0 or more"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"dev_fraction": 0.6}, "dev_fraction must be between 0 and 0.5"),
        ({"rate_wpm": (200, 130)}, r"rate_wpm must be \(min, max\)"),
        ({"pitch": (0, 101)}, r"pitch must be \(min, max\)"),
        ({"pitch_range": (-1, 50)}, r"pitch_range must be \(min, max\) within \[0, 100\]"),
        ({"word_gap": (0, 51)}, r"word_gap must be \(min, max\) within \[0, 50\]"),
        ({"clause_endings": ".;"}, r"clause_endings must be some of '\.\?!,', got '\.;'"),
        ({"clause_endings": ""}, "clause_endings must be some of"),
        ({"speaker_warp": 0.5}, "speaker_warp must be in"),
        ({"utterances": 4, "dev_fraction": 0.49, "test_fraction": 0.49}, "leave none for train"),
    ],
)
def test_bad_config_is_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SampleCorpusConfig(**changes)


def test_split_sizes_give_every_split_an_utterance() -> None:
    assert SampleCorpusConfig(utterances=3).split_sizes() == {"train": 1, "dev": 1, "test": 1}
    sizes = SampleCorpusConfig(utterances=10_000).split_sizes()
    assert sizes == {"train": 9_100, "dev": 400, "test": 500}


# --- espeak-ng binding ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthesizer() -> EspeakSynthesizer:
    return EspeakSynthesizer()


def test_synthesizer_speaks_at_its_native_rate(synthesizer: EspeakSynthesizer) -> None:
    assert synthesizer.sample_rate == 22050
    audio = synthesizer.synthesize("the quick brown fox", "en-us+f3", rate_wpm=170, pitch=50)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.6 < len(audio) / synthesizer.sample_rate < 3.0
    assert 0.05 < np.max(np.abs(audio)) <= 1.0


def test_synthesis_does_not_depend_on_what_came_before(synthesizer: EspeakSynthesizer) -> None:
    def speak() -> np.ndarray:
        return synthesizer.synthesize("please put the cup here", "en-us+klatt4", 160, 40)

    first = speak()
    synthesizer.synthesize("something else entirely", "en-gb-x-rp+f2", 200, 70)
    assert np.array_equal(speak(), first)


def test_rate_and_pitch_change_the_speech(synthesizer: EspeakSynthesizer) -> None:
    slow = synthesizer.synthesize("the quick brown fox", "en-us+m3", 130, 50)
    fast = synthesizer.synthesize("the quick brown fox", "en-us+m3", 200, 50)
    high = synthesizer.synthesize("the quick brown fox", "en-us+m3", 130, 75)
    assert len(slow) > 1.2 * len(fast)
    assert not np.array_equal(slow[: len(high)], high[: len(slow)])


def semitone_track(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pitch of each clearly voiced 40 ms frame (autocorrelation, 60-300 Hz), in semitones."""
    n = round(0.04 * sample_rate)
    low, high = round(sample_rate / 300), round(sample_rate / 60)
    pitches = []
    for start in range(0, len(audio) - n, n // 2):
        frame = audio[start : start + n] - np.mean(audio[start : start + n])
        correlation = np.correlate(frame, frame, "full")[n - 1 :]
        if correlation[0] <= 0:
            continue
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.6 * correlation[0]:
            pitches.append(12 * np.log2(sample_rate / lag))
    return np.array(pitches)


def test_pitch_range_widens_the_intonation(synthesizer: EspeakSynthesizer) -> None:
    text = "please put the red cup here on the table"
    spread = {
        width: np.std(
            semitone_track(
                synthesizer.synthesize(text, "en-us+m3", 170, 50, pitch_range=width),
                synthesizer.sample_rate,
            )
        )
        for width in (0, 50, 100)
    }
    assert spread[0] < 0.5 < 1.0 < spread[50] < spread[100]  # a monotone, then livelier
    default = synthesizer.synthesize(text, "en-us+m3", 170, 50)
    assert np.array_equal(default, synthesizer.synthesize(text, "en-us+m3", 170, 50, 50, 0))


def test_word_gaps_add_pauses_between_words(synthesizer: EspeakSynthesizer) -> None:
    text = "please put the red cup here"
    lengths = [
        len(synthesizer.synthesize(text, "en+f2", 170, 50, word_gap=gap)) for gap in (0, 5, 20)
    ]
    assert lengths[0] < lengths[1] < lengths[2]
    seconds_per_gap = (lengths[2] - lengths[0]) / synthesizer.sample_rate / 5  # 5 word gaps
    assert seconds_per_gap > 0.1  # 20 units of 10 ms at the default speed, scaled by the rate


def test_the_final_punctuation_changes_the_tune_but_is_not_spoken(
    synthesizer: EspeakSynthesizer,
) -> None:
    clips = {
        ending: synthesizer.synthesize(f"put the cup here{ending}", "en-us+m3", 170, 50)
        for ending in ".?!,"
    }
    assert len({clip.tobytes() for clip in clips.values()}) == 4
    # Same words, same length give or take the final fall or rise: nothing extra is said.
    lengths = [len(clip) for clip in clips.values()]
    assert max(lengths) < 1.1 * min(lengths)
    rise = semitone_track(clips["?"], synthesizer.sample_rate)
    fall = semitone_track(clips["."], synthesizer.sample_rate)
    assert rise[-3:].mean() > fall[-3:].mean() + 2  # a question ends higher than a statement


def test_unknown_voices_are_named(synthesizer: EspeakSynthesizer) -> None:
    with pytest.raises(CorpusError, match=r"no voice variant 'nobody'.*m3"):
        synthesizer.synthesize("hello", "en-us+nobody", 170, 50)
    with pytest.raises(CorpusError, match="no voice 'xx-yy'"):
        synthesizer.synthesize("hello", "xx-yy", 170, 50)
    with pytest.raises(ValueError, match="rate_wpm"):
        synthesizer.synthesize("hello", "en-us", 20, 50)
    with pytest.raises(ValueError, match=r"pitch_range must be in \(0, 100\), got 101"):
        synthesizer.synthesize("hello", "en-us", 170, 50, pitch_range=101)
    with pytest.raises(ValueError, match="word_gap"):
        synthesizer.synthesize("hello", "en-us", 170, 50, word_gap=-1)


def test_a_missing_library_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"cannot load libespeak-ng.*espeakng-loader"):
        EspeakSynthesizer(library_path=tmp_path / "libespeak-ng.so")


# --- voices and grammar --------------------------------------------------------------------


def test_variants_come_from_the_data_folder() -> None:
    variants = {v.name: v for v in list_variants()}
    assert {"m1", "f3", "klatt4", "zac", "whisper"} <= variants.keys()
    assert is_typical(variants["m3"]) and is_typical(variants["f2"])
    for outlier in ("zac", "whisper", "robosoft", "Tweaky", "Mr serious", "fast"):
        assert not is_usable(variants[outlier]), outlier


def test_voice_plan_holds_out_typical_variants_of_each_kind() -> None:
    variants = list_variants()
    by_name = {v.name: v for v in variants}
    plan = plan_voices(variants, seed=0, held_out_share=1 / 3)
    assert 8 <= len(plan.held_out_variants) <= 16 and len(plan.train_variants) >= 30
    assert all(is_typical(by_name[v]) for v in plan.held_out_variants)
    assert any(by_name[v].klatt for v in plan.held_out_variants)
    assert any(by_name[v].klatt for v in plan.train_variants)
    assert not set(plan.train_variants) & set(plan.held_out_variants)
    assert not set(plan.excluded_variants) & set(plan.train_variants + plan.held_out_variants)
    assert plan == plan_voices(variants, seed=0, held_out_share=1 / 3)
    assert plan != plan_voices(variants, seed=1, held_out_share=1 / 3)


def test_vocabulary_fits_the_default_alphabet() -> None:
    alphabet = Alphabet.default()
    words = grammar.vocabulary()
    assert 150 <= len(words) <= 260
    assert all(word and not alphabet.unknown_chars(word) and " " not in word for word in words)
    assert any("'" in word for word in words)


def test_sentences_have_3_to_8_words_from_the_vocabulary() -> None:
    rng = np.random.default_rng(0)
    words = grammar.vocabulary()
    sentences = [grammar.sample_sentence(rng) for _ in range(2000)]
    assert all(3 <= len(s.split()) <= 8 and set(s.split()) <= words for s in sentences)
    for sentence in sentences:
        words_of = sentence.split()
        for article, following in itertools.pairwise(words_of):
            if article in ("a", "an"):
                assert (article == "an") == (following[0] in "aeiou"), sentence
    assert len(set(sentences)) > 1500  # a large sentence space: held-out sentences exist
