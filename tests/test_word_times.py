"""Tests for deepspeech/corpus/word_times.py and the word times `data sample` writes (real
espeak-ng, a 20-utterance corpus)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from deepspeech.audio import SAMPLE_RATE
from deepspeech.corpus import sample
from deepspeech.corpus.espeak import EspeakSynthesizer, list_variants
from deepspeech.corpus.sample import (
    KEEP_SILENCE_SECONDS,
    METADATA_NAME,
    SPLITS,
    SampleCorpusConfig,
    UtteranceSpec,
    make_sample_corpus,
    plan_utterances,
    render_clip,
)
from deepspeech.corpus.voices import plan_voices
from deepspeech.corpus.word_times import (
    WordTime,
    read_word_times,
    word_times_path,
    write_word_times,
)
from deepspeech.data.manifest import read_manifest
from deepspeech.errors import ManifestError

CONFIG = SampleCorpusConfig(utterances=20, seed=0, workers=2)
# sha256 over (relative path, bytes) of the manifests and WAVs of CONFIG's corpus, computed
# with the generator as it was before word times existed (git 1264d2e). Reading espeak-ng's
# events must not change a sample; a new espeak-ng or scipy may, and then FORMAT_VERSION and
# this value change together.
AUDIO_AND_MANIFESTS_SHA256 = "38369fa2ec6020cf4670bc46b42c68766e4b577c9ab9bbd117fe0abe77fbae8a"
ONSET_BELOW_PEAK_DB = 40.0  # a 10 ms frame this close to the loudest one is sound
ONSET_TOLERANCE_SECONDS = 0.05


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("word-times") / "corpus"
    make_sample_corpus(out, CONFIG)
    return out


@pytest.fixture(scope="module")
def specs() -> dict[str, UtteranceSpec]:
    """CONFIG's clips by the manifests' wav_filename."""
    planned = plan_utterances(CONFIG, plan_voices(list_variants(), CONFIG.seed, 1 / 3))
    return {f"wav/{s.split}/{s.id}.wav": s for s in planned}


def manifest_rows(corpus: Path, split: str) -> list[tuple[str, str]]:
    """(wav_filename as written, transcript) of a split's manifest, in order."""
    with (corpus / f"{split}.csv").open(newline="") as f:
        return [(row["wav_filename"], row["transcript"]) for row in csv.DictReader(f)]


def onset_seconds(audio: np.ndarray) -> float:
    """Start of the first 10 ms frame within ONSET_BELOW_PEAK_DB of the loudest frame."""
    frame = SAMPLE_RATE // 100
    n = len(audio) // frame
    rms = np.sqrt(np.mean(np.square(audio[: n * frame].reshape(n, frame)), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-ONSET_BELOW_PEAK_DB / 20))
    return float(loud[0] * frame / SAMPLE_RATE)


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([*folder.glob("*.csv"), *folder.glob("wav/*/*.wav")]):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_audio_is_what_it_was_before_word_times(corpus: Path) -> None:
    assert tree_digest(corpus) == AUDIO_AND_MANIFESTS_SHA256


def test_every_manifest_row_has_its_words_in_order(corpus: Path) -> None:
    timed = 0
    for split in SPLITS:
        path = word_times_path(corpus / f"{split}.csv")
        assert path == corpus / f"{split}.words.jsonl"
        rows = manifest_rows(corpus, split)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [line["wav_filename"] for line in lines] == [name for name, _ in rows]
        times = read_word_times(path)
        for wav_filename, transcript in rows:
            words = times[wav_filename]
            assert [w.word for w in words] in ([], transcript.split())
            timed += bool(words)
    assert timed >= 15  # espeak-ng times all but about 1 utterance in 8


def test_words_follow_each_other_inside_the_clip(corpus: Path) -> None:
    for split in SPLITS:
        for wav_filename, words in read_word_times(corpus / f"{split}.words.jsonl").items():
            if not words:
                continue
            audio, rate = soundfile.read(corpus / wav_filename, dtype="float32")
            duration = len(audio) / rate
            assert words[0].start >= 0 and words[-1].end <= duration, wav_filename
            for word, following in itertools.pairwise(words):
                assert word.start < word.end == following.start, wav_filename
            assert abs(words[0].start - onset_seconds(audio)) <= ONSET_TOLERANCE_SECONDS


def test_the_last_word_ends_where_the_kept_silence_begins(
    corpus: Path, specs: dict[str, UtteranceSpec]
) -> None:
    """Trimming keeps up to KEEP_SILENCE_SECONDS after the sound, stretched by the warp."""
    for split in SPLITS:
        for wav_filename, words in read_word_times(corpus / f"{split}.words.jsonl").items():
            if words:
                tail = soundfile.info(corpus / wav_filename).duration - words[-1].end
                stretch = specs[wav_filename].warp_percent / 100
                assert 0 < tail <= KEEP_SILENCE_SECONDS * stretch + 1e-4, wav_filename


def test_the_speaker_warp_stretches_the_word_times(specs: dict[str, UtteranceSpec]) -> None:
    synthesizer = EspeakSynthesizer()
    spec = next(s for s in specs.values() if s.split == "dev")
    plain = render_clip(synthesizer, dataclasses.replace(spec, warp_percent=100))
    slow = render_clip(synthesizer, dataclasses.replace(spec, warp_percent=120))
    assert plain.words and [w.word for w in plain.words] == spec.text.split()
    assert len(slow.audio) == pytest.approx(1.2 * len(plain.audio), abs=2)
    for a, b in zip(plain.words, slow.words, strict=True):
        assert (b.start, b.end) == pytest.approx((1.2 * a.start, 1.2 * a.end), abs=1e-9)


def test_words_espeak_speaks_as_one_leave_the_utterance_untimed(
    specs: dict[str, UtteranceSpec],
) -> None:
    """espeak-ng reports no start for "the" in "in the": no times rather than a guess."""
    spec = dataclasses.replace(next(iter(specs.values())), text="put the cup in the box")
    clip = render_clip(EspeakSynthesizer(), spec)
    assert clip.words == () and len(clip.audio) > 0


def test_metadata_counts_the_untimed_utterances(corpus: Path) -> None:
    splits = json.loads((corpus / METADATA_NAME).read_text())["splits"]
    for split in SPLITS:
        untimed = sum(not w for w in read_word_times(corpus / f"{split}.words.jsonl").values())
        assert splits[split]["utterances_without_word_times"] == untimed


def test_a_corpus_made_before_word_times_gets_them_without_new_audio(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its words files a finished folder is completed: every clip is synthesised
    again for its events, none is re-rendered or rewritten."""
    out = tmp_path / "old"
    shutil.copytree(corpus, out)
    for split in SPLITS:
        (out / f"{split}.words.jsonl").unlink()
    wav_times = {p: p.stat().st_mtime_ns for p in out.glob("wav/*/*.wav")}
    monkeypatch.setattr(sample, "render_clip", None)  # any call would fail
    summary = make_sample_corpus(out, dataclasses.replace(CONFIG, workers=1))
    assert (summary.generated, summary.reused) == (0, CONFIG.utterances)
    assert {p: p.stat().st_mtime_ns for p in out.glob("wav/*/*.wav")} == wav_times
    for split in SPLITS:
        name = f"{split}.words.jsonl"
        assert (out / name).read_bytes() == (corpus / name).read_bytes()
    assert read_manifest(out / "train.csv")  # still a valid manifest


def test_word_times_files_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.words.jsonl"
    rows = [("a.wav", [WordTime("hi", 0.0, 0.123456789)]), ("b.wav", [])]
    write_word_times(path, rows)
    assert read_word_times(path) == {"a.wav": [("hi", 0.0, 0.12346)], "b.wav": []}
    assert word_times_path(Path("some/dev.csv")) == Path("some/dev.words.jsonl")


def test_a_malformed_word_times_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.words.jsonl"
    path.write_text('{"wav_filename": "a.wav", "words": []}\n{"wav_filename": "b.wav"}\n')
    with pytest.raises(ManifestError, match=r"bad\.words\.jsonl:2: not a word-times line"):
        read_word_times(path)
    with pytest.raises(ManifestError, match="cannot read word times"):
        read_word_times(tmp_path / "missing.words.jsonl")
